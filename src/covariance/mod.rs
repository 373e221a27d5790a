//! `scengen covariance`: covariance estimators for portfolio construction. The sample
//! covariance, Ledoit–Wolf linear shrinkage (towards a multiple of the identity, or towards a
//! correlation from elsewhere) and Marchenko–Pastur clipping of the correlation matrix here;
//! the estimators from synthetic panels and the stage in `run.rs`, its files in `report.rs`.
//! The backtest builds on these.

mod report;
mod run;

pub use run::{
    estimate_matrices, estimates, run, with_variances, CovarianceConfig, CovarianceReport,
    Estimate, SyntheticCorrelation, METHODS,
};

use crate::stats::{correlation_from_covariance, covariance_matrix, symmetric_eigen};

/// Ledoit–Wolf shrinkage towards mu·I (mu = trace(S) / N) of S, the covariance of `rows`
/// (row-major, `n` columns) with the 1/T normalisation, as scikit-learn's `LedoitWolf`:
/// returns (shrinkage, shrunk covariance).
pub fn ledoit_wolf(rows: &[f64], n: usize) -> (f64, Vec<f64>) {
    let (t, x) = centred(rows, n);
    let tf = t as f64;
    let s = covariance_matrix(rows, n, 0);
    let x2: Vec<f64> = x.iter().map(|v| v * v).collect();
    let trace_terms: Vec<f64> = (0..n)
        .map(|a| x2.iter().skip(a).step_by(n).sum::<f64>() / tf)
        .collect();
    let mu = trace_terms.iter().sum::<f64>() / n as f64;
    // delta_ = ‖XᵀX‖²_F / T², beta_ = Σ (X²ᵀX²)
    let (mut delta_, mut beta_) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let (mut xtx, mut x2tx2) = (0.0, 0.0);
            for r in 0..t {
                xtx += x[r * n + i] * x[r * n + j];
                x2tx2 += x2[r * n + i] * x2[r * n + j];
            }
            delta_ += xtx * xtx;
            beta_ += x2tx2;
        }
    }
    delta_ /= tf * tf;
    let beta = (beta_ / tf - delta_) / (n as f64 * tf);
    let delta =
        (delta_ - 2.0 * mu * trace_terms.iter().sum::<f64>() + n as f64 * mu * mu) / n as f64;
    let beta = beta.min(delta);
    let shrinkage = if beta == 0.0 { 0.0 } else { beta / delta };
    let shrunk = (0..n * n)
        .map(|k| (1.0 - shrinkage) * s[k] + if k / n == k % n { shrinkage * mu } else { 0.0 })
        .collect();
    (shrinkage, shrunk)
}

/// Ledoit–Wolf shrinkage of S, the covariance of `rows` (row-major, `n` columns, 1/T
/// normalisation), towards F = the correlation `target` (from elsewhere, e.g. synthetic
/// scenarios) with S's own variances: returns (δ, δ F + (1 − δ) S), scaled by T / (T − 1) so
/// that it keeps the unbiased sample variances. δ minimises the expected
/// Frobenius loss to first order (Ledoit & Wolf 2004, "Honey, I shrunk the sample covariance
/// matrix", with their constant average correlation replaced by `target`, which, coming from
/// elsewhere, is not estimated from the rows): δ = clamp((π − ρ) / (T γ), 0, 1) with π the
/// summed asymptotic variances of √T S_ij, ρ their covariances with √T F_ij (through the
/// variances on F's diagonal and scale) and γ = ‖F − S‖²_F.
pub fn shrink_to_correlation(rows: &[f64], n: usize, target: &[f64]) -> (f64, Vec<f64>) {
    let (t, x) = centred(rows, n);
    let tf = t as f64;
    let s = covariance_matrix(rows, n, 0);
    let sd: Vec<f64> = (0..n).map(|i| s[i * n + i].sqrt()).collect();
    let f: Vec<f64> = (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            if i == j {
                s[k]
            } else {
                target[k] * sd[i] * sd[j]
            }
        })
        .collect();
    let (mut pi, mut rho, mut gamma) = (0.0, 0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let k = i * n + j;
            // π_ij, and θ_ii,ij, θ_jj,ij: covariances of x_i² and x_j² with x_i x_j.
            let (mut pi_ij, mut theta_i, mut theta_j) = (0.0, 0.0, 0.0);
            for r in 0..t {
                let (xi, xj) = (x[r * n + i], x[r * n + j]);
                let cross = xi * xj - s[k];
                pi_ij += cross * cross;
                theta_i += (xi * xi - s[i * n + i]) * cross;
                theta_j += (xj * xj - s[j * n + j]) * cross;
            }
            pi += pi_ij / tf;
            rho += if i == j {
                pi_ij / tf
            } else {
                target[k] / 2.0 * (sd[j] / sd[i] * theta_i / tf + sd[i] / sd[j] * theta_j / tf)
            };
            gamma += (f[k] - s[k]).powi(2);
        }
    }
    let delta = if gamma > 0.0 {
        ((pi - rho) / (tf * gamma)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    // On the scale of the unbiased sample covariance, whose variances it keeps.
    let unbiased = tf / (tf - 1.0);
    let shrunk = s
        .iter()
        .zip(&f)
        .map(|(s, f)| unbiased * (delta * f + (1.0 - delta) * s))
        .collect();
    (delta, shrunk)
}

/// The number of `rows` (row-major, `n` columns) and the rows less their column means.
fn centred(rows: &[f64], n: usize) -> (usize, Vec<f64>) {
    let t = rows.len() / n;
    let mean: Vec<f64> = (0..n)
        .map(|a| rows.iter().skip(a).step_by(n).sum::<f64>() / t as f64)
        .collect();
    let x = rows
        .iter()
        .enumerate()
        .map(|(i, v)| v - mean[i % n])
        .collect();
    (t, x)
}

/// The result of Marchenko–Pastur clipping.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MarchenkoPastur {
    pub lambda_plus: f64,
    pub eigenvalues_ascending: Vec<f64>,
    pub n_signal: usize,
    pub cleaned_correlation: Vec<f64>,
    pub condition_number_before: f64,
    pub condition_number_after: f64,
}

/// Clips the eigenvalues of a correlation matrix estimated from `t` observations: those at or
/// below λ+ = (1 + √(N/T))² are replaced by their mean (keeping the trace), and the result is
/// rescaled to a unit diagonal.
pub fn marchenko_pastur_clip(corr: &[f64], n: usize, t: usize) -> MarchenkoPastur {
    let lambda_plus = (1.0 + (n as f64 / t as f64).sqrt()).powi(2);
    let (values, vectors) = symmetric_eigen(corr, n);
    let noise: Vec<f64> = values
        .iter()
        .copied()
        .filter(|v| *v <= lambda_plus)
        .collect();
    let n_signal = n - noise.len();
    let noise_mean = if noise.is_empty() {
        0.0
    } else {
        noise.iter().sum::<f64>() / noise.len() as f64
    };
    let clipped: Vec<f64> = values
        .iter()
        .map(|v| if *v <= lambda_plus { noise_mean } else { *v })
        .collect();
    let mut rebuilt = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            rebuilt[i * n + j] = (0..n)
                .map(|k| vectors[i * n + k] * clipped[k] * vectors[j * n + k])
                .sum();
        }
    }
    let cleaned = correlation_from_covariance(&rebuilt, n);
    MarchenkoPastur {
        lambda_plus,
        condition_number_before: condition_number(corr, n),
        condition_number_after: condition_number(&cleaned, n),
        eigenvalues_ascending: values,
        n_signal,
        cleaned_correlation: cleaned,
    }
}

/// Largest over smallest eigenvalue of a symmetric matrix.
pub fn condition_number(m: &[f64], n: usize) -> f64 {
    let values = symmetric_eigen(m, n).0;
    values[n - 1] / values[0]
}
