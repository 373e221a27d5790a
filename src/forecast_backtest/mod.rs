//! `scengen forecast-backtest`: every generator's scenarios scored, as of each day of a test
//! period, against what happened next. On forecast dates every `every` trading days, each
//! generator ([`crate::forecasters`]) gives scenario paths for the days after the date's close from
//! data up to that close only; the h-day outcome of every asset, of the equal-weight portfolio
//! and of a book is then scored with proper scoring rules (`scoring.rs`: energy score, CRPS,
//! variogram score, PIT, VaR exceedances), and each generator's mean score difference from
//! FHS-GARCH and from the best classical generator is tested (Diebold–Mariano, `summary.rs`).
//! Files, page and terminal table: `report.rs`.

mod inputs;
mod report;
mod scoring;
mod summary;

pub use scoring::{book_pnl, equal_weight_return, DateScores, ESTIMATOR, SCORES};
pub use summary::{CoverageRow, PitRow, ScoreRow, TestRow};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{
    default_test_from, OnMissing, Panel, RegimeCalendar, RegimeRule, Returns, SignalSource,
    ValueKind, DEFAULT_DATE_COLUMN, EMBEDDED_PRICES,
};
use crate::error::{Error, Result};
use crate::forecasters::{
    load_model_before, DiffusionState, Ensemble, FhsAsOf, Forecaster, Historical, History,
};
use crate::io::format_date;
use crate::report::REPORTS;
use crate::rng::DEFAULT_SEED;
use crate::scenarios::DEFAULT_FOLDER;
use crate::var_backtest::{ScenarioFile, RISKMETRICS_LAMBDA};
use scoring::Outcomes;

/// Settings of one forecast backtest.
#[derive(Debug, Clone)]
pub struct ForecastBacktestConfig {
    /// The panel the outcomes come from: prices, or returns (`kind`).
    pub prices: PathBuf,
    pub date_column: String,
    pub kind: ValueKind,
    /// The first forecast date: the first trading day on or after it. Every fit uses days
    /// before it only.
    pub from: i32,
    /// The last day an outcome may reach (inclusive); the end of the data when `None`.
    pub to: Option<i32>,
    /// Trading days between forecast dates.
    pub every: usize,
    /// Forecast horizons in trading days.
    pub horizons: Vec<usize>,
    /// Paths per forecast of a generator that draws them (the scenario sets' first paths).
    pub paths: usize,
    /// Trailing return days of historical simulation.
    pub lookback: usize,
    /// Decay of the EWMA volatility of filtered historical simulation.
    pub ewma_lambda: f64,
    /// Scenario files, or folders of them: each generator (`scengen.method`) with one file per
    /// regime in force on some forecast date. FHS files are skipped: `fhs` is as of each date.
    pub scenarios: Vec<PathBuf>,
    /// A model folder to draw the `diffusion` scenarios from (`paths` per regime) instead of
    /// its scenario files.
    pub model: Option<PathBuf>,
    /// The sampler `model`'s paths are drawn with; `None` for the model's own
    /// ([`model_sampler`](crate::generate::model_sampler)).
    pub sampler: Option<crate::diffusion::SamplerKind>,
    /// The book whose VaR coverage is tested; the equal-weight book (1 million in each asset
    /// over their number) when `None`.
    pub portfolio: Option<PathBuf>,
    /// VaR confidence levels of the book.
    pub levels: Vec<f64>,
    pub signal: SignalSource,
    pub rule: RegimeRule,
    pub seed: u64,
    pub out: PathBuf,
}

/// The sampler a run draws `model`'s paths with: the one asked for, checked against the model,
/// or the model's own.
fn model_sampler_for(
    config: &ForecastBacktestConfig,
    model: &crate::model::LoadedModel,
) -> Result<crate::diffusion::SamplerKind> {
    let sampler = config
        .sampler
        .unwrap_or_else(|| crate::generate::model_sampler(&model.card));
    crate::generate::check_sampler(&sampler, &model.card)?;
    Ok(sampler)
}

/// The defaults on the embedded data: 2016 onwards, weekly forecasts (every 5 trading days),
/// horizons of 1, 10 and 30 days, 1,000 paths, 500 days of historical simulation with the
/// RiskMetrics decay for its filtered form, the scenario files in [`DEFAULT_FOLDER`], the
/// equal-weight book at 95% and 99%, written to `reports/forecast-backtest`.
impl Default for ForecastBacktestConfig {
    fn default() -> Self {
        Self {
            prices: EMBEDDED_PRICES.into(),
            date_column: DEFAULT_DATE_COLUMN.into(),
            kind: ValueKind::Prices,
            from: default_test_from(),
            to: None,
            every: 5,
            horizons: vec![1, 10, 30],
            paths: 1000,
            lookback: 500,
            ewma_lambda: RISKMETRICS_LAMBDA,
            scenarios: vec![DEFAULT_FOLDER.into()],
            model: None,
            portfolio: None,
            levels: vec![0.95, 0.99],
            signal: SignalSource::embedded_index(),
            rule: RegimeRule::default(),
            sampler: None,
            seed: DEFAULT_SEED,
            out: Path::new(REPORTS).join("forecast-backtest"),
        }
    }
}

/// A generator as the report names it.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorInfo {
    pub name: String,
    pub classical: bool,
    /// Per regime, its scenario file; empty for a generator as of each date.
    pub files: BTreeMap<String, ScenarioFile>,
}

/// Every forecast of one horizon and its scores.
#[derive(Debug, Clone)]
pub struct HorizonScores {
    pub horizon: usize,
    /// Forecast dates (the close the forecast is made at).
    pub dates: Vec<i32>,
    /// The regime in force the morning after each date.
    pub regimes: Vec<String>,
    /// Per generator (in [`ForecastBacktest::generators`]' order), per date.
    pub scores: Vec<Vec<DateScores>>,
}

/// What the backtest found.
#[derive(Debug, Clone)]
pub struct ForecastBacktest {
    pub config: ForecastBacktestConfig,
    pub assets: Vec<String>,
    /// The book whose VaR is tested: its name and (asset, market value) exposures.
    pub book: (String, Vec<(usize, f64)>),
    pub generators: Vec<GeneratorInfo>,
    pub horizons: Vec<HorizonScores>,
    pub summary: Vec<ScoreRow>,
    pub tests: Vec<TestRow>,
    pub pit: Vec<PitRow>,
    pub coverage: Vec<CoverageRow>,
    /// Seconds spent fitting FHS's GARCH models and the EWMA volatilities.
    pub fit_seconds: f64,
    /// Seconds spent forecasting and scoring every date: the as-of generators' draws and every
    /// score (the scenario files' reading excluded).
    pub scoring_seconds: f64,
}

/// Runs the backtest; writes nothing (see [`ForecastBacktest`]'s
/// [`crate::report::StageReport`]).
pub fn run(config: &ForecastBacktestConfig) -> Result<ForecastBacktest> {
    let (returns, assets, sets) = read_inputs(config)?;
    let (first, end) = inputs::period(config, &returns.dates)?;
    let calendar = RegimeCalendar::load(&config.signal, &config.rule, &config.date_column)?;
    let book = inputs::book(config, &assets)?;
    let started = std::time::Instant::now();
    let (generators, forecasters) = build_forecasters(config, &returns, first, sets)?;
    let fit_seconds = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let mut horizons = Vec::new();
    for &horizon in &config.horizons {
        let dates: Vec<usize> = (first..=end - horizon).step_by(config.every).collect();
        let regimes = dates
            .iter()
            .map(|&t| {
                calendar
                    .label(returns.dates[t], returns.dates[t + 1], "a forecast made")
                    .map(str::to_string)
            })
            .collect::<Result<Vec<String>>>()?;
        let realised: Vec<Vec<f64>> = dates
            .iter()
            .map(|&t| {
                returns
                    .columns
                    .iter()
                    .map(|c| c[t + 1..=t + horizon].iter().sum())
                    .collect()
            })
            .collect();
        let scores = forecasters
            .iter()
            .map(|f| {
                score_generator(
                    f.as_ref(),
                    &dates,
                    &regimes,
                    &realised,
                    horizon,
                    &book.1,
                    config,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        horizons.push(HorizonScores {
            horizon,
            dates: dates.iter().map(|&t| returns.dates[t]).collect(),
            regimes,
            scores,
        });
    }
    let scoring_seconds = started.elapsed().as_secs_f64();
    Ok(summary::summarise(ForecastBacktest {
        config: config.clone(),
        assets,
        book,
        generators,
        horizons,
        summary: Vec::new(),
        tests: Vec::new(),
        pit: Vec::new(),
        coverage: Vec::new(),
        fit_seconds,
        scoring_seconds,
    }))
}

/// The settings checked, the regime generators' scenario sets, and the panel's returns over
/// their assets.
fn read_inputs(config: &ForecastBacktestConfig) -> Result<(Returns, Vec<String>, inputs::Sets)> {
    inputs::check_settings(config)?;
    let (sets, assets) = inputs::regime_sets(config)?;
    let panel = Panel::read(&config.prices, &config.date_column, Some(&assets))?
        .clean(config.kind, OnMissing::Error)?;
    Ok((Returns::from_panel(&panel, config.kind), assets, sets))
}

/// The generators as the report names them, and as they forecast, in one order.
type Generators = (Vec<GeneratorInfo>, Vec<Box<dyn Forecaster>>);

/// Every generator, in the report's order: the regime sets, FHS fitted on the days before
/// return day `first`, historical simulation and its filtered form.
fn build_forecasters(
    config: &ForecastBacktestConfig,
    returns: &Returns,
    first: usize,
    sets: inputs::Sets,
) -> Result<Generators> {
    let history = History {
        assets: &returns.assets,
        returns: &returns.columns,
        first_test_day: first,
    };
    let mut forecasters: Vec<Box<dyn Forecaster>> = Vec::new();
    let mut generators = Vec::new();
    for (set, files) in sets {
        generators.push(GeneratorInfo {
            name: set.name.clone(),
            classical: set.classical,
            files,
        });
        forecasters.push(Box::new(set));
    }
    // One GARCH fit per asset, shared by FHS and the diffusion model's as-of covariance.
    let fhs = FhsAsOf::fit(&history, config.paths, config.seed)?;
    if let Some(dir) = &config.model {
        let garch = fhs.garch.clone();
        let longest = *config.horizons.iter().max().expect("checked");
        let model = load_model_before(dir, config.from, longest)?;
        let sampler = model_sampler_for(config, &model)?;
        let state = DiffusionState::draw(
            model,
            &history,
            &returns.dates,
            garch,
            (config.paths, config.seed, sampler),
        )?;
        generators.push(GeneratorInfo {
            name: state.name().to_string(),
            classical: false,
            files: BTreeMap::new(),
        });
        forecasters.push(Box::new(state));
    }
    let as_of: Vec<Box<dyn Forecaster>> = vec![
        Box::new(fhs),
        Box::new(Historical::plain(&history, config.lookback)),
        Box::new(Historical::filtered(
            &history,
            config.lookback,
            config.ewma_lambda,
        )),
    ];
    for f in as_of {
        generators.push(GeneratorInfo {
            name: f.name().to_string(),
            classical: true,
            files: BTreeMap::new(),
        });
        forecasters.push(f);
    }
    inputs::order_generators(&mut generators, &mut forecasters);
    Ok((generators, forecasters))
}

/// Every generator's forecast made at the close of `date` for `horizon` days: its h-day log
/// return vectors (member x asset), from the data up to that close. The backtest scores exactly
/// these; the data after `date` may be absent.
pub fn forecasts_as_of(
    config: &ForecastBacktestConfig,
    date: i32,
    horizon: usize,
) -> Result<Vec<(String, Vec<f64>)>> {
    let (returns, assets, sets) = read_inputs(config)?;
    let days = &returns.dates;
    let first = days.iter().position(|&d| d >= config.from);
    let t = days.iter().position(|&d| d == date);
    let (Some(first), Some(t)) = (first, t) else {
        return Err(Error::option(
            "date",
            format_date(date),
            "not a return day of the test period",
        ));
    };
    if t < first || t + 1 < config.lookback {
        return Err(Error::option(
            "date",
            format_date(date),
            "before the test period or its lookback",
        ));
    }
    let calendar = RegimeCalendar::load(&config.signal, &config.rule, &config.date_column)?;
    let regime = calendar
        .label(days[t], days[t], "a forecast made")?
        .to_string();
    let (generators, forecasters) = build_forecasters(config, &returns, first, sets)?;
    generators
        .iter()
        .zip(&forecasters)
        .map(|(g, f)| {
            let vectors =
                ensemble_vectors(f.as_ref(), t, &regime, horizon, assets.len(), config.paths)?;
            Ok((g.name.clone(), vectors))
        })
        .collect()
}

/// A generator's h-day log return vectors (member x asset) as of return day `t`.
fn ensemble_vectors(
    forecaster: &dyn Forecaster,
    t: usize,
    regime: &str,
    horizon: usize,
    assets: usize,
    paths: usize,
) -> Result<Vec<f64>> {
    Ok(match forecaster.ensemble(t, regime, horizon)? {
        Ensemble::Shared {
            paths: p, window, ..
        } => horizon_vectors(p, window, assets, horizon, paths),
        Ensemble::Own(p) => horizon_vectors(&p, horizon, assets, horizon, usize::MAX),
        Ensemble::Outcomes(vectors) => vectors,
    })
}

/// One generator's scores on every date of one horizon, dates shared out over the cores. A
/// regime's scenario set is turned into outcomes once and kept for every date of the regime.
fn score_generator(
    forecaster: &dyn Forecaster,
    dates: &[usize],
    regimes: &[String],
    realised: &[Vec<f64>],
    horizon: usize,
    exposures: &[(usize, f64)],
    config: &ForecastBacktestConfig,
) -> Result<Vec<DateScores>> {
    let assets = realised.first().map_or(0, Vec::len);
    let mut shared: BTreeMap<String, Outcomes> = BTreeMap::new();
    for (&t, regime) in dates.iter().zip(regimes) {
        if shared.contains_key(regime) {
            continue;
        }
        if let Ensemble::Shared { .. } = forecaster.ensemble(t, regime, horizon)? {
            let vectors = ensemble_vectors(forecaster, t, regime, horizon, assets, config.paths)?;
            let outcomes = Outcomes::new(vectors, assets, exposures, &config.levels);
            shared.insert(regime.clone(), outcomes);
        }
    }
    let score_one =
        |i: usize| -> Result<DateScores> {
            let (t, regime) = (dates[i], &regimes[i]);
            if let Some(outcomes) = shared.get(regime) {
                return Ok(outcomes.score(&realised[i], exposures));
            }
            let vectors = ensemble_vectors(forecaster, t, regime, horizon, assets, config.paths)?;
            Ok(Outcomes::new(vectors, assets, exposures, &config.levels)
                .score(&realised[i], exposures))
        };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = dates.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<DateScores>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..dates.len())
            .step_by(chunk)
            .map(|start| {
                let score_one = &score_one;
                scope.spawn(move || {
                    (start..(start + chunk).min(dates.len()))
                        .map(score_one)
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a scoring thread panicked"))
            .collect()
    });
    let mut out = Vec::with_capacity(dates.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The h-day log return vectors (member x asset) of the first `limit` paths of `paths` (path,
/// day, asset; `window` days each).
fn horizon_vectors(
    paths: &[f64],
    window: usize,
    assets: usize,
    horizon: usize,
    limit: usize,
) -> Vec<f64> {
    let count = (paths.len() / (window * assets)).min(limit);
    let mut out = Vec::with_capacity(count * assets);
    for path in paths.chunks_exact(window * assets).take(count) {
        for a in 0..assets {
            out.push((0..horizon).map(|d| path[d * assets + a]).sum());
        }
    }
    out
}
