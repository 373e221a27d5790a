//! `scengen evaluate`: how close scenario paths are to real windows of the same regime
//! (marginals, time structure, tails, cross-section, memorisation), next to a real-vs-real noise
//! floor; its report page is `report.rs`.

mod headline;
mod memorization;
mod metrics;
mod report;
mod run;

pub use headline::HeadlineRow;
pub use memorization::{memorization, Memorization};
pub use metrics::{
    leverage, set_metrics, symmetric_eigenvalues, Paths, Reference, SetMetrics, LAGS,
    QUANTILE_LEVELS,
};
pub use report::{evaluation_html, summary_text};
pub use run::{default_out, run, EvaluateConfig, Evaluation, ScoredSet};

use crate::data::TRADING_DAYS;
use crate::stats::{correlation_from_covariance, covariance_matrix, pooled_acf, std_dev};

/// Headline figures of a panel of daily returns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DailySummary {
    /// Days (rows) summarised.
    pub days: usize,
    /// Annualised volatility of the equal-weight, daily-rebalanced portfolio's log return
    /// ln(mean_i exp(r_i)).
    pub equal_weight_vol: f64,
    /// Mean of the off-diagonal entries of the correlation matrix of daily returns.
    pub mean_correlation: f64,
    /// Lag-1 autocorrelation of the equal-weight portfolio's |return| (volatility
    /// clustering), pooled within paths.
    pub abs_acf1: f64,
}

/// Summarises paths of `window` days (row-major: one row of `assets` log returns per day,
/// paths one after another).
pub fn summarize_paths(values: &[f64], window: usize, assets: usize) -> DailySummary {
    let portfolio = equal_weight_returns(values, assets);
    let abs: Vec<f64> = portfolio.iter().map(|r| r.abs()).collect();
    DailySummary {
        days: portfolio.len(),
        equal_weight_vol: std_dev(&portfolio, 1) * TRADING_DAYS.sqrt(),
        mean_correlation: mean_off_diagonal(&correlation_matrix(values, assets), assets),
        abs_acf1: pooled_acf(&abs, window, 1)[1],
    }
}

/// Daily log returns of the equal-weight, daily-rebalanced portfolio: ln(mean_i exp(r_i)).
pub fn equal_weight_returns(values: &[f64], assets: usize) -> Vec<f64> {
    values
        .chunks(assets)
        .map(|r| (r.iter().map(|x| x.exp()).sum::<f64>() / assets as f64).ln())
        .collect()
}

/// Pearson correlation matrix (row-major, `assets` x `assets`) of row-major daily returns.
pub fn correlation_matrix(days: &[f64], assets: usize) -> Vec<f64> {
    correlation_from_covariance(&covariance_matrix(days, assets, 1), assets)
}

/// Mean of the off-diagonal entries of an n x n matrix.
pub(crate) fn mean_off_diagonal(m: &[f64], n: usize) -> f64 {
    let mut sum = 0.0;
    for i in 0..n {
        for j in 0..n {
            if i != j {
                sum += m[i * n + j];
            }
        }
    }
    sum / (n * (n - 1)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_correlated_assets() {
        let days: Vec<f64> = (0..50)
            .flat_map(|i| {
                let x = ((i * 7919) % 13) as f64 * 0.001 - 0.006;
                [x, 2.0 * x]
            })
            .collect();
        let s = summarize_paths(&days, 10, 2);
        assert!((s.mean_correlation - 1.0).abs() < 1e-12);
        assert_eq!(s.days, 50);
    }
}
