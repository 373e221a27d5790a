//! `scengen risk`: what a portfolio would lose along scenario paths. The positions of a
//! portfolio file are held without trading from the start of every path; its P&L after each
//! horizon gives VaR and CVaR (with bootstrap intervals for the sampling error of the number of
//! paths) and each position's share of the CVaR, for every scenario file of one regime and,
//! optionally, for the real windows of that regime. Written as `risk.json`, `pnl.parquet` and
//! `report.html`.

mod measures;
mod positions;
mod report;

pub use measures::{horizon_pnl, horizon_risk, HorizonPnl, HorizonRisk, TailRisk};
pub use positions::{Portfolio, Position, EXAMPLE_PORTFOLIO};
pub use report::summary_text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{default_test_from, SplitChoice, WindowSet};
use crate::error::{first_repeat, Error, Result};
use crate::io::format_date;
use crate::report::REPORTS;
use crate::rng::{SeededRng, DEFAULT_SEED};
use crate::scenarios::{default_label, generator_settings, read_scenarios, set_labels};

/// Settings of one risk run.
#[derive(Debug, Clone)]
pub struct RiskConfig {
    pub portfolio: PathBuf,
    /// Scenario files of one regime, with an optional label (default: the file stem).
    pub scenarios: Vec<(PathBuf, Option<String>)>,
    /// A windows file whose windows of the scenarios' regime are scored alongside.
    pub real: Option<PathBuf>,
    pub split: SplitChoice,
    pub test_from: i32,
    /// Holding periods in days, each at most the paths' length.
    pub horizons: Vec<usize>,
    /// Confidence levels of VaR and CVaR, each in (0, 1).
    pub levels: Vec<f64>,
    /// Bootstrap resamples per interval (0: no intervals).
    pub resamples: usize,
    pub seed: u64,
    pub out: PathBuf,
}

/// The defaults: the example book, 1-, 10- and 30-day VaR and CVaR at 95% and 99% with 1,000
/// bootstrap resamples, the real windows (when given) of the test split from
/// [`default_test_from`]. The scenario files have none; `out` is [`default_out`]'s.
impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            portfolio: EXAMPLE_PORTFOLIO.into(),
            scenarios: Vec::new(),
            real: None,
            split: SplitChoice::Test,
            test_from: default_test_from(),
            horizons: vec![1, 10, 30],
            levels: vec![0.95, 0.99],
            resamples: 1000,
            seed: DEFAULT_SEED,
            out: PathBuf::new(),
        }
    }
}

/// Where a risk run goes unless told otherwise:
/// `reports/risk/<portfolio file name>-<first scenario file name>`.
pub fn default_out(portfolio: &Path, first_scenarios: &Path) -> PathBuf {
    Path::new(REPORTS).join("risk").join(format!(
        "{}-{}",
        default_label(portfolio),
        default_label(first_scenarios)
    ))
}

/// The risk of the portfolio under one set of paths.
#[derive(Debug, Clone, Serialize)]
pub struct SetRisk {
    pub label: String,
    pub file: String,
    /// `scengen.method` of a scenario file; `real` for real windows.
    pub method: String,
    /// How the scenario file was generated ([`generator_settings`]); empty for real windows.
    pub generator: BTreeMap<String, String>,
    pub paths: usize,
    pub horizons: Vec<HorizonRisk>,
    /// Per horizon, every path's P&L (for `pnl.parquet`), and the path ids.
    #[serde(skip)]
    pub pnl: Vec<Vec<f64>>,
    #[serde(skip)]
    pub ids: Vec<u32>,
}

/// Everything `risk.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct RiskReport {
    pub portfolio: Portfolio,
    pub gross: f64,
    pub net: f64,
    pub regime: String,
    pub window: usize,
    pub horizons: Vec<usize>,
    pub levels: Vec<f64>,
    pub resamples: usize,
    pub interval_coverage: f64,
    pub seed: u64,
    pub sets: Vec<SetRisk>,
    pub note: String,
}

const NOTE: &str = "Positions are held without trading from the first day of each path; the P&L of position i after H days is v_i (exp(sum of its first H daily log returns) - 1). VaR and CVaR are losses (positive numbers): with k = ceil((1 - level) n), VaR is the k-th largest loss and CVaR the mean of the k largest. Contributions are each position's mean loss over those k paths and add up to the CVaR. Intervals are percentile bootstrap intervals over the paths, the sampling error of a finite scenario set; real windows overlap, so they get none.";

/// Scores the portfolio on every scenario file (and the real windows, if asked); writes nothing
/// (see [`RiskReport`]'s [`crate::report::StageReport`]).
pub fn run(config: &RiskConfig) -> Result<RiskReport> {
    check_config(config)?;
    let labels = set_labels(&config.scenarios)?;
    let split = format!("{:?}", config.split).to_lowercase();
    let real_label = format!("real ({split})");
    if config.real.is_some() {
        if let Some(k) = labels.iter().position(|l| *l == real_label) {
            return Err(Error::option(
                "label",
                &real_label,
                format!(
                    "names the real windows' row; give {} another label",
                    config.scenarios[k].0.display()
                ),
            ));
        }
    }
    let portfolio = Portfolio::read(&config.portfolio)?;
    // One scenario file in memory at a time: only the P&L vectors are kept.
    let mut sets = Vec::new();
    let mut first: Option<(String, usize, PathBuf)> = None;
    for (k, ((path, _), label)) in config.scenarios.iter().zip(labels).enumerate() {
        let s = read_scenarios(path)?;
        let (regime, _, first_path) =
            first.get_or_insert_with(|| (s.regime.clone(), s.window, path.clone()));
        if s.regime != *regime {
            return Err(Error::bad_file(
                path,
                format!(
                    "holds regime `{}`, {} holds `{regime}`: give files of one regime",
                    s.regime,
                    first_path.display()
                ),
            ));
        }
        check_horizons(config, s.window, path)?;
        let exposures = portfolio.exposures(&s.assets, path)?;
        let ids: Vec<u32> = (0..s.paths() as u32).collect();
        let (horizons, pnl) = score(
            config,
            (&s.values, s.window, s.assets.len()),
            &exposures,
            &ids,
            (config.resamples > 0).then_some(k as u64),
        );
        sets.push(SetRisk {
            label,
            file: path.display().to_string(),
            method: s
                .metadata
                .get(crate::io::meta::METHOD)
                .cloned()
                .unwrap_or_else(|| "diffusion".into()),
            generator: generator_settings(&s.metadata),
            paths: ids.len(),
            horizons,
            pnl,
            ids,
        });
    }
    let (regime, window, _) = first.expect("at least one scenario file");
    if let Some(real) = &config.real {
        let set = WindowSet::read(real)?;
        check_horizons(config, set.window, real)?;
        let regime_index = set.rule.index_of(&regime)?;
        let indices = set.select(Some(regime_index), config.split, config.test_from);
        if indices.is_empty() {
            return Err(Error::option(
                "split",
                &split,
                format!(
                    "{} holds no window of `{regime}` in that split (test from {})",
                    real.display(),
                    format_date(config.test_from)
                ),
            ));
        }
        let exposures = portfolio.exposures(&set.assets, real)?;
        let ids: Vec<u32> = indices.iter().map(|&w| set.windows[w].id).collect();
        let values = set.gather(&indices);
        let (horizons, pnl) = score(
            config,
            (&values, set.window, set.assets.len()),
            &exposures,
            &ids,
            None,
        );
        sets.push(SetRisk {
            label: real_label,
            file: real.display().to_string(),
            method: "real".into(),
            generator: BTreeMap::new(),
            paths: ids.len(),
            horizons,
            pnl,
            ids,
        });
    }
    let report = RiskReport {
        gross: portfolio.gross(),
        net: portfolio.net(),
        portfolio,
        regime,
        window,
        horizons: config.horizons.clone(),
        levels: config.levels.clone(),
        resamples: config.resamples,
        interval_coverage: measures::INTERVAL_COVERAGE,
        seed: config.seed,
        sets,
        note: NOTE.into(),
    };
    Ok(report)
}

/// One set's tail measures and P&L (every path's) at every horizon; with `bootstrap_set`,
/// bootstrap intervals drawn from a stream of the seed named by that set's index and the
/// horizon, so that an interval does not depend on which other horizons or files were asked for.
fn score(
    config: &RiskConfig,
    (values, window, assets): (&[f64], usize, usize),
    exposures: &[(usize, f64)],
    ids: &[u32],
    bootstrap_set: Option<u64>,
) -> (Vec<HorizonRisk>, Vec<Vec<f64>>) {
    let mut horizons = Vec::new();
    let mut pnl = Vec::new();
    for &days in &config.horizons {
        let p = horizon_pnl(values, window, assets, exposures, days);
        let mut rng =
            bootstrap_set.map(|set| SeededRng::new(config.seed, (set << 16) + days as u64));
        horizons.push(horizon_risk(
            days,
            &p,
            ids,
            &config.levels,
            config.resamples,
            rng.as_mut(),
        ));
        pnl.push(p.total);
    }
    (horizons, pnl)
}

fn check_config(config: &RiskConfig) -> Result<()> {
    if config.scenarios.is_empty() {
        return Err(Error::option(
            "scenarios",
            "",
            "give at least one scenario file",
        ));
    }
    check_horizons_and_levels(&config.horizons, &config.levels)
}

/// Refuses an empty list, a zero or repeated horizon, and a repeated level or one outside
/// (0, 1): the checks the `horizons` and `levels` settings get in every stage that takes them.
pub(crate) fn check_horizons_and_levels(
    horizons_days: &[usize],
    levels_given: &[f64],
) -> Result<()> {
    let list = |v: &[String]| v.join(",");
    let horizons: Vec<String> = horizons_days.iter().map(|h| h.to_string()).collect();
    if horizons_days.is_empty() || horizons_days.contains(&0) {
        return Err(Error::option(
            "horizons",
            list(&horizons),
            "give one or more holding periods of at least 1 day",
        ));
    }
    // A repeat would score and report the same rows twice.
    if let Some((first, _)) = first_repeat(horizons_days) {
        return Err(Error::option(
            "horizons",
            list(&horizons),
            format!("{} is given twice", horizons[first]),
        ));
    }
    let levels: Vec<String> = levels_given.iter().map(|l| l.to_string()).collect();
    if levels_given.is_empty() || levels_given.iter().any(|l| !(*l > 0.0 && *l < 1.0)) {
        return Err(Error::option(
            "levels",
            list(&levels),
            "give one or more confidence levels strictly between 0 and 1, e.g. 0.95,0.99",
        ));
    }
    if let Some((first, _)) = first_repeat(levels_given) {
        return Err(Error::option(
            "levels",
            list(&levels),
            format!("{} is given twice", levels[first]),
        ));
    }
    Ok(())
}

fn check_horizons(config: &RiskConfig, window: usize, source: &std::path::Path) -> Result<()> {
    match config.horizons.iter().find(|&&h| h > window) {
        Some(h) => Err(Error::option(
            "horizons",
            h,
            format!("longer than the {window}-day paths of {}", source.display()),
        )),
        None => Ok(()),
    }
}
