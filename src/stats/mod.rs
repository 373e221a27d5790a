//! Statistics shared by every stage: descriptive moments and quantiles here; the two-sample
//! tests, autocorrelation, tail measures, the spread of volatility over paths and the coverage
//! tests of VaR exceedances, and the proper scoring rules of ensemble forecasts in their own
//! files.

mod acf;
mod coverage;
mod descriptive;
mod kolmogorov;
mod matrix;
mod nelder_mead;
mod paths;
mod scoring;
mod tails;
mod two_sample;

pub use acf::{acf, pooled_acf};
pub use coverage::{
    basel_zone, christoffersen_independence, conditional_coverage, kupiec_pof, LikelihoodRatio,
    BASEL_DAYS,
};
pub use descriptive::{
    column_variances, excess_kurtosis, mean, quantile, skewness, std_dev, variance,
};
pub use kolmogorov::{durbin_cdf, kstwo_sf, pelz_good_cdf, smirnov_sf};
pub use matrix::{
    cholesky, compose_eigen, correlation_from_covariance, covariance_matrix, product_into,
    solve_spd, symmetric_eigen, symmetric_power, Strided,
};
pub use nelder_mead::{nelder_mead, Minimum};
pub use paths::{path_vol_dispersion, within_path_kurtosis};
pub use scoring::{
    crps_ensemble, crps_normal, diebold_mariano, energy_distance, energy_distance_with_spread,
    energy_score, energy_score_with_spread, energy_spread, variogram_means, variogram_score,
    variogram_score_with_means, DieboldMariano, Estimator,
};
pub use tails::{tail_count, tail_indices, var_cvar};
pub use two_sample::{
    average_ranks, bessel_k, cvm_2samp, ks_2samp, ks_exact_sf, ks_statistic, KsMethod, TestResult,
};
