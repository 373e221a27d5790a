//! The summary table of an evaluation: one headline figure per scored set and the noise floor,
//! with the best set of each row.

use serde::Serialize;

use super::metrics::SetMetrics;

/// A row of the summary table: one headline figure per set.
#[derive(Debug, Clone, Serialize)]
pub struct HeadlineRow {
    pub key: &'static str,
    pub label: &'static str,
    /// The real windows' own value, where the figure is a level rather than an error.
    pub reference: Option<f64>,
    /// One value per scored set, in `sets` order, then the noise floor.
    pub values: Vec<f64>,
    /// Index of the best set (noise floor excluded).
    pub best: Option<usize>,
}

/// The headline row of the energy distances (NaN where there is none); the best is the nearest
/// zero, since the unbiased statistic of a set of the same law can be just below it.
pub fn energy_distance_row(distances: &[Option<f64>]) -> HeadlineRow {
    let mut values: Vec<f64> = distances.iter().map(|d| d.unwrap_or(f64::NAN)).collect();
    values.push(f64::NAN);
    let best = (0..distances.len())
        .filter(|&i| values[i].is_finite())
        .min_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()));
    HeadlineRow {
        key: "energy_distance",
        label: "energy distance to the chosen set",
        reference: None,
        values,
        best,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The summary table's rows: `sets` are each scored set's metrics and memorisation share, and
/// `floor` the noise floor's, which is never the best.
pub fn headline(
    reference: &SetMetrics,
    sets: &[(&SetMetrics, f64)],
    floor: (&SetMetrics, f64),
) -> Vec<HeadlineRow> {
    type Figure = fn(&SetMetrics, &SetMetrics) -> f64;
    // (key, label, figure, is a level compared with the reference's own value)
    let rows: Vec<(&'static str, &'static str, Figure, bool)> = vec![
        (
            "ks_daily_median",
            "median KS D, daily returns",
            |m, _| median(m.per_asset.iter().map(|a| a.ks_daily.statistic).collect()),
            false,
        ),
        (
            "ks_horizon_median",
            "median KS D, window-horizon returns",
            |m, _| median(m.per_asset.iter().map(|a| a.ks_horizon.statistic).collect()),
            false,
        ),
        (
            "cvm_daily_rejections",
            "assets with CvM p < 0.05, daily",
            |m, _| {
                m.per_asset
                    .iter()
                    .filter(|a| a.cvm_daily.pvalue < 0.05)
                    .count() as f64
            },
            false,
        ),
        (
            "ew_vol_annual",
            "equal-weight volatility (annualised)",
            |m, _| m.portfolio.vol_annual,
            true,
        ),
        (
            "ew_var99_daily",
            "equal-weight 99% VaR, daily",
            |m, _| m.portfolio.tails_daily.var99,
            true,
        ),
        (
            "ew_cvar99_horizon",
            "equal-weight 99% CVaR, window horizon",
            |m, _| m.portfolio.tails_horizon.cvar99,
            true,
        ),
        (
            "acf_abs_error",
            "mean |ACF(|r|) error|, lags 1-10, per asset",
            |m, r| {
                let mut s = 0.0;
                for (a, b) in m.per_asset.iter().zip(&r.per_asset) {
                    s += a
                        .acf_abs_returns
                        .iter()
                        .zip(&b.acf_abs_returns)
                        .map(|(x, y)| (x - y).abs())
                        .sum::<f64>();
                }
                s / (m.per_asset.len() * 10) as f64
            },
            false,
        ),
        (
            "ew_acf_abs_lag1",
            "equal-weight ACF(|r|) lag 1",
            |m, _| m.portfolio.acf_abs_returns[0],
            true,
        ),
        (
            "leverage_error",
            "mean |leverage error|, lags 1-10 (equal weight)",
            |m, r| {
                m.portfolio
                    .leverage
                    .iter()
                    .zip(&r.portfolio.leverage)
                    .map(|(x, y)| (x - y).abs())
                    .sum::<f64>()
                    / 10.0
            },
            false,
        ),
        (
            "mean_correlation",
            "mean pairwise correlation",
            |m, _| m.cross_section.mean_correlation,
            true,
        ),
        (
            "correlation_error_frobenius",
            "correlation error (Frobenius)",
            |m, _| m.cross_section.correlation_error_frobenius,
            false,
        ),
        (
            "condition_number",
            "covariance condition number",
            |m, _| m.cross_section.condition_number,
            true,
        ),
        (
            "kurtosis_median",
            "median excess kurtosis, daily",
            |m, _| median(m.per_asset.iter().map(|a| a.excess_kurtosis).collect()),
            true,
        ),
        (
            "path_vol_dispersion_median",
            "median spread of volatility across paths (CV)",
            |m, _| median(m.per_asset.iter().map(|a| a.path_vol_dispersion).collect()),
            true,
        ),
        (
            "within_path_kurtosis_median",
            "median excess kurtosis within paths",
            |m, _| median(m.per_asset.iter().map(|a| a.within_path_kurtosis).collect()),
            true,
        ),
    ];
    let memo_row = HeadlineRow {
        key: "memorization_share",
        label: "paths with nearest/second-nearest train distance < 1/3",
        reference: None,
        values: sets
            .iter()
            .chain(std::iter::once(&floor))
            .map(|s| s.1)
            .collect(),
        best: None,
    };
    let mut out: Vec<HeadlineRow> = rows
        .into_iter()
        .map(|(key, label, f, level)| {
            let values: Vec<f64> = sets
                .iter()
                .chain(std::iter::once(&floor))
                .map(|s| f(s.0, reference))
                .collect();
            let reference_value = level.then(|| f(reference, reference));
            let score = |v: f64| match reference_value {
                Some(r) => (v - r).abs(),
                None => v,
            };
            let best =
                (0..sets.len()).min_by(|&a, &b| score(values[a]).total_cmp(&score(values[b])));
            HeadlineRow {
                key,
                label,
                reference: reference_value,
                values,
                best,
            }
        })
        .collect();
    out.push(memo_row);
    out
}
