//! The evaluation's statistics against reference values from SciPy and statsmodels; the
//! scoring rules of the forecast backtest in `statistics/scoring.rs`.

mod common;
#[path = "statistics/scoring.rs"]
mod scoring;

use common::*;
use scengen::stats::{
    acf, cvm_2samp, excess_kurtosis, ks_2samp, path_vol_dispersion, skewness, var_cvar,
    within_path_kurtosis, KsMethod,
};

fn close(got: f64, want: f64, rel: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        err <= rel || (got - want).abs() <= rel * 1e-3,
        "{what}: {got} vs {want} (relative error {err:e})"
    );
}

#[test]
fn two_sample_tests_match_scipy() {
    let v = vectors("two_sample_tests.json");
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let (x, y) = (as_f64s(&case["x"]), as_f64s(&case["y"]));
        let ks = ks_2samp(&x, &y, KsMethod::Asymptotic);
        close(
            ks.statistic,
            case["ks_statistic"].as_f64().unwrap(),
            1e-9,
            &format!("{name} KS D"),
        );
        close(
            ks.pvalue,
            case["ks_pvalue_asymptotic"].as_f64().unwrap(),
            1e-6,
            &format!("{name} KS asymptotic p"),
        );
        if let Some(p) = case["ks_pvalue_exact"].as_f64() {
            let exact = ks_2samp(&x, &y, KsMethod::Exact);
            close(exact.pvalue, p, 1e-6, &format!("{name} KS exact p"));
        }
        let cvm = cvm_2samp(&x, &y);
        close(
            cvm.statistic,
            case["cvm_statistic"].as_f64().unwrap(),
            1e-9,
            &format!("{name} CvM statistic"),
        );
        close(
            cvm.pvalue,
            case["cvm_pvalue_asymptotic"].as_f64().unwrap(),
            1e-6,
            &format!("{name} CvM p"),
        );
    }
}

#[test]
fn autocorrelation_and_moments_match_statsmodels() {
    let v = vectors("acf.json");
    let x = as_f64s(&v["x"]);
    let abs: Vec<f64> = x.iter().map(|r| r.abs()).collect();
    let sq: Vec<f64> = x.iter().map(|r| r * r).collect();
    for (series, key) in [
        (&x, "acf_returns"),
        (&abs, "acf_abs_returns"),
        (&sq, "acf_squared_returns"),
    ] {
        let want = as_f64s(&v[key]);
        let got = acf(series, 10);
        for k in 0..=10 {
            close(got[k], want[k], 1e-9, &format!("{key}[{k}]"));
        }
    }
    close(
        skewness(&x),
        v["skewness_bias_true"].as_f64().unwrap(),
        1e-9,
        "skewness",
    );
    close(
        excess_kurtosis(&x),
        v["excess_kurtosis_bias_true"].as_f64().unwrap(),
        1e-9,
        "excess kurtosis",
    );
}

#[test]
fn var_and_cvar_match_reference() {
    let v = vectors("var_cvar.json");
    let r = spx_log_returns();
    assert_eq!(r.len(), v["n"].as_u64().unwrap() as usize);
    for level in v["levels"].as_array().unwrap() {
        let alpha = level["alpha"].as_f64().unwrap();
        let (var, cvar) = var_cvar(&r, alpha);
        close(
            var,
            level["var"].as_f64().unwrap(),
            1e-9,
            &format!("VaR {alpha}"),
        );
        close(
            cvar,
            level["cvar"].as_f64().unwrap(),
            1e-9,
            &format!("CVaR {alpha}"),
        );
    }
}

#[test]
fn volatility_spread_over_paths_separates_clustering_from_jumps() {
    // Two paths, the second the first doubled: volatilities s and 2s, CV (s/√2) / (1.5 s);
    // scaled by their own volatility both are ±1, whose excess kurtosis is 1 − 3.
    let two = [1.0, -1.0, 1.0, -1.0, 2.0, -2.0, 2.0, -2.0];
    close(path_vol_dispersion(&two, 4), 2f64.sqrt() / 3.0, 1e-12, "CV");
    close(
        within_path_kurtosis(&two, 4),
        -2.0,
        1e-12,
        "within kurtosis",
    );

    // The S&P 500 1990-2022 in 30-day paths: calm and turbulent months (volatility clustering)
    // give a wide spread of path volatility and make most of the fat tails. The same days
    // shuffled over the paths keep the pooled kurtosis but lose both.
    let r = spx_log_returns();
    let n = r.len() / 30 * 30;
    let months = &r[..n];
    // 7919 is prime and does not divide n, so i -> 7919 i mod n is a permutation.
    let shuffled: Vec<f64> = (0..n).map(|i| months[i * 7919 % n]).collect();
    let (clustered, iid) = (
        path_vol_dispersion(months, 30),
        path_vol_dispersion(&shuffled, 30),
    );
    assert!(
        clustered > 0.5 && iid < 0.35,
        "CV {clustered} vs {iid} shuffled"
    );
    let (within, within_iid) = (
        within_path_kurtosis(months, 30),
        within_path_kurtosis(&shuffled, 30),
    );
    assert!(excess_kurtosis(months) > 8.0);
    assert!(
        within < 1.0 && within_iid > 1.5,
        "within-path kurtosis {within} vs {within_iid} shuffled"
    );
}
