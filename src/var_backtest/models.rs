//! The VaR models the backtest scores: each generator's scenario files (one per regime), read
//! once into the portfolio's VaR per horizon and level, as they are and in units of each path's
//! own volatility, for scaling to the EWMA volatility of the day; and historical simulation.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::VarBacktestConfig;
use crate::error::{Error, Result};
use crate::risk::{horizon_pnl, Portfolio};
use crate::scenarios::{
    check_no_look_ahead, generator_settings, read_scenarios, scenario_files, ScenarioSet,
};
use crate::stats::var_cvar;

/// The name of the historical-simulation reference among the models.
pub const HISTORICAL: &str = "historical";

/// What a model's name gets when it is scaled to the EWMA volatility.
pub const EWMA_SUFFIX: &str = "+ewma";

/// The fewest days a scenario path must have after the horizon to measure its own volatility.
pub const MIN_DAYS_AFTER_HORIZON: usize = 10;

/// A VaR model under test: a generator's scenario files, or historical simulation, each as it
/// is or scaled to the EWMA volatility.
#[derive(Debug, Clone, Serialize)]
pub struct VarModel {
    pub name: String,
    /// The generator (`scengen.method`), or [`HISTORICAL`].
    pub method: String,
    pub ewma_scaled: bool,
    /// Drawn afresh every morning from the market's state at the previous close.
    pub as_of: bool,
    /// Per regime, its scenario file; empty for historical simulation.
    pub files: BTreeMap<String, ScenarioFile>,
}

/// A scenario file and how it was generated ([`generator_settings`]).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioFile {
    pub file: String,
    pub generator: BTreeMap<String, String>,
}

/// What a scenario file says about the portfolio, per horizon and level.
pub(super) struct FileRisk {
    /// The VaR over the file's paths.
    pub var: Vec<Vec<f64>>,
    /// The VaR of each path's outcome over that path's volatility (the root mean square of its
    /// daily P&L on the days after the horizon): the file's shape, in units of daily volatility.
    /// Empty without EWMA scaling.
    pub standardized_var: Vec<Vec<f64>>,
}

/// Per generator and regime.
pub(super) type ScenarioVar = BTreeMap<(String, String), FileRisk>;

/// Reads every scenario file once, groups them by generator, and keeps only the portfolio's VaR
/// of each (file, horizon, level); returns the models, their VaR and the files' assets. The
/// files of the generators in `as_of` are skipped (they are scored as of each morning), and
/// every file must cover the assets of `model` (its assets and folder) when one is given.
pub(super) fn scenario_models(
    config: &VarBacktestConfig,
    portfolio: &Portfolio,
    model: Option<(Vec<String>, PathBuf)>,
    as_of: impl Fn(&str) -> bool,
) -> Result<(Vec<VarModel>, ScenarioVar, Vec<String>)> {
    let mut models: BTreeMap<String, VarModel> = BTreeMap::new();
    let mut var = ScenarioVar::new();
    let mut assets = model;
    for path in scenario_files(&config.scenarios)? {
        let set = read_scenarios(&path)?;
        let name = set
            .metadata
            .get(crate::io::meta::METHOD)
            .cloned()
            .unwrap_or_else(|| "diffusion".into());
        if as_of(&name) {
            continue;
        }
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
                "horizons",
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
                "horizons",
                h,
                format!(
                    "leaves {} days of the {}-day paths of {} after it; scaling to the EWMA \
                     volatility measures each path's own volatility on at least \
                     {MIN_DAYS_AFTER_HORIZON} (or score the models without EWMA scaling)",
                    set.window - h,
                    set.window,
                    path.display()
                ),
            ));
        }
        let model = models.entry(name.clone()).or_insert_with(|| VarModel {
            name: name.clone(),
            method: name.clone(),
            ewma_scaled: false,
            as_of: false,
            files: BTreeMap::new(),
        });
        if let Some(first) = model.files.get(&set.regime) {
            return Err(Error::option(
                "scenarios",
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
    // Files are skipped only with a model, whose assets came first.
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

/// The generators' models, then historical simulation; with `scaled`, each but the models as
/// of each morning followed by its `+ewma` twin.
pub(super) fn every_model(generators: Vec<VarModel>, scaled: bool) -> Vec<VarModel> {
    let historical = VarModel {
        name: HISTORICAL.into(),
        method: HISTORICAL.into(),
        ewma_scaled: false,
        as_of: false,
        files: BTreeMap::new(),
    };
    generators
        .into_iter()
        .chain(std::iter::once(historical))
        .flat_map(|m| {
            let twin = (scaled && !m.as_of).then(|| VarModel {
                name: format!("{}{EWMA_SUFFIX}", m.name),
                ewma_scaled: true,
                ..m.clone()
            });
            std::iter::once(m).chain(twin)
        })
        .collect()
}
