//! Covariance estimators against scikit-learn's Ledoit–Wolf and the Marchenko–Pastur reference.

mod common;

use common::*;
use scengen::covariance::{ledoit_wolf, marchenko_pastur_clip, shrink_to_correlation};
use scengen::rng::SeededRng;
use scengen::stats::{cholesky, correlation_from_covariance, covariance_matrix};

fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

#[test]
fn ledoit_wolf_matches_scikit_learn() {
    let v = vectors("ledoit_wolf.json");
    let (t, n) = (
        v["T"].as_u64().unwrap() as usize,
        v["N"].as_u64().unwrap() as usize,
    );
    let x = as_f64s(&v["X"]);
    assert_eq!(x.len(), t * n);
    let sample = covariance_matrix(&x, n, 0);
    for (k, want) in as_f64s(&v["sample_covariance_1_over_T"]).iter().enumerate() {
        close(sample[k], *want, 1e-9, &format!("sample covariance {k}"));
    }
    let (shrinkage, cov) = ledoit_wolf(&x, n);
    close(
        shrinkage,
        v["shrinkage"].as_f64().unwrap(),
        1e-9,
        "shrinkage",
    );
    for (k, want) in as_f64s(&v["covariance"]).iter().enumerate() {
        close(cov[k], *want, 1e-9, &format!("shrunk covariance {k}"));
    }
}

/// `t` Gaussian days of `sigma` (n x n), row-major.
fn gaussian_days(rng: &mut SeededRng, sigma: &[f64], n: usize, t: usize) -> Vec<f64> {
    let chol = cholesky(sigma, n).unwrap();
    (0..t)
        .flat_map(|_| {
            let z: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            (0..n)
                .map(|i| (0..=i).map(|j| chol[i * n + j] * z[j]).sum::<f64>())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Shrinking towards the true correlation: over 40 samples of 30 days of 10 assets, the estimate
/// is on average much nearer the true covariance than the sample covariance, with a high
/// intensity (the target is right, so it stays high however many the days). Towards a wrong
/// correlation (the identity) the intensity is lower, and falls towards zero as days accumulate
/// (3,000 days); towards the sample's own correlation the estimate is the sample covariance.
#[test]
fn shrinking_towards_a_correlation_helps_when_the_target_is_right() {
    let n = 10;
    let vols: Vec<f64> = (0..n).map(|i| 0.5 + 0.15 * i as f64).collect();
    let truth: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.4 })
        .collect();
    let sigma: Vec<f64> = (0..n * n)
        .map(|k| truth[k] * vols[k / n] * vols[k % n])
        .collect();
    let identity: Vec<f64> = (0..n * n)
        .map(|k| if k / n == k % n { 1.0 } else { 0.0 })
        .collect();
    let error = |m: &[f64]| -> f64 { m.iter().zip(&sigma).map(|(a, b)| (a - b).powi(2)).sum() };
    let mut rng = SeededRng::new(17, 0);
    let (mut sample_error, mut shrunk_error, mut delta_true, mut delta_wrong) =
        (0.0, 0.0, 0.0, 0.0);
    let samples = 40;
    for _ in 0..samples {
        let days = gaussian_days(&mut rng, &sigma, n, 30);
        let (delta, shrunk) = shrink_to_correlation(&days, n, &truth);
        sample_error += error(&covariance_matrix(&days, n, 1));
        shrunk_error += error(&shrunk);
        delta_true += delta / samples as f64;
        delta_wrong += shrink_to_correlation(&days, n, &identity).0 / samples as f64;
    }
    assert!(
        shrunk_error < 0.6 * sample_error,
        "{shrunk_error} vs {sample_error}"
    );
    assert!(delta_true > 0.6, "{delta_true}");
    assert!(
        delta_wrong < 0.5 * delta_true,
        "{delta_wrong} vs {delta_true}"
    );
    let long = gaussian_days(&mut rng, &sigma, n, 3000);
    let (delta_long, _) = shrink_to_correlation(&long, n, &identity);
    assert!(
        delta_long < 0.02,
        "{delta_long} vs {delta_wrong} on 30 days"
    );
    let sample = covariance_matrix(&long, n, 1);
    let own = correlation_from_covariance(&sample, n);
    let (delta_own, same) = shrink_to_correlation(&long, n, &own);
    for (a, b) in same.iter().zip(&sample) {
        assert!(
            (a - b).abs() < 1e-12 * (1.0 + b.abs()),
            "δ {delta_own}: {a} vs {b}"
        );
    }
}

#[test]
fn marchenko_pastur_clipping_matches_reference() {
    let v = vectors("marchenko_pastur.json");
    let (t, n) = (
        v["T"].as_u64().unwrap() as usize,
        v["N"].as_u64().unwrap() as usize,
    );
    let x = as_f64s(&v["X"]);
    let corr = correlation_from_covariance(&covariance_matrix(&x, n, 1), n);
    let mp = marchenko_pastur_clip(&corr, n, t);
    close(
        mp.lambda_plus,
        v["lambda_plus"].as_f64().unwrap(),
        1e-12,
        "lambda+",
    );
    assert_eq!(mp.n_signal, v["n_signal"].as_u64().unwrap() as usize);
    for (k, want) in as_f64s(&v["eigenvalues_ascending"]).iter().enumerate() {
        close(
            mp.eigenvalues_ascending[k],
            *want,
            1e-9,
            &format!("eigenvalue {k}"),
        );
    }
    for (k, want) in as_f64s(&v["cleaned_correlation"]).iter().enumerate() {
        close(
            mp.cleaned_correlation[k],
            *want,
            1e-9,
            &format!("cleaned correlation {k}"),
        );
    }
    close(
        mp.condition_number_before,
        v["condition_number_before"].as_f64().unwrap(),
        1e-8,
        "condition before",
    );
    close(
        mp.condition_number_after,
        v["condition_number_after"].as_f64().unwrap(),
        1e-8,
        "condition after",
    );
}

#[test]
fn covariance_command_writes_every_estimator_per_regime() {
    use scengen::baselines::{generate_baseline, BaselineConfig, Method};
    use scengen::covariance::{CovarianceConfig, Estimate};
    use scengen::report::StageReport;
    /// Runs the estimators and writes the report, as `scengen covariance` does.
    fn covariance_report(config: &CovarianceConfig) -> scengen::Result<Vec<Estimate>> {
        let report = scengen::covariance::run(config)?;
        report.write(&config.out)?;
        Ok(report.estimates)
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("w.parquet");
    write_gaussian_windows(
        &data,
        &[1.0, 0.0, 0.0, 0.6, 0.8, 0.0, 0.2, 0.1, 0.9],
        3,
        10,
        120,
        2.0,
        3,
    );
    let test_from = scengen::io::parse_date("t", "2100-01-01").unwrap();
    let scen = dir.path().join("scen");
    std::fs::create_dir_all(&scen).unwrap();
    for regime in ["calm", "stressed"] {
        // Gaussian paths stand in for a model here; mark them as diffusion output.
        let tmp = dir.path().join(format!("{regime}-g.parquet"));
        generate_baseline(&BaselineConfig {
            method: Method::Gaussian,
            data: data.clone(),
            regime: regime.into(),
            n: 200,
            seed: 1,
            test_from,
            block_length: None,
            out: tmp.clone(),
            shard: Default::default(),
            as_of: None,
            ..BaselineConfig::default()
        })
        .unwrap();
        let s = scengen::scenarios::read_scenarios(&tmp).unwrap();
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("scengen.method".to_string(), "diffusion".to_string());
        let mut w = scengen::scenarios::ScenarioWriter::create(
            &scen.join(format!("{regime}.parquet")),
            &s.assets,
            regime,
            s.window,
            meta,
        )
        .unwrap();
        w.write_paths(0, &s.values).unwrap();
        w.finish().unwrap();
    }
    let out = dir.path().join("cov");
    let all = covariance_report(&CovarianceConfig {
        real: data,
        scenarios: vec![scen.clone()],
        test_from,
        out: out.clone(),
    })
    .unwrap();
    assert_eq!(all.len(), 12, "6 estimators x 2 regimes");
    for e in &all {
        assert!(
            e.condition_number >= 1.0 && e.condition_number.is_finite(),
            "{} {}",
            e.method,
            e.regime
        );
        // Every estimator keeps the real variances except Ledoit-Wolf, which shrinks them.
        if e.method != "ledoit-wolf" {
            let sample = all
                .iter()
                .find(|s| s.method == "sample" && s.regime == e.regime)
                .unwrap();
            for i in 0..3 {
                close(
                    e.matrix[i * 3 + i],
                    sample.matrix[i * 3 + i],
                    1e-9,
                    &format!("{} variance {i}", e.method),
                );
            }
        }
    }
    let table = scengen::io::read_parquet(out.join("matrices.parquet")).unwrap();
    assert_eq!(
        table.batch.num_rows(),
        36,
        "6 estimators x 2 regimes x 3 assets"
    );
    assert_eq!(
        table.column_names(),
        vec!["regime", "method", "asset", "A0", "A1", "A2"]
    );
    assert!(std::fs::read_to_string(out.join("report.html"))
        .unwrap()
        .contains("<svg"));

    // A second file of one regime would give that regime two sets of rows: refused by name.
    let again = dir.path().join("calm-again.parquet");
    std::fs::copy(scen.join("calm.parquet"), &again).unwrap();
    let out = dir.path().join("cov2");
    let e = covariance_report(&CovarianceConfig {
        real: dir.path().join("w.parquet"),
        scenarios: vec![scen, again],
        test_from,
        out: out.clone(),
    })
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("option scenarios:")
            && text.contains("calm-again.parquet")
            && text.contains("second"),
        "{text}"
    );
    assert!(!out.exists());
}
