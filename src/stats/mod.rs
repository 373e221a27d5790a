//! Statistics shared by every stage: descriptive moments and quantiles here; the two-sample
//! tests, autocorrelation and tail measures in their own files as the evaluation needs them.

mod descriptive;

pub use descriptive::{excess_kurtosis, mean, quantile, skewness, std_dev, variance};
