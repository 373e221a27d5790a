//! What a forecast backtest reads before it scores: its settings checked, the regimes' scenario
//! sets (from scenario files, or drawn from a model), the test period, and the book.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{ForecastBacktestConfig, GeneratorInfo};
use crate::baselines::check_history;
use crate::error::{Error, Result};
use crate::forecasters::{
    load_model_before, Forecaster, RegimeSets, FHS, HISTORICAL, HISTORICAL_EWMA,
};
use crate::generate::{default_guidance, sample_paths, PathDraw};
use crate::io::format_date;
use crate::model::Engine;
use crate::risk::{check_horizons_and_levels, Portfolio};
use crate::scenarios::{check_no_look_ahead, generator_settings, read_scenarios, scenario_files};
use crate::var_backtest::ScenarioFile;

/// The regime generators' sets with their files, and the assets they cover.
pub(super) type Sets = Vec<(RegimeSets, BTreeMap<String, ScenarioFile>)>;

/// The settings no later step would refuse with a clear message.
pub(super) fn check_settings(config: &ForecastBacktestConfig) -> Result<()> {
    check_horizons_and_levels(&config.horizons, &config.levels)?;
    if config.every == 0 {
        return Err(Error::option("every", 0, "must be at least 1 trading day"));
    }
    if config.paths < 2 {
        return Err(Error::option(
            "paths",
            config.paths,
            "must be at least 2: a score compares the paths with each other",
        ));
    }
    check_history(&config.horizons, config.lookback, Some(config.ewma_lambda))
}

/// Every regime generator's paths: from the scenario files (each `scengen.method` one
/// generator, one file per regime, FHS skipped) and, with a model, the diffusion model's
/// `paths` per regime drawn afresh. Returns them with the assets they cover.
pub(super) fn regime_sets(config: &ForecastBacktestConfig) -> Result<(Sets, Vec<String>)> {
    let mut groups: BTreeMap<String, (RegimeSets, BTreeMap<String, ScenarioFile>)> =
        BTreeMap::new();
    let mut assets: Option<(Vec<String>, PathBuf)> = None;
    let longest = *config.horizons.iter().max().expect("checked");
    let files = if config.scenarios.is_empty() {
        Vec::new()
    } else {
        scenario_files(&config.scenarios)?
    };
    for path in files {
        let set = read_scenarios(&path)?;
        let method = set
            .metadata
            .get(crate::io::meta::METHOD)
            .cloned()
            .unwrap_or_else(|| "diffusion".into());
        if method == FHS || (method == "diffusion" && config.model.is_some()) {
            continue;
        }
        check_no_look_ahead(&path, &set.metadata, config.from)?;
        check_assets(&mut assets, &set.assets, &path)?;
        check_window(set.window, longest, &path)?;
        let paths = set.paths().min(config.paths);
        let group = groups.entry(method.clone()).or_insert_with(|| {
            let sets = RegimeSets {
                name: method.clone(),
                classical: method != "diffusion",
                window: set.window,
                sets: BTreeMap::new(),
            };
            (sets, BTreeMap::new())
        });
        if group.0.window != set.window || group.0.sets.contains_key(&set.regime) {
            return Err(Error::option(
                "scenarios",
                path.display(),
                format!(
                    "a second `{method}` file for regime `{}`, or paths of another length",
                    set.regime
                ),
            ));
        }
        let values = set.values[..paths * set.window * set.assets.len()].to_vec();
        group.0.sets.insert(set.regime.clone(), values);
        let file = ScenarioFile {
            file: path.display().to_string(),
            generator: generator_settings(&set.metadata),
        };
        group.1.insert(set.regime.clone(), file);
    }
    if let Some(model) = &config.model {
        let (sets, model_assets) = model_sets(config, model)?;
        check_assets(&mut assets, &model_assets, model)?;
        groups.insert("diffusion".into(), (sets, BTreeMap::new()));
    }
    let Some((assets, _)) = assets else {
        return Err(Error::option(
            "scenarios",
            "",
            "no scenario file of a regime generator, and no model to draw from",
        ));
    };
    Ok((groups.into_values().collect(), assets))
}

/// The diffusion model's `paths` paths per regime, drawn with the run's sampler (the model's
/// own unless one is asked for).
fn model_sets(
    config: &ForecastBacktestConfig,
    dir: &std::path::Path,
) -> Result<(RegimeSets, Vec<String>)> {
    let longest = *config.horizons.iter().max().expect("checked");
    let model = load_model_before(dir, config.from, longest)?;
    let net = model.denoiser(Engine::Auto)?;
    let guidance = default_guidance(&model.card);
    let sampler = super::model_sampler_for(config, &model)?;
    let mut sets = BTreeMap::new();
    for (regime, label) in model.card.labels.iter().enumerate() {
        let draw_with = PathDraw {
            regime,
            sampler,
            guidance,
            seed: config.seed,
        };
        let values = sample_paths(
            &model,
            net,
            &draw_with,
            0..config.paths,
            &indicatif::ProgressBar::hidden(),
        )
        .map_err(|e| e.in_stage(Error::Generation))?;
        sets.insert(label.clone(), values);
    }
    let regime_sets = RegimeSets {
        name: "diffusion".into(),
        classical: false,
        window: model.card.window,
        sets,
    };
    Ok((regime_sets, model.card.assets.clone()))
}

fn check_assets(
    known: &mut Option<(Vec<String>, PathBuf)>,
    assets: &[String],
    source: &std::path::Path,
) -> Result<()> {
    match known {
        Some((known, first)) if known != assets => Err(Error::bad_file(
            source,
            format!(
                "assets {assets:?} differ from those of {} ({known:?})",
                first.display()
            ),
        )),
        Some(_) => Ok(()),
        None => {
            *known = Some((assets.to_vec(), source.to_path_buf()));
            Ok(())
        }
    }
}

fn check_window(window: usize, longest: usize, source: &std::path::Path) -> Result<()> {
    if longest > window {
        return Err(Error::option(
            "horizons",
            longest,
            format!("longer than the {window}-day paths of {}", source.display()),
        ));
    }
    Ok(())
}

/// The index of the first forecast date (the first return day on or after `from`) and of the
/// last return day an outcome may reach; an error names `from` or `to` when the period holds
/// no outcome of the longest horizon or leaves historical simulation too few days before it.
pub(super) fn period(config: &ForecastBacktestConfig, dates: &[i32]) -> Result<(usize, usize)> {
    let longest = *config.horizons.iter().max().expect("checked");
    let end = match config.to {
        Some(to) => dates.iter().rposition(|&d| d <= to),
        None => dates.len().checked_sub(1),
    };
    let first = dates.iter().position(|&d| d >= config.from);
    let (Some(first), Some(end)) = (first, end) else {
        return Err(Error::option(
            "from",
            format_date(config.from),
            format!(
                "the data hold no return day from then to {}",
                describe_to(config)
            ),
        ));
    };
    if end < first + longest {
        return Err(Error::option(
            "from",
            format_date(config.from),
            format!(
                "the period to {} holds {} return days after the first forecast date, fewer \
                 than the {longest}-day horizon",
                describe_to(config),
                end.saturating_sub(first)
            ),
        ));
    }
    if first + 1 < config.lookback {
        return Err(Error::option(
            "lookback",
            config.lookback,
            format!(
                "only {} return days precede {}",
                first + 1,
                format_date(dates[first])
            ),
        ));
    }
    Ok((first, end))
}

fn describe_to(config: &ForecastBacktestConfig) -> String {
    config
        .to
        .map_or_else(|| "the end of the data".to_string(), format_date)
}

/// The book whose VaR coverage is tested: the portfolio file's positions, or 1 million spread
/// equally over the assets.
pub(super) fn book(
    config: &ForecastBacktestConfig,
    assets: &[String],
) -> Result<(String, Vec<(usize, f64)>)> {
    match &config.portfolio {
        Some(path) => {
            let portfolio = Portfolio::read(path)?;
            let exposures = portfolio.exposures(assets, &config.prices)?;
            let name = portfolio
                .name
                .clone()
                .unwrap_or_else(|| crate::scenarios::default_label(path));
            Ok((name, exposures))
        }
        None => {
            let each = 1e6 / assets.len() as f64;
            Ok((
                "equal-weight".into(),
                (0..assets.len()).map(|a| (a, each)).collect(),
            ))
        }
    }
}

/// The report's order: the diffusion model and other non-classical generators first, then FHS,
/// historical simulation, its filtered form, and the regime's classical sets.
pub(super) fn order_generators(
    generators: &mut Vec<GeneratorInfo>,
    forecasters: &mut Vec<Box<dyn Forecaster>>,
) {
    let rank = |g: &GeneratorInfo| match g.name.as_str() {
        _ if !g.classical => 0,
        FHS => 1,
        HISTORICAL => 2,
        HISTORICAL_EWMA => 3,
        _ => 4,
    };
    let mut pairs: Vec<(GeneratorInfo, Box<dyn Forecaster>)> =
        generators.drain(..).zip(forecasters.drain(..)).collect();
    pairs.sort_by_key(|(g, _)| rank(g));
    for (g, f) in pairs {
        generators.push(g);
        forecasters.push(f);
    }
}
