//! The out-of-sample minimum-variance backtest: on each rebalance date every covariance
//! estimator sees only the trailing real returns (and, for the diffusion estimators, the
//! scenario set of the regime in force that morning); the portfolios are held, drifting with
//! prices, until the next rebalance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::min_variance::{global_min_variance, kkt_conditions, long_only_min_variance};
use crate::covariance::{condition_number, estimate_matrices, SyntheticCorrelation, METHODS};
use crate::data::{
    default_test_from, held_out_days, OnMissing, Panel, RegimeCalendar, RegimeRule, Returns,
    SignalSource, ValueKind, DEFAULT_DATE_COLUMN, EMBEDDED_PRICES, TRADING_DAYS,
};
use crate::error::{Error, Result};
use crate::io::{format_date, year_month};
use crate::report::REPORTS;
use crate::scenarios::{check_no_look_ahead, for_each_diffusion_set, DEFAULT_FOLDER};
use crate::stats::{column_variances, std_dev};

/// How often the portfolios are rebuilt: on the first trading day of each period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rebalance {
    Weekly,
    Monthly,
    Quarterly,
}

impl Rebalance {
    /// A key that changes exactly when a new period starts.
    fn period(self, date: i32) -> i64 {
        let (year, month) = year_month(date);
        match self {
            // 1970-01-01 was a Thursday: shifting by 3 makes weeks start on Monday.
            Rebalance::Weekly => (date as i64 + 3).div_euclid(7),
            Rebalance::Monthly => year as i64 * 12 + month as i64,
            Rebalance::Quarterly => year as i64 * 4 + (month as i64 - 1) / 3,
        }
    }
}

/// The two portfolio types built from each estimate.
pub const PORTFOLIOS: [&str; 2] = ["gmv", "long-only"];
/// The reference strategy's name.
pub const EQUAL_WEIGHT: &str = "equal-weight";

/// Settings of `scengen backtest`.
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    pub prices: PathBuf,
    pub date_column: String,
    /// First day held out of sample.
    pub from: i32,
    /// Last day (inclusive); the end of the data when `None`.
    pub to: Option<i32>,
    /// Trailing return days behind the classical estimators.
    pub lookback: usize,
    /// Trailing return days behind the variances that scale the synthetic correlation.
    pub variance_days: usize,
    pub rebalance: Rebalance,
    /// Diffusion scenario files, or folders of them (baseline files are skipped).
    pub scenarios: Vec<PathBuf>,
    pub signal: SignalSource,
    pub rule: RegimeRule,
    pub out: PathBuf,
}

/// The defaults on the embedded data: 2016 onwards, 252-day lookback, 63-day variances,
/// monthly rebalancing, the regimes of `scengen ingest`'s defaults, the diffusion files in
/// [`DEFAULT_FOLDER`], written to `reports/backtest`.
impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            prices: EMBEDDED_PRICES.into(),
            date_column: DEFAULT_DATE_COLUMN.into(),
            from: default_test_from(),
            to: None,
            lookback: 252,
            variance_days: 63,
            rebalance: Rebalance::Monthly,
            scenarios: vec![DEFAULT_FOLDER.into()],
            signal: SignalSource::embedded_index(),
            rule: RegimeRule::default(),
            out: Path::new(REPORTS).join("backtest"),
        }
    }
}

impl BacktestConfig {
    /// The defaults, reading `scenarios` and writing `out`.
    pub fn embedded(scenarios: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            scenarios,
            out: out.into(),
            ..Self::default()
        }
    }
}

/// One strategy's history: a (method, portfolio) pair, or the equal-weight reference.
#[derive(Debug, Clone)]
pub struct Strategy {
    pub method: String,
    pub portfolio: String,
    /// Simple returns, one per test day.
    pub daily_returns: Vec<f64>,
    /// Target weights, one vector per rebalance.
    pub weights: Vec<Vec<f64>>,
    /// Σ|w_target − w_drifted| at each rebalance after the first.
    pub turnover: Vec<f64>,
    /// Condition number of the estimate behind each rebalance (NaN for equal weight).
    pub condition_numbers: Vec<f64>,
    /// The worst KKT violation of the weights over all rebalances (0 for closed forms).
    pub worst_kkt_violation: f64,
}

/// The figures of one strategy over the test period.
#[derive(Debug, Clone, Serialize)]
pub struct StrategySummary {
    pub method: String,
    pub portfolio: String,
    pub annualised_volatility: f64,
    pub annualised_return: f64,
    pub max_drawdown: f64,
    pub turnover_per_rebalance: f64,
    pub annual_turnover: f64,
    pub mean_condition_number: f64,
    pub worst_kkt_violation: f64,
}

/// Everything the backtest produced.
#[derive(Debug, Clone)]
pub struct Backtest {
    /// The settings it ran with (its files record them).
    pub config: BacktestConfig,
    pub assets: Vec<String>,
    /// Test days, one per daily return.
    pub dates: Vec<i32>,
    pub rebalance_dates: Vec<i32>,
    /// The regime in force on each rebalance date.
    pub regimes: Vec<String>,
    pub strategies: Vec<Strategy>,
    pub summary: Vec<StrategySummary>,
    /// Scenario file behind each regime.
    pub scenario_files: BTreeMap<String, PathBuf>,
}

/// Per regime: the scenario file and its synthetic correlation.
type SyntheticByRegime = BTreeMap<String, (PathBuf, SyntheticCorrelation)>;

/// The synthetic correlation of each regime's diffusion scenario file, checking that the files
/// agree on assets and that no model saw the test period.
fn synthetic_by_regime(config: &BacktestConfig) -> Result<(Vec<String>, SyntheticByRegime)> {
    let mut assets: Option<Vec<String>> = None;
    let mut by_regime = SyntheticByRegime::new();
    for_each_diffusion_set(&config.scenarios, |set| {
        let file = set.path.clone();
        check_no_look_ahead(&file, &set.metadata, config.from)?;
        if let Some(known) = &assets {
            if *known != set.assets {
                return Err(Error::bad_file(
                    &file,
                    format!("assets {:?} differ from {:?}", set.assets, known),
                ));
            }
        }
        let n = set.assets.len();
        let synthetic = SyntheticCorrelation::from_rows(&set.values, n);
        assets = Some(set.assets);
        by_regime.insert(set.regime, (file, synthetic));
        Ok(())
    })?;
    Ok((assets.expect("at least one diffusion set"), by_regime))
}

/// Runs the backtest; writes nothing (see [`Backtest`]'s [`crate::report::StageReport`]).
pub fn run(config: &BacktestConfig) -> Result<Backtest> {
    if let Some(to) = config.to.filter(|to| *to < config.from) {
        return Err(Error::option(
            "to",
            format_date(to),
            format!(
                "is before the period's start, from {}",
                format_date(config.from)
            ),
        ));
    }
    let (assets, synthetic) = synthetic_by_regime(config)?;
    check_windows(config, assets.len())?;
    let panel = Panel::read(&config.prices, &config.date_column, Some(&assets))?
        .clean(ValueKind::Prices, OnMissing::Error)?;
    let returns = Returns::from_panel(&panel, ValueKind::Prices);
    let calendar = RegimeCalendar::load(&config.signal, &config.rule, &config.date_column)?;
    let days = &returns.dates;
    let period = held_out_days(
        days,
        &config.prices,
        (config.from, config.to),
        1,
        config.lookback,
    )?;
    let (first, end) = (period.start, period.end);
    let n = assets.len();
    // Row-major daily log returns, for the estimators.
    let rows: Vec<f64> = (0..days.len())
        .flat_map(|t| returns.columns.iter().map(move |c| c[t]))
        .collect();

    let mut strategies = every_strategy(end - first);
    let mut holdings: Vec<Vec<f64>> = vec![vec![0.0; n]; strategies.len()];
    let mut rebalance_dates = Vec::new();
    let mut regimes = Vec::new();
    for t in first..end {
        let is_rebalance =
            t == first || config.rebalance.period(days[t]) != config.rebalance.period(days[t - 1]);
        if is_rebalance {
            let regime = calendar
                .label(days[t - 1], days[t], "the rebalance")?
                .to_string();
            let (_, synthetic_corr) = synthetic.get(&regime).ok_or_else(|| {
                Error::option(
                    "scenarios",
                    "",
                    format!(
                        "no diffusion scenario file for regime `{regime}`, in force on {}",
                        format_date(days[t])
                    ),
                )
            })?;
            let targets = target_weights(config, &rows, n, t, days[t], synthetic_corr)?;
            for ((strategy, held), (weights, kappa, violation)) in
                strategies.iter_mut().zip(&mut holdings).zip(targets)
            {
                if t != first {
                    strategy.turnover.push(
                        weights
                            .iter()
                            .zip(held.iter())
                            .map(|(a, b)| (a - b).abs())
                            .sum(),
                    );
                }
                held.clone_from(&weights);
                strategy.weights.push(weights);
                strategy.condition_numbers.push(kappa);
                strategy.worst_kkt_violation = strategy.worst_kkt_violation.max(violation);
            }
            rebalance_dates.push(days[t]);
            regimes.push(regime);
        }
        // Hold: the day's simple return, then let the weights drift with prices.
        let simple: Vec<f64> = returns.columns.iter().map(|c| c[t].exp_m1()).collect();
        for (strategy, held) in strategies.iter_mut().zip(&mut holdings) {
            let r: f64 = held.iter().zip(&simple).map(|(w, r)| w * r).sum();
            for (w, ri) in held.iter_mut().zip(&simple) {
                *w *= (1.0 + ri) / (1.0 + r);
            }
            strategy.daily_returns.push(r);
        }
    }
    let years = (end - first) as f64 / TRADING_DAYS;
    let summary = strategies.iter().map(|s| summarise(s, years)).collect();
    Ok(Backtest {
        config: config.clone(),
        assets,
        dates: days[first..end].to_vec(),
        rebalance_dates,
        regimes,
        strategies,
        summary,
        scenario_files: synthetic
            .into_iter()
            .map(|(regime, (file, _))| (regime, file))
            .collect(),
    })
}

/// The lookback must give an invertible sample covariance of `n` assets, and the variance
/// days must fit in it.
fn check_windows(config: &BacktestConfig, n: usize) -> Result<()> {
    if config.lookback <= n {
        return Err(Error::option(
            "lookback",
            config.lookback,
            format!("needs more days than the {n} assets for an invertible sample covariance"),
        ));
    }
    if config.variance_days < 2 || config.variance_days > config.lookback {
        return Err(Error::option(
            "variance_days",
            config.variance_days,
            format!("must lie in 2..={} (the lookback)", config.lookback),
        ));
    }
    Ok(())
}

/// Every (estimator, portfolio) strategy and the equal-weight reference, with room for `days`
/// daily returns.
fn every_strategy(days: usize) -> Vec<Strategy> {
    METHODS
        .iter()
        .flat_map(|m| {
            PORTFOLIOS
                .iter()
                .map(move |p| (m.to_string(), p.to_string()))
        })
        .chain(std::iter::once((EQUAL_WEIGHT.into(), EQUAL_WEIGHT.into())))
        .map(|(method, portfolio)| Strategy {
            method,
            portfolio,
            daily_returns: Vec::with_capacity(days),
            weights: Vec::new(),
            turnover: Vec::new(),
            condition_numbers: Vec::new(),
            worst_kkt_violation: 0.0,
        })
        .collect()
}

/// The target weights of every strategy on the rebalance of return day `t` (dated `day`), in
/// the order of [`every_strategy`], each with its matrix's condition number and the long-only
/// solution's worst KKT violation.
fn target_weights(
    config: &BacktestConfig,
    rows: &[f64],
    n: usize,
    t: usize,
    day: i32,
    synthetic_corr: &SyntheticCorrelation,
) -> Result<Vec<(Vec<f64>, f64, f64)>> {
    let recent = &rows[(t - config.variance_days) * n..t * n];
    let matrices = estimate_matrices(
        &rows[(t - config.lookback) * n..t * n],
        n,
        synthetic_corr,
        &column_variances(recent, n),
    );
    let mut targets = Vec::new();
    for (method, cov) in METHODS.iter().zip(&matrices) {
        let kappa = condition_number(cov, n);
        let not_invertible = || {
            Error::option(
                "lookback",
                config.lookback,
                format!(
                    "the {method} covariance on {} is not positive definite",
                    format_date(day)
                ),
            )
        };
        let gmv = global_min_variance(cov, n).ok_or_else(not_invertible)?;
        let long_only = long_only_min_variance(cov, n).ok_or_else(not_invertible)?;
        let violation = kkt_conditions(cov, n, &long_only).worst_violation();
        targets.push((gmv, kappa, 0.0));
        targets.push((long_only, kappa, violation));
    }
    targets.push((vec![1.0 / n as f64; n], f64::NAN, 0.0));
    Ok(targets)
}

/// Wealth from daily simple returns, starting at 1 (the value before the first day excluded).
pub fn cumulative_wealth(returns: &[f64]) -> Vec<f64> {
    returns
        .iter()
        .scan(1.0, |w, r| {
            *w *= 1.0 + r;
            Some(*w)
        })
        .collect()
}

/// The largest fall from a running peak, as a fraction of the peak (starting wealth 1).
pub fn max_drawdown(returns: &[f64]) -> f64 {
    let mut peak = 1.0f64;
    let mut worst = 0.0f64;
    for w in cumulative_wealth(returns) {
        peak = peak.max(w);
        worst = worst.max(1.0 - w / peak);
    }
    worst
}

fn summarise(s: &Strategy, years: f64) -> StrategySummary {
    let wealth = cumulative_wealth(&s.daily_returns);
    let finite: Vec<f64> = s
        .condition_numbers
        .iter()
        .copied()
        .filter(|k| k.is_finite())
        .collect();
    let total_turnover: f64 = s.turnover.iter().sum();
    StrategySummary {
        method: s.method.clone(),
        portfolio: s.portfolio.clone(),
        annualised_volatility: std_dev(&s.daily_returns, 1) * TRADING_DAYS.sqrt(),
        annualised_return: wealth.last().copied().unwrap_or(1.0).powf(1.0 / years) - 1.0,
        max_drawdown: max_drawdown(&s.daily_returns),
        turnover_per_rebalance: total_turnover / s.turnover.len().max(1) as f64,
        annual_turnover: total_turnover / years,
        mean_condition_number: if finite.is_empty() {
            f64::NAN
        } else {
            finite.iter().sum::<f64>() / finite.len() as f64
        },
        worst_kkt_violation: s.worst_kkt_violation,
    }
}
