//! Proper scoring rules and the Diebold–Mariano test against `scoringrules` and statsmodels
//! (tests/testvectors/scoring_rules.json), and what makes them proper: a forecast that is the
//! true law beats a wrong one on average, and the test says so.

use crate::common::*;
use scengen::rng::SeededRng;
use scengen::stats::{
    crps_ensemble, crps_normal, diebold_mariano, energy_distance, energy_score, variogram_score,
    Estimator,
};

fn close(got: f64, want: f64, rel: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        err <= rel,
        "{what}: {got} vs {want} (relative error {err:e})"
    );
}

/// An ensemble as rows of `d` values, row-major.
fn rows(v: &serde_json::Value) -> (Vec<f64>, usize) {
    let members = v.as_array().unwrap();
    let d = members[0].as_array().unwrap().len();
    (members.iter().flat_map(as_f64s).collect(), d)
}

#[test]
fn energy_distance_matches_dcor() {
    let v = vectors("energy_distance.json");
    let cases = v["energy_distance"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let ((x, d), (y, dy)) = (rows(&case["x"]), rows(&case["y"]));
        assert_eq!(d, dy);
        close(
            energy_distance(&x, &y, d),
            case["u_statistic"].as_f64().unwrap(),
            1e-9,
            case["name"].as_str().unwrap(),
        );
    }
}

#[test]
fn scores_match_scoringrules() {
    let v = vectors("scoring_rules.json");
    let cases = v["crps_ensemble"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for (i, case) in cases.iter().enumerate() {
        let (x, y) = (as_f64s(&case["ensemble"]), case["obs"].as_f64().unwrap());
        let nrg = case["nrg"].as_f64().unwrap();
        close(
            crps_ensemble(&x, y, Estimator::PlugIn),
            nrg,
            1e-9,
            &format!("crps nrg {i}"),
        );
        let fair = case["fair"].as_f64().unwrap();
        close(
            crps_ensemble(&x, y, Estimator::Fair),
            fair,
            1e-9,
            &format!("crps fair {i}"),
        );
    }
    for (i, case) in v["crps_normal"].as_array().unwrap().iter().enumerate() {
        let f = |k: &str| case[k].as_f64().unwrap();
        close(
            crps_normal(f("mu"), f("sigma"), f("obs")),
            f("value"),
            1e-9,
            &format!("crps normal {i}"),
        );
    }
    let cases = v["multivariate"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for (i, case) in cases.iter().enumerate() {
        let (x, d) = rows(&case["ensemble"]);
        let y = as_f64s(&case["obs"]);
        let f = |k: &str| case[k].as_f64().unwrap();
        close(
            energy_score(&x, d, &y, Estimator::PlugIn),
            f("energy_nrg"),
            1e-9,
            &format!("es nrg {i}"),
        );
        close(
            energy_score(&x, d, &y, Estimator::Fair),
            f("energy_fair"),
            1e-9,
            &format!("es fair {i}"),
        );
        close(
            variogram_score(&x, d, &y, 0.5),
            f("variogram_p05"),
            1e-9,
            &format!("vs {i}"),
        );
    }
}

#[test]
fn diebold_mariano_matches_statsmodels_hac() {
    let v = vectors("scoring_rules.json");
    let cases = v["diebold_mariano"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    for case in cases {
        let d = as_f64s(&case["d"]);
        let lags = case["lags"].as_u64().unwrap() as usize;
        assert_eq!(lags + 1, case["horizon"].as_u64().unwrap() as usize);
        let test = diebold_mariano(&d, lags);
        close(
            test.statistic,
            case["dm"].as_f64().unwrap(),
            1e-9,
            "DM statistic",
        );
        close(
            test.p_value,
            case["p_value"].as_f64().unwrap(),
            1e-6,
            "DM p-value",
        );
    }
}

/// The univariate scores of an ensemble from the true law N(0, 1) and from a law with twice
/// its scale, at 300 draws of the truth.
fn true_against_wrong(rng: &mut SeededRng) -> (Vec<f64>, Vec<f64>) {
    let (mut truth, mut wrong) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let y = rng.normal();
        let own: Vec<f64> = (0..200).map(|_| rng.normal()).collect();
        let wide: Vec<f64> = (0..200).map(|_| 2.0 * rng.normal()).collect();
        truth.push(crps_ensemble(&own, y, Estimator::Fair));
        wrong.push(crps_ensemble(&wide, y, Estimator::Fair));
    }
    (truth, wrong)
}

#[test]
fn the_true_law_beats_a_wrong_one_and_the_test_says_so() {
    let mut rng = SeededRng::new(11, 0);
    let (truth, wrong) = true_against_wrong(&mut rng);
    let d: Vec<f64> = truth.iter().zip(&wrong).map(|(a, b)| a - b).collect();
    let test = diebold_mariano(&d, 0);
    assert!(test.mean_difference < 0.0, "{test:?}");
    assert!(test.p_value < 0.01, "{test:?}");
    // The fair CRPS of a large ensemble tends to the closed form: E CRPS(N(0,1), Y) = 1/√π.
    let mean_truth = truth.iter().sum::<f64>() / truth.len() as f64;
    close(
        mean_truth,
        1.0 / std::f64::consts::PI.sqrt(),
        0.1,
        "mean CRPS of the truth",
    );

    // On a Gaussian panel with correlated assets, the energy and variogram scores prefer the
    // true correlation to independence.
    let (d, corr) = (5, 0.7);
    let draw = |rng: &mut SeededRng, corr: f64| -> Vec<f64> {
        let common = rng.normal();
        (0..d)
            .map(|_| corr.sqrt() * common + (1.0 - corr).sqrt() * rng.normal())
            .collect()
    };
    let (mut energy, mut variogram) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let y = draw(&mut rng, corr);
        let own: Vec<f64> = (0..100).flat_map(|_| draw(&mut rng, corr)).collect();
        let independent: Vec<f64> = (0..100).flat_map(|_| draw(&mut rng, 0.0)).collect();
        energy.push(
            energy_score(&own, d, &y, Estimator::Fair)
                - energy_score(&independent, d, &y, Estimator::Fair),
        );
        variogram
            .push(variogram_score(&own, d, &y, 0.5) - variogram_score(&independent, d, &y, 0.5));
    }
    for (name, diff) in [("energy", energy), ("variogram", variogram)] {
        let test = diebold_mariano(&diff, 0);
        assert!(
            test.mean_difference < 0.0 && test.p_value < 0.05,
            "{name}: {test:?}"
        );
    }
}

/// The pairwise distances come from blocked matrix products (256 members a block): on
/// ensembles of several blocks, with repeated members and members far from the origin, the
/// spread and the energy distance agree with the plain pairwise sums.
#[test]
fn blocked_distances_match_the_pairwise_sums() {
    let d = 49;
    let mut rng = SeededRng::new(3, 0);
    let mut member =
        |shift: f64| -> Vec<f64> { (0..d).map(|_| shift + 0.02 * rng.normal()).collect() };
    let mut x: Vec<f64> = (0..600).flat_map(|_| member(0.5)).collect();
    // A bootstrap-like ensemble repeats members: their distance must be exactly 0.
    let repeated = x[7 * d..8 * d].to_vec();
    for k in [300, 599] {
        x[k * d..(k + 1) * d].copy_from_slice(&repeated);
    }
    let y: Vec<f64> = (0..300).flat_map(|_| member(0.49)).collect();
    let dist = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .map(|(u, v)| (u - v) * (u - v))
            .sum::<f64>()
            .sqrt()
    };
    let pairwise = |a: &[f64]| -> f64 {
        let rows: Vec<&[f64]> = a.chunks_exact(d).collect();
        let mut total = 0.0;
        for i in 0..rows.len() {
            for j in i + 1..rows.len() {
                total += dist(rows[i], rows[j]);
            }
        }
        2.0 * total
    };
    let (sx, sy) = (pairwise(&x), pairwise(&y));
    close(scengen::stats::energy_spread(&x, d), sx, 1e-12, "spread");
    let cross: f64 = x
        .chunks_exact(d)
        .map(|a| y.chunks_exact(d).map(|b| dist(a, b)).sum::<f64>())
        .sum();
    let (n, m) = (600.0, 300.0);
    let want = 2.0 * cross / (n * m) - sx / (n * (n - 1.0)) - sy / (m * (m - 1.0));
    close(energy_distance(&x, &y, d), want, 1e-9, "energy distance");
    // Identical samples: the cross term holds every member's distance to itself, 0.
    let same = energy_distance(&x, &x, d);
    let want_same = 2.0 * sx / (n * n) - 2.0 * sx / (n * (n - 1.0));
    close(same, want_same, 1e-9, "a sample against itself");
}
