//! `scengen var-backtest`: are the scenario sets' VaR figures right on days they did not see?
//! On every test day the portfolio's VaR is forecast from the scenario set of the regime in
//! force that morning (each generator's files, one per regime) and, as the reference a risk
//! desk runs today, by historical simulation over the trailing days; the real P&L of holding
//! the positions over the horizon then either exceeds it or not. The exceedances are tested
//! for their rate (Kupiec), their clustering (Christoffersen) and, for 1-day 99% VaR, scored
//! by the Basel traffic light over every 250-day stretch.
//!
//! A regime's scenario set is one distribution for every day of that regime. With
//! [`VarBacktestConfig::ewma_lambda`] each model is also scored scaled to the portfolio's
//! volatility of the day, its exponentially weighted volatility at the previous close (Hull and
//! White's volatility updating). Historical simulation rescales each past outcome from the
//! volatility forecast for its first day to today's. A scenario path has no such forecast, so its
//! outcome is measured in units of the path's own volatility on the days after the horizon, days
//! the outcome does not include, as the EWMA forecast does not include the day it forecasts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::{check_horizons_and_levels, horizon_pnl, Portfolio};
use crate::baselines::{backcast, log_likelihood, Garch11};
use crate::data::{
    held_out_days, OnMissing, Panel, RegimeCalendar, RegimeRule, Returns, SignalSource, ValueKind,
    EMBEDDED_PRICES,
};
use crate::error::{Error, Result};
use crate::io::{format_date, parse_date};
use crate::sample::{
    check_no_look_ahead, generator_settings, read_scenarios, scenario_files, ScenarioSet,
};
use crate::stats::{
    basel_zone, christoffersen_independence, conditional_coverage, kupiec_pof, mean, var_cvar,
    LikelihoodRatio, BASEL_DAYS,
};

/// The name of the historical-simulation reference among the models.
pub const HISTORICAL: &str = "historical";

/// RiskMetrics' decay for daily volatility.
pub const RISKMETRICS_LAMBDA: f64 = 0.94;

/// What a model's name gets when it is scaled to the EWMA volatility.
pub const EWMA_SUFFIX: &str = "+ewma";

/// The fewest days a scenario path must have after the horizon to measure its own volatility.
pub const MIN_DAYS_AFTER_HORIZON: usize = 10;

/// Settings of one VaR backtest.
#[derive(Debug, Clone)]
pub struct VarBacktestConfig {
    pub portfolio: PathBuf,
    pub prices: PathBuf,
    pub date_column: String,
    /// First test day: the first morning a VaR is forecast.
    pub from: i32,
    /// Last day whose return counts (inclusive); the end of the data when `None`.
    pub to: Option<i32>,
    /// Holding periods in days.
    pub horizons: Vec<usize>,
    /// VaR confidence levels, each in (0, 1).
    pub levels: Vec<f64>,
    /// Trailing return days behind historical simulation.
    pub lookback: usize,
    /// The decay of the portfolio's EWMA volatility; when set, every model is scored a second
    /// time, scaled to that volatility, as `<model>+ewma`.
    pub ewma_lambda: Option<f64>,
    /// Scenario files or folders of them: each generator (`scengen.method`) needs one file per
    /// regime that occurs in the test period.
    pub scenarios: Vec<PathBuf>,
    pub signal: SignalSource,
    pub rule: RegimeRule,
    pub out: PathBuf,
}

impl VarBacktestConfig {
    /// The defaults on the embedded data: the example portfolio, 2016 onwards, 1- and 10-day
    /// VaR at 95% and 99%, 500 days of historical simulation, the regimes of `scengen ingest`'s
    /// defaults.
    pub fn embedded(scenarios: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            portfolio: crate::demo::EXAMPLE_PORTFOLIO.into(),
            prices: EMBEDDED_PRICES.into(),
            date_column: "date".into(),
            from: parse_date("--from", crate::demo::TEST_FROM).expect("a valid date"),
            to: None,
            horizons: vec![1, 10],
            levels: vec![0.95, 0.99],
            lookback: 500,
            ewma_lambda: Some(RISKMETRICS_LAMBDA),
            scenarios,
            signal: SignalSource::embedded_index(),
            rule: RegimeRule::default(),
            out: out.into(),
        }
    }
}

/// A VaR model under test: a generator's scenario files, or historical simulation, each as it
/// is or scaled to the EWMA volatility.
#[derive(Debug, Clone, Serialize)]
pub struct VarModel {
    pub name: String,
    /// The generator (`scengen.method`), or [`HISTORICAL`].
    pub method: String,
    pub ewma_scaled: bool,
    /// Per regime, its scenario file; empty for historical simulation.
    pub files: BTreeMap<String, ScenarioFile>,
}

/// A scenario file and how it was generated ([`generator_settings`]).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioFile {
    pub file: String,
    pub generator: BTreeMap<String, String>,
}

/// How one model's exceedances behaved in one regime.
#[derive(Debug, Clone, Serialize)]
pub struct RegimeCoverage {
    pub regime: String,
    pub forecasts: usize,
    pub exceedances: usize,
    pub kupiec: LikelihoodRatio,
}

/// The Basel traffic light over every stretch of [`BASEL_DAYS`] consecutive forecasts.
#[derive(Debug, Clone, Serialize)]
pub struct BaselZones {
    pub stretches: usize,
    pub most_exceedances: usize,
    pub worst_zone: &'static str,
    pub share_green: f64,
    pub share_yellow: f64,
    pub share_red: f64,
    pub last_exceedances: usize,
    pub last_zone: &'static str,
}

/// One model's record at one horizon and level.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub model: String,
    pub horizon: usize,
    pub level: f64,
    pub forecasts: usize,
    pub exceedances: usize,
    pub expected: f64,
    /// The mean forecast VaR, in the portfolio's currency: what the coverage costs in capital.
    pub mean_var: f64,
    /// Mean loss beyond the VaR on the days it was exceeded (0 without exceedances).
    pub mean_excess_loss: f64,
    pub kupiec: LikelihoodRatio,
    pub independence: LikelihoodRatio,
    pub conditional_coverage: LikelihoodRatio,
    pub by_regime: Vec<RegimeCoverage>,
    /// For 1-day 99% VaR only.
    pub basel: Option<BaselZones>,
    /// Per forecast: the VaR (for `forecasts.parquet` and the plot).
    #[serde(skip)]
    pub var: Vec<f64>,
}

/// The forecasts made at one horizon: non-overlapping holding periods.
#[derive(Debug, Clone)]
pub struct HorizonForecasts {
    pub horizon: usize,
    /// The first day of each holding period.
    pub dates: Vec<i32>,
    /// The regime in force on that day.
    pub regimes: Vec<String>,
    /// The real P&L of holding the positions from the close before `dates[k]` for the horizon.
    pub pnl: Vec<f64>,
}

/// Everything the backtest produced.
#[derive(Debug, Clone)]
pub struct VarBacktest {
    pub portfolio: Portfolio,
    pub models: Vec<VarModel>,
    pub forecasts: Vec<HorizonForecasts>,
    /// One per model, horizon and level, in that order.
    pub coverage: Vec<Coverage>,
}

/// What a scenario file says about the portfolio, per horizon and level.
struct FileRisk {
    /// The VaR over the file's paths.
    var: Vec<Vec<f64>>,
    /// The VaR of each path's outcome over that path's volatility (the root mean square of its
    /// daily P&L on the days after the horizon): the file's shape, in units of daily volatility.
    /// Empty without EWMA scaling.
    standardized_var: Vec<Vec<f64>>,
}

/// Per generator and regime.
type ScenarioVar = BTreeMap<(String, String), FileRisk>;

/// Reads every scenario file once, groups them by generator, and keeps only the portfolio's VaR
/// of each (file, horizon, level); returns the models, their VaR and the files' assets.
fn scenario_models(
    config: &VarBacktestConfig,
    portfolio: &Portfolio,
) -> Result<(Vec<VarModel>, ScenarioVar, Vec<String>)> {
    let mut models: BTreeMap<String, VarModel> = BTreeMap::new();
    let mut var = ScenarioVar::new();
    let mut assets: Option<(Vec<String>, PathBuf)> = None;
    for path in scenario_files(&config.scenarios)? {
        let set = read_scenarios(&path)?;
        check_no_look_ahead(&path, &set.metadata, config.from)?;
        match &assets {
            Some((known, first)) if *known != set.assets => {
                return Err(Error::bad_file(
                    &path,
                    format!(
                        "assets {:?} differ from those of {} ({:?})",
                        set.assets,
                        first.display(),
                        known
                    ),
                ))
            }
            Some(_) => {}
            None => assets = Some((set.assets.clone(), path.clone())),
        }
        if let Some(h) = config.horizons.iter().find(|&&h| h > set.window) {
            return Err(Error::option(
                "--horizons",
                h,
                format!(
                    "longer than the {}-day paths of {}",
                    set.window,
                    path.display()
                ),
            ));
        }
        let too_long_to_scale = config
            .horizons
            .iter()
            .find(|&&h| h + MIN_DAYS_AFTER_HORIZON > set.window);
        if let (Some(_), Some(h)) = (config.ewma_lambda, too_long_to_scale) {
            return Err(Error::option(
                "--horizons",
                h,
                format!(
                    "leaves {} days of the {}-day paths of {} after it; scaling to the EWMA \
                     volatility measures each path's own volatility on at least \
                     {MIN_DAYS_AFTER_HORIZON} (or give --no-ewma)",
                    set.window - h,
                    set.window,
                    path.display()
                ),
            ));
        }
        let name = set
            .metadata
            .get("scengen.method")
            .cloned()
            .unwrap_or_else(|| "diffusion".into());
        let model = models.entry(name.clone()).or_insert_with(|| VarModel {
            name: name.clone(),
            method: name.clone(),
            ewma_scaled: false,
            files: BTreeMap::new(),
        });
        if let Some(first) = model.files.get(&set.regime) {
            return Err(Error::option(
                "--scenarios",
                path.display(),
                format!(
                    "a second `{name}` scenario file for regime `{}` (first: {}); \
                     give one file per generator and regime",
                    set.regime, first.file
                ),
            ));
        }
        let exposures = portfolio.exposures(&set.assets, &path)?;
        let outcomes: Vec<Vec<f64>> = config
            .horizons
            .iter()
            .map(|&h| horizon_pnl(&set.values, set.window, set.assets.len(), &exposures, h).total)
            .collect();
        let standardized = match config.ewma_lambda {
            Some(_) => standardized_outcomes(&set, &exposures, &config.horizons, &outcomes),
            None => Vec::new(),
        };
        let var_of = |outcomes: &[Vec<f64>]| -> Vec<Vec<f64>> {
            outcomes
                .iter()
                .map(|o| config.levels.iter().map(|&l| var_cvar(o, l).0).collect())
                .collect()
        };
        var.insert(
            (name, set.regime.clone()),
            FileRisk {
                var: var_of(&outcomes),
                standardized_var: var_of(&standardized),
            },
        );
        model.files.insert(
            set.regime.clone(),
            ScenarioFile {
                file: path.display().to_string(),
                generator: generator_settings(&set.metadata),
            },
        );
    }
    let (assets, _) = assets.expect("scenario_files returns at least one file");
    Ok((models.into_values().collect(), var, assets))
}

/// Per horizon, each path's outcome over the root mean square of the path's daily P&L on the
/// days after the horizon. A path without P&L on those days has no scale and is left out.
fn standardized_outcomes(
    set: &ScenarioSet,
    exposures: &[(usize, f64)],
    horizons: &[usize],
    outcomes: &[Vec<f64>],
) -> Vec<Vec<f64>> {
    let assets = set.assets.len();
    let daily: Vec<Vec<f64>> = set
        .values
        .chunks_exact(set.window * assets)
        .map(|path| {
            path.chunks_exact(assets)
                .map(|day| exposures.iter().map(|&(a, v)| v * day[a].exp_m1()).sum())
                .collect()
        })
        .collect();
    horizons
        .iter()
        .zip(outcomes)
        .map(|(&h, outcome)| {
            outcome
                .iter()
                .zip(&daily)
                .filter_map(|(x, days)| {
                    let after = &days[h..];
                    let rms =
                        (after.iter().map(|y| y * y).sum::<f64>() / after.len() as f64).sqrt();
                    (rms > 0.0).then(|| x / rms)
                })
                .collect()
        })
        .collect()
}

/// Runs the backtest; writes nothing (see [`super::write_var_backtest`]).
pub fn run_var_backtest(config: &VarBacktestConfig) -> Result<VarBacktest> {
    check_horizons_and_levels(&config.horizons, &config.levels)?;
    let longest = *config.horizons.iter().max().expect("checked: not empty");
    if config.lookback < longest + 19 {
        return Err(Error::option(
            "--lookback",
            config.lookback,
            format!(
                "leaves historical simulation fewer than 20 {longest}-day outcomes; give at least {}",
                longest + 19
            ),
        ));
    }
    if let Some(lambda) = config.ewma_lambda {
        if !(lambda > 0.0 && lambda < 1.0) {
            return Err(Error::option(
                "--ewma-lambda",
                lambda,
                "must lie strictly between 0 and 1",
            ));
        }
    }
    let portfolio = Portfolio::read(&config.portfolio)?;
    let (mut models, scenario_var, assets) = scenario_models(config, &portfolio)?;
    let panel = Panel::read(&config.prices, &config.date_column, Some(&assets))?
        .clean(ValueKind::Prices, OnMissing::Error)?;
    let returns = Returns::from_panel(&panel, ValueKind::Prices);
    let exposures = portfolio.exposures(&assets, &config.prices)?;
    let days = &returns.dates;
    let period = held_out_days(
        days,
        &config.prices,
        (config.from, config.to),
        longest,
        config.lookback,
    )?;
    let (first, end) = (period.start, period.end);
    let calendar = RegimeCalendar::load(&config.signal, &config.rule, &config.date_column)?;
    // Running sums of each asset's log returns: a holding period's return in O(1).
    let cumulative: Vec<Vec<f64>> = returns
        .columns
        .iter()
        .map(|c| {
            std::iter::once(0.0)
                .chain(c.iter().scan(0.0, |s, r| {
                    *s += r;
                    Some(*s)
                }))
                .collect()
        })
        .collect();
    let held_pnl = |start: usize, horizon: usize| -> f64 {
        exposures
            .iter()
            .map(|&(a, v)| v * (cumulative[a][start + horizon] - cumulative[a][start]).exp_m1())
            .sum()
    };

    // The volatility forecast for each return day, made at the close before it; its start
    // comes from days before the first test day only.
    let volatility: Vec<f64> = match config.ewma_lambda {
        Some(lambda) => {
            let daily: Vec<f64> = (0..days.len()).map(|s| held_pnl(s, 1)).collect();
            let ewma = Garch11::riskmetrics(lambda);
            log_likelihood(&daily, &ewma, backcast(&daily[..first]))
                .1
                .into_iter()
                .map(f64::sqrt)
                .collect()
        }
        None => Vec::new(),
    };
    models.push(VarModel {
        name: HISTORICAL.into(),
        method: HISTORICAL.into(),
        ewma_scaled: false,
        files: BTreeMap::new(),
    });
    if config.ewma_lambda.is_some() {
        models = models
            .into_iter()
            .flat_map(|m| {
                let scaled = VarModel {
                    name: format!("{}{EWMA_SUFFIX}", m.name),
                    ewma_scaled: true,
                    ..m.clone()
                };
                [m, scaled]
            })
            .collect();
    }
    let mut forecasts = Vec::new();
    let mut coverage = Vec::new();
    for (h, &horizon) in config.horizons.iter().enumerate() {
        let starts: Vec<usize> = (first..=end - horizon).step_by(horizon).collect();
        let regimes = starts
            .iter()
            .map(|&t| {
                Ok(calendar
                    .label(days[t - 1], days[t], "a VaR forecast")?
                    .to_string())
            })
            .collect::<Result<Vec<String>>>()?;
        let pnl: Vec<f64> = starts.iter().map(|&t| held_pnl(t, horizon)).collect();
        for model in &models {
            // Per level, the VaR forecast at each start.
            let var: Vec<Vec<f64>> = if model.method == HISTORICAL {
                let outcomes: Vec<Vec<f64>> = starts
                    .iter()
                    .map(|&t| {
                        (t - config.lookback..=t - horizon)
                            .map(|s| {
                                let outcome = held_pnl(s, horizon);
                                if model.ewma_scaled {
                                    outcome * volatility[t] / volatility[s]
                                } else {
                                    outcome
                                }
                            })
                            .collect()
                    })
                    .collect();
                config
                    .levels
                    .iter()
                    .map(|&level| outcomes.iter().map(|o| var_cvar(o, level).0).collect())
                    .collect()
            } else {
                let by_regime = |regime: &str, date: i32| {
                    scenario_var
                        .get(&(model.method.clone(), regime.to_string()))
                        .ok_or_else(|| {
                            Error::option(
                                "--scenarios",
                                "",
                                format!(
                                    "no `{}` scenario file for regime `{regime}`, in force on {}",
                                    model.method,
                                    format_date(date)
                                ),
                            )
                        })
                };
                (0..config.levels.len())
                    .map(|l| {
                        starts
                            .iter()
                            .zip(&regimes)
                            .map(|(&t, regime)| {
                                let file = by_regime(regime, days[t])?;
                                Ok(if model.ewma_scaled {
                                    file.standardized_var[h][l] * volatility[t]
                                } else {
                                    file.var[h][l]
                                })
                            })
                            .collect::<Result<Vec<f64>>>()
                    })
                    .collect::<Result<Vec<_>>>()?
            };
            for (&level, var) in config.levels.iter().zip(var) {
                coverage.push(score(&model.name, horizon, level, &pnl, &regimes, var));
            }
        }
        forecasts.push(HorizonForecasts {
            horizon,
            dates: starts.iter().map(|&t| days[t]).collect(),
            regimes,
            pnl,
        });
    }
    Ok(VarBacktest {
        portfolio,
        models,
        forecasts,
        coverage,
    })
}

/// Tests one model's exceedances: a loss (−P&L) larger than the VaR forecast for that period.
fn score(
    model: &str,
    horizon: usize,
    level: f64,
    pnl: &[f64],
    regimes: &[String],
    var: Vec<f64>,
) -> Coverage {
    let p = 1.0 - level;
    let hits: Vec<bool> = pnl.iter().zip(&var).map(|(x, v)| -x > *v).collect();
    let exceedances = hits.iter().filter(|&&h| h).count();
    let excess: Vec<f64> = pnl
        .iter()
        .zip(&var)
        .filter(|(x, v)| -**x > **v)
        .map(|(x, v)| -x - v)
        .collect();
    let kupiec = kupiec_pof(hits.len(), exceedances, p);
    let independence = christoffersen_independence(&hits);
    let mut labels: Vec<&String> = regimes.iter().collect();
    labels.sort();
    labels.dedup();
    let by_regime = labels
        .into_iter()
        .map(|regime| {
            let in_regime: Vec<bool> = hits
                .iter()
                .zip(regimes)
                .filter(|(_, r)| *r == regime)
                .map(|(h, _)| *h)
                .collect();
            let exceedances = in_regime.iter().filter(|&&h| h).count();
            RegimeCoverage {
                regime: regime.clone(),
                forecasts: in_regime.len(),
                exceedances,
                kupiec: kupiec_pof(in_regime.len(), exceedances, p),
            }
        })
        .collect();
    Coverage {
        model: model.to_string(),
        horizon,
        level,
        forecasts: hits.len(),
        exceedances,
        expected: p * hits.len() as f64,
        mean_var: mean(&var),
        mean_excess_loss: if excess.is_empty() {
            0.0
        } else {
            mean(&excess)
        },
        conditional_coverage: conditional_coverage(&kupiec, &independence),
        kupiec,
        independence,
        by_regime,
        basel: (horizon == 1 && (level - 0.99).abs() < 1e-12 && hits.len() >= BASEL_DAYS)
            .then(|| basel_zones(&hits)),
        var,
    }
}

/// The traffic light over every [`BASEL_DAYS`] consecutive forecasts (at least that many).
fn basel_zones(hits: &[bool]) -> BaselZones {
    let counts: Vec<usize> = hits
        .windows(BASEL_DAYS)
        .map(|w| w.iter().filter(|&&h| h).count())
        .collect();
    let share = |zone: &str| {
        counts.iter().filter(|&&c| basel_zone(c) == zone).count() as f64
            / counts.len().max(1) as f64
    };
    let most = counts.iter().copied().max().unwrap_or(0);
    let last = counts.last().copied().unwrap_or(0);
    BaselZones {
        stretches: counts.len(),
        most_exceedances: most,
        worst_zone: basel_zone(most),
        share_green: share("green"),
        share_yellow: share("yellow"),
        share_red: share("red"),
        last_exceedances: last,
        last_zone: basel_zone(last),
    }
}
