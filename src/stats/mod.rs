//! Statistics shared by every stage: descriptive moments and quantiles here; the two-sample
//! tests, autocorrelation and tail measures in their own files as the evaluation needs them.

mod acf;
mod descriptive;
mod matrix;
mod nelder_mead;

pub use acf::{acf, pooled_acf};
pub use descriptive::{excess_kurtosis, mean, quantile, skewness, std_dev, variance};
pub use matrix::{cholesky, correlation_from_covariance, covariance_matrix};
pub use nelder_mead::{nelder_mead, Minimum};
