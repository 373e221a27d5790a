//! Covariance estimators against scikit-learn's Ledoit–Wolf and the Marchenko–Pastur reference.

mod common;

use common::*;
use scengen::covariance::{ledoit_wolf, marchenko_pastur_clip};
use scengen::stats::{correlation_from_covariance, covariance_matrix};

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
