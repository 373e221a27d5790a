//! The evaluation's statistics against reference values from SciPy and statsmodels.

mod common;

use common::*;
use scengen::stats::{acf, cvm_2samp, excess_kurtosis, ks_2samp, skewness, var_cvar, KsMethod};

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
    let p = scengen::data::Panel::read(&embedded_index(), "date", None).unwrap();
    let r: Vec<f64> = p.columns[0]
        .windows(2)
        .map(|w| (w[1] / w[0]).ln())
        .collect();
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
