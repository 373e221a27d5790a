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
//!
//! With a model folder, the diffusion model's scenarios and FHS-GARCH are also drawn afresh on
//! every morning from the market's state at the previous close (`as_of.rs`), and scored as they
//! are.
//!
//! The models and their VaR are `models.rs`; the files, the page and the terminal table are
//! `report.rs`.

mod as_of;
mod models;
mod report;

pub use crate::baselines::RISKMETRICS_LAMBDA;
pub use models::{ScenarioFile, VarModel, EWMA_SUFFIX, HISTORICAL, MIN_DAYS_AFTER_HORIZON};
pub use report::var_backtest_text;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::baselines::{backcast, check_history, log_likelihood, Garch11};
use crate::data::{
    default_test_from, held_out_days, OnMissing, Panel, RegimeCalendar, RegimeRule, Returns,
    SignalSource, ValueKind, DEFAULT_DATE_COLUMN, EMBEDDED_PRICES,
};
use crate::error::{Error, Result};
use crate::forecasters::{load_model_before, History};
use crate::io::format_date;
use crate::report::REPORTS;
use crate::risk::EXAMPLE_PORTFOLIO;
use crate::risk::{check_horizons_and_levels, Portfolio};
use crate::rng::DEFAULT_SEED;
use crate::scenarios::DEFAULT_FOLDER;
use crate::stats::{
    basel_zone, christoffersen_independence, conditional_coverage, kupiec_pof, mean, var_cvar,
    LikelihoodRatio, BASEL_DAYS,
};
use as_of::AsOfModels;
use models::{every_model, scenario_models, ScenarioVar};

/// Settings of one VaR backtest.
#[derive(Debug, Clone)]
pub struct VarBacktestConfig {
    pub portfolio: PathBuf,
    /// The panel the real P&L comes from: prices, or returns (`kind`).
    pub prices: PathBuf,
    pub date_column: String,
    pub kind: ValueKind,
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
    /// A model folder: its scenarios as of each morning are scored as `diffusion-state`, beside
    /// FHS as of each morning (`fhs`, whose regime files are then not read).
    pub model: Option<PathBuf>,
    /// Paths per forecast of a model as of each morning (per regime and starting level for the
    /// diffusion model).
    pub paths: usize,
    /// The seed of the models as of each morning.
    pub seed: u64,
    pub signal: SignalSource,
    pub rule: RegimeRule,
    pub out: PathBuf,
}

/// The defaults on the embedded data: the example portfolio, 2016 onwards, 1- and 10-day VaR at
/// 95% and 99%, 500 days of historical simulation, every model also scaled to the RiskMetrics
/// EWMA volatility, the regimes of `scengen ingest`'s defaults, the files in
/// [`DEFAULT_FOLDER`] and no model (with one, 1,000 paths per morning), written to
/// `reports/var-backtest`.
impl Default for VarBacktestConfig {
    fn default() -> Self {
        Self {
            portfolio: EXAMPLE_PORTFOLIO.into(),
            prices: EMBEDDED_PRICES.into(),
            date_column: DEFAULT_DATE_COLUMN.into(),
            kind: ValueKind::Prices,
            from: default_test_from(),
            to: None,
            horizons: vec![1, 10],
            levels: vec![0.95, 0.99],
            lookback: 500,
            ewma_lambda: Some(RISKMETRICS_LAMBDA),
            scenarios: vec![DEFAULT_FOLDER.into()],
            model: None,
            paths: 1000,
            seed: DEFAULT_SEED,
            signal: SignalSource::embedded_index(),
            rule: RegimeRule::default(),
            out: Path::new(REPORTS).join("var-backtest"),
        }
    }
}

impl VarBacktestConfig {
    /// The defaults, reading `scenarios` and writing `out`.
    pub fn embedded(scenarios: Vec<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            scenarios,
            out: out.into(),
            ..Self::default()
        }
    }
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
    /// The settings it ran with (its files record them).
    pub config: VarBacktestConfig,
    pub portfolio: Portfolio,
    pub models: Vec<VarModel>,
    pub forecasts: Vec<HorizonForecasts>,
    /// One per horizon, model and level, in that order.
    pub coverage: Vec<Coverage>,
    pub next: NextForecast,
}

/// Every model's VaR on the morning after the test period, made at its last close: with
/// `to` left at the end of the data, the forecast for the next trading day.
#[derive(Debug, Clone, Serialize)]
pub struct NextForecast {
    /// The last close the forecast knows.
    pub after: String,
    /// The day forecast, when the price file holds it (a period ending before the data).
    pub date: Option<String>,
    pub regime: String,
    /// The portfolio's EWMA volatility for that day (in its currency), when models are scaled.
    pub ewma_volatility: Option<f64>,
    /// One per horizon, model and level, in that order.
    pub var: Vec<NextVar>,
}

/// One model's VaR at one horizon and level.
#[derive(Debug, Clone, Serialize)]
pub struct NextVar {
    pub model: String,
    pub horizon: usize,
    pub level: f64,
    pub var: f64,
}

/// Runs the backtest; writes nothing (see [`VarBacktest`]'s [`crate::report::StageReport`]).
pub fn run(config: &VarBacktestConfig) -> Result<VarBacktest> {
    check_settings(config)?;
    let longest = *config.horizons.iter().max().expect("checked: not empty");
    let portfolio = Portfolio::read(&config.portfolio)?;
    let model = match &config.model {
        Some(dir) => Some((load_model_before(dir, config.from, longest)?, dir)),
        None => None,
    };
    let model_assets = model
        .as_ref()
        .map(|(m, dir)| (m.card.assets.clone(), dir.to_path_buf()));
    let skip = |method: &str| model.is_some() && AsOfModels::METHODS.contains(&method);
    let (mut generators, scenario_var, assets) =
        scenario_models(config, &portfolio, model_assets, skip)?;
    let panel = Panel::read(&config.prices, &config.date_column, Some(&assets))?
        .clean(config.kind, OnMissing::Error)?;
    let returns = Returns::from_panel(&panel, config.kind);
    let period = held_out_days(
        &returns.dates,
        &config.prices,
        (config.from, config.to),
        longest,
        config.lookback,
    )?;
    let (first, end) = (period.start, period.end);
    let as_of = match model {
        Some((model, _)) => {
            let history = History {
                assets: &returns.assets,
                returns: &returns.columns,
                first_test_day: first,
            };
            let draws = (config.paths, config.seed);
            AsOfModels::build(model, &history, &returns.dates, draws)?
        }
        None => AsOfModels::default(),
    };
    generators.extend(as_of.models());
    let market = Market {
        config,
        exposures: portfolio.exposures(&assets, &config.prices)?,
        cumulative: cumulative_returns(&returns.columns),
        calendar: RegimeCalendar::load(&config.signal, &config.rule, &config.date_column)?,
        volatility: Vec::new(),
        scenario_var,
        as_of,
        days: &returns.dates,
    }
    .with_volatility(first);
    let models = every_model(generators, config.ewma_lambda.is_some());

    let mut forecasts = Vec::new();
    let mut coverage = Vec::new();
    for (h, &horizon) in config.horizons.iter().enumerate() {
        let starts: Vec<usize> = (first..=end - horizon).step_by(horizon).collect();
        let regimes = starts
            .iter()
            .map(|&t| market.regime_on(t))
            .collect::<Result<Vec<String>>>()?;
        let pnl: Vec<f64> = starts
            .iter()
            .map(|&t| market.held_pnl(t, horizon))
            .collect();
        for model in &models {
            // Per level, the VaR forecast at each start.
            let mut var = vec![Vec::with_capacity(starts.len()); config.levels.len()];
            for (&t, regime) in starts.iter().zip(&regimes) {
                for (l, v) in market
                    .forecast(model, t, regime, h)?
                    .into_iter()
                    .enumerate()
                {
                    var[l].push(v);
                }
            }
            for (&level, var) in config.levels.iter().zip(var) {
                coverage.push(score(&model.name, horizon, level, &pnl, &regimes, var));
            }
        }
        forecasts.push(HorizonForecasts {
            horizon,
            dates: starts.iter().map(|&t| market.days[t]).collect(),
            regimes,
            pnl,
        });
    }
    let next = market.next_forecast(&models, end)?;
    Ok(VarBacktest {
        config: config.clone(),
        portfolio,
        models,
        forecasts,
        coverage,
        next,
    })
}

/// The settings no later step would refuse with a clear message.
fn check_settings(config: &VarBacktestConfig) -> Result<()> {
    check_horizons_and_levels(&config.horizons, &config.levels)?;
    let highest = config.levels.iter().copied().fold(0.0, f64::max);
    if config.model.is_some() && (config.paths as f64) * (1.0 - highest) < 1.0 {
        return Err(Error::option(
            "paths",
            config.paths,
            format!("leaves no path beyond the {highest} VaR of a morning's scenarios"),
        ));
    }
    check_history(&config.horizons, config.lookback, config.ewma_lambda)
}

/// Running sums of each asset's log returns, from 0: a holding period's return in O(1).
fn cumulative_returns(columns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    columns
        .iter()
        .map(|c| {
            std::iter::once(0.0)
                .chain(c.iter().scan(0.0, |s, r| {
                    *s += r;
                    Some(*s)
                }))
                .collect()
        })
        .collect()
}

/// What the backtest knows of the market: the return days, the portfolio's exposures, the
/// regime calendar, the portfolio's EWMA volatility and each scenario file's VaR.
struct Market<'a> {
    config: &'a VarBacktestConfig,
    days: &'a [i32],
    /// (asset column, market value) of each position.
    exposures: Vec<(usize, f64)>,
    cumulative: Vec<Vec<f64>>,
    calendar: RegimeCalendar,
    /// The volatility forecast for each return day and the day after the data (with EWMA
    /// scaling; empty without).
    volatility: Vec<f64>,
    scenario_var: ScenarioVar,
    as_of: AsOfModels,
}

impl Market<'_> {
    /// The P&L of holding the positions from the close before return day `start` for
    /// `horizon` days.
    fn held_pnl(&self, start: usize, horizon: usize) -> f64 {
        self.exposures
            .iter()
            .map(|&(a, v)| {
                v * (self.cumulative[a][start + horizon] - self.cumulative[a][start]).exp_m1()
            })
            .sum()
    }

    /// The portfolio's EWMA volatility forecast for each return day and the day after the
    /// data, made at the close before it; its start comes from days before `first` only.
    fn with_volatility(mut self, first: usize) -> Self {
        if let Some(lambda) = self.config.ewma_lambda {
            let daily: Vec<f64> = (0..self.days.len()).map(|s| self.held_pnl(s, 1)).collect();
            let ewma = Garch11::riskmetrics(lambda);
            let mut variance = log_likelihood(&daily, &ewma, backcast(&daily[..first])).1;
            let last = *variance.last().expect("return days before the test period");
            variance.push(ewma.next_variance(*daily.last().expect("return days"), last));
            self.volatility = variance.into_iter().map(f64::sqrt).collect();
        }
        self
    }

    /// The morning of return day t, or of the trading day after the data for t = days.len().
    fn morning(&self, t: usize) -> String {
        match self.days.get(t) {
            Some(&day) => format_date(day),
            None => format!("the trading day after {}", format_date(self.days[t - 1])),
        }
    }

    /// The regime in force on the morning of return day t.
    fn regime_on(&self, t: usize) -> Result<String> {
        let days = self.days;
        let label = match days.get(t) {
            Some(&day) => self.calendar.label(days[t - 1], day, "a VaR forecast")?,
            None => {
                self.calendar
                    .label(days[t - 1], days[t - 1], "the next-day VaR forecast made")?
            }
        };
        Ok(label.to_string())
    }

    /// Per level, the VaR `model` forecasts on the morning of day t for the h-th horizon.
    fn forecast(&self, model: &VarModel, t: usize, regime: &str, h: usize) -> Result<Vec<f64>> {
        let config = self.config;
        let horizon = config.horizons[h];
        if model.method == HISTORICAL {
            let outcomes: Vec<f64> = (t - config.lookback..=t - horizon)
                .map(|s| {
                    let outcome = self.held_pnl(s, horizon);
                    if model.ewma_scaled {
                        outcome * self.volatility[t] / self.volatility[s]
                    } else {
                        outcome
                    }
                })
                .collect();
            return Ok(config
                .levels
                .iter()
                .map(|&level| var_cvar(&outcomes, level).0)
                .collect());
        }
        if model.as_of {
            let state = (t - 1, regime, horizon);
            return self
                .as_of
                .var(&model.method, state, &self.exposures, &config.levels);
        }
        let file = self
            .scenario_var
            .get(&(model.method.clone(), regime.to_string()))
            .ok_or_else(|| {
                Error::option(
                    "scenarios",
                    "",
                    format!(
                        "no `{}` scenario file for regime `{regime}`, in force on {}",
                        model.method,
                        self.morning(t)
                    ),
                )
            })?;
        Ok(if model.ewma_scaled {
            file.standardized_var[h]
                .iter()
                .map(|v| v * self.volatility[t])
                .collect()
        } else {
            file.var[h].clone()
        })
    }

    /// What each model says on the morning after the period (return day `end`): the figure a
    /// nightly run reports.
    fn next_forecast(&self, models: &[VarModel], end: usize) -> Result<NextForecast> {
        let regime = self.regime_on(end)?;
        let mut var = Vec::new();
        for (h, &horizon) in self.config.horizons.iter().enumerate() {
            for model in models {
                let forecast = self.forecast(model, end, &regime, h)?;
                for (&level, v) in self.config.levels.iter().zip(forecast) {
                    var.push(NextVar {
                        model: model.name.clone(),
                        horizon,
                        level,
                        var: v,
                    });
                }
            }
        }
        Ok(NextForecast {
            after: format_date(self.days[end - 1]),
            date: self.days.get(end).map(|&d| format_date(d)),
            regime,
            ewma_volatility: self.volatility.get(end).copied(),
            var,
        })
    }
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
