//! Metrics of one set of paths against a reference set of real windows of the same regime.

use serde::Serialize;

use super::{correlation_matrix, equal_weight_returns};
use crate::data::TRADING_DAYS;
use crate::stats::{
    covariance_matrix, cvm_2samp, excess_kurtosis, ks_2samp, mean, path_vol_dispersion, pooled_acf,
    skewness, std_dev, var_cvar, within_path_kurtosis, KsMethod, TestResult,
};

/// Lags of the autocorrelation and leverage figures.
pub const LAGS: usize = 10;

/// Paths of `window` days over the same assets: `values` is path-major, then day, then asset.
pub struct Paths<'a> {
    pub values: &'a [f64],
    pub window: usize,
    pub assets: usize,
}

impl Paths<'_> {
    pub fn count(&self) -> usize {
        self.values.len() / (self.window * self.assets)
    }

    fn column(&self, a: usize) -> Vec<f64> {
        self.values
            .iter()
            .skip(a)
            .step_by(self.assets)
            .copied()
            .collect()
    }

    /// Sum over each path of one asset's log returns: the window-horizon log return.
    fn horizon(&self, a: usize) -> Vec<f64> {
        self.column(a)
            .chunks(self.window)
            .map(|c| c.iter().sum())
            .collect()
    }
}

/// Value at risk and expected shortfall (losses, positive) at 95% and 99%.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tails {
    pub var95: f64,
    pub cvar95: f64,
    pub var99: f64,
    pub cvar99: f64,
}

fn tails(x: &[f64]) -> Tails {
    let (var95, cvar95) = var_cvar(x, 0.95);
    let (var99, cvar99) = var_cvar(x, 0.99);
    Tails {
        var95,
        cvar95,
        var99,
        cvar99,
    }
}

/// Per-asset figures.
#[derive(Debug, Clone, Serialize)]
pub struct AssetMetrics {
    pub asset: String,
    pub ks_daily: TestResult,
    pub cvm_daily: TestResult,
    pub ks_horizon: TestResult,
    pub cvm_horizon: TestResult,
    pub mean_annual: f64,
    pub vol_annual: f64,
    pub skewness: f64,
    pub excess_kurtosis: f64,
    /// Coefficient of variation of the paths' own volatilities: how much calm and turbulent
    /// paths differ (Gaussian days of one volatility: about 0.13 for 30 days).
    pub path_vol_dispersion: f64,
    /// Excess kurtosis of the days, each path scaled by its own volatility: the fat tails
    /// that are not a mix of calm and turbulent paths.
    pub within_path_kurtosis: f64,
    pub tails_daily: Tails,
    pub tails_horizon: Tails,
    /// Autocorrelation of returns and of |returns| at lags 1..=10, pooled within paths.
    pub acf_returns: Vec<f64>,
    pub acf_abs_returns: Vec<f64>,
    /// Deciles 0.01, 0.05, 0.1, ..., 0.9, 0.95, 0.99 of daily returns (for Q-Q plots).
    pub quantiles_daily: Vec<f64>,
}

/// Equal-weight portfolio figures.
#[derive(Debug, Clone, Serialize)]
pub struct PortfolioMetrics {
    pub vol_annual: f64,
    pub tails_daily: Tails,
    pub tails_horizon: Tails,
    pub acf_returns: Vec<f64>,
    pub acf_abs_returns: Vec<f64>,
    /// corr(r_t, |r_{t+k}|), k = 1..=10, pooled within paths (negative: the leverage effect).
    pub leverage: Vec<f64>,
    pub quantiles_daily: Vec<f64>,
}

/// Cross-sectional figures.
#[derive(Debug, Clone, Serialize)]
pub struct CrossSection {
    pub mean_correlation: f64,
    /// ‖C − C_ref‖_F and max |C − C_ref| of the correlation matrices.
    pub correlation_error_frobenius: f64,
    pub correlation_error_max: f64,
    /// Eigenvalues of the daily covariance matrix, largest first.
    pub covariance_eigenvalues: Vec<f64>,
    pub condition_number: f64,
    pub correlation: Vec<f64>,
}

/// The probability levels of the stored quantiles.
pub const QUANTILE_LEVELS: [f64; 13] = [
    0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
];

fn quantiles(x: &[f64]) -> Vec<f64> {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    QUANTILE_LEVELS
        .iter()
        .map(|q| crate::stats::quantile(&s, *q))
        .collect()
}

/// Every metric of one set.
#[derive(Debug, Clone, Serialize)]
pub struct SetMetrics {
    pub paths: usize,
    pub per_asset: Vec<AssetMetrics>,
    pub portfolio: PortfolioMetrics,
    pub cross_section: CrossSection,
}

/// The real samples a set is tested against: daily returns of distinct days and window-horizon
/// returns of non-overlapping windows, so that the tests' samples hold no repeated day.
pub struct Reference<'a> {
    pub paths: Paths<'a>,
    pub distinct_days: &'a [f64],
    pub non_overlapping: Paths<'a>,
    pub correlation: Vec<f64>,
}

/// Metrics of `set` against `reference`; `names` are the asset names.
pub fn set_metrics(set: &Paths, reference: &Reference, names: &[String]) -> SetMetrics {
    let n = set.assets;
    let per_asset = (0..n)
        .map(|a| {
            let daily = set.column(a);
            let horizon = set.horizon(a);
            let ref_daily: Vec<f64> = reference
                .distinct_days
                .iter()
                .skip(a)
                .step_by(n)
                .copied()
                .collect();
            let ref_horizon = reference.non_overlapping.horizon(a);
            let abs: Vec<f64> = daily.iter().map(|r| r.abs()).collect();
            AssetMetrics {
                asset: names[a].clone(),
                ks_daily: ks_2samp(&daily, &ref_daily, KsMethod::Asymptotic),
                cvm_daily: cvm_2samp(&daily, &ref_daily),
                ks_horizon: ks_2samp(&horizon, &ref_horizon, KsMethod::Asymptotic),
                cvm_horizon: cvm_2samp(&horizon, &ref_horizon),
                mean_annual: mean(&daily) * TRADING_DAYS,
                vol_annual: std_dev(&daily, 1) * TRADING_DAYS.sqrt(),
                skewness: skewness(&daily),
                excess_kurtosis: excess_kurtosis(&daily),
                path_vol_dispersion: path_vol_dispersion(&daily, set.window),
                within_path_kurtosis: within_path_kurtosis(&daily, set.window),
                tails_daily: tails(&daily),
                tails_horizon: tails(&horizon),
                acf_returns: pooled_acf(&daily, set.window, LAGS)[1..].to_vec(),
                acf_abs_returns: pooled_acf(&abs, set.window, LAGS)[1..].to_vec(),
                quantiles_daily: quantiles(&daily),
            }
        })
        .collect();
    let ew = equal_weight_returns(set.values, n);
    let ew_abs: Vec<f64> = ew.iter().map(|r| r.abs()).collect();
    let ew_horizon: Vec<f64> = ew.chunks(set.window).map(|c| c.iter().sum()).collect();
    let portfolio = PortfolioMetrics {
        vol_annual: std_dev(&ew, 1) * TRADING_DAYS.sqrt(),
        tails_daily: tails(&ew),
        tails_horizon: tails(&ew_horizon),
        acf_returns: pooled_acf(&ew, set.window, LAGS)[1..].to_vec(),
        acf_abs_returns: pooled_acf(&ew_abs, set.window, LAGS)[1..].to_vec(),
        leverage: leverage(&ew, set.window, LAGS),
        quantiles_daily: quantiles(&ew),
    };
    let correlation = correlation_matrix(set.values, n);
    let diff: Vec<f64> = correlation
        .iter()
        .zip(&reference.correlation)
        .map(|(a, b)| a - b)
        .collect();
    let eigenvalues = symmetric_eigenvalues(&covariance_matrix(set.values, n, 1), n);
    let cross_section = CrossSection {
        mean_correlation: super::mean_off_diagonal(&correlation, n),
        correlation_error_frobenius: diff.iter().map(|d| d * d).sum::<f64>().sqrt(),
        correlation_error_max: diff.iter().fold(0f64, |m, d| m.max(d.abs())),
        condition_number: eigenvalues[0] / eigenvalues[n - 1],
        covariance_eigenvalues: eigenvalues,
        correlation,
    };
    SetMetrics {
        paths: set.count(),
        per_asset,
        portfolio,
        cross_section,
    }
}

/// corr(r_t, |r_{t+k}|) for k = 1..=lags, pairs taken within paths of `window` days.
pub fn leverage(r: &[f64], window: usize, lags: usize) -> Vec<f64> {
    (1..=lags)
        .map(|k| {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for path in r.chunks(window) {
                for t in 0..path.len().saturating_sub(k) {
                    a.push(path[t]);
                    b.push(path[t + k].abs());
                }
            }
            let (ma, mb) = (mean(&a), mean(&b));
            let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
            let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
            let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
            cov / (va * vb).sqrt()
        })
        .collect()
}

/// Eigenvalues of a symmetric matrix, largest first.
pub fn symmetric_eigenvalues(m: &[f64], n: usize) -> Vec<f64> {
    let mut values = crate::stats::symmetric_eigen(m, n).0;
    values.reverse();
    values
}
