//! Classical scenario generators, the rivals a risk team already runs: i.i.d. Gaussian days,
//! the stationary block bootstrap of real days, and filtered historical simulation on
//! GARCH(1,1) (FHS). Each fits only on the train split of one regime and writes the same
//! scenario file as the diffusion model. As of a close, FHS starts from the close's GARCH
//! variances, and filtered historical simulation on EWMA volatility (`historical.rs`) rescales
//! the trailing days to the close's.

mod bootstrap;
mod garch;
mod historical;

pub use bootstrap::{optimal_block_length, stationary_path};
pub use fhs::FhsModel;
pub use garch::{
    backcast, fit_asset_garch, fit_garch11, log_likelihood, AssetGarch, Garch11, GarchFit,
    GarchPanel,
};
pub use historical::{check_history, FilteredHistory, RISKMETRICS_LAMBDA};

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::data::{default_test_from, AsOf, DailyPanel, SplitChoice, WindowSet, DEFAULT_WINDOWS};
use crate::error::{Error, Result};
use crate::rng::{SeededRng, DEFAULT_SEED};
use crate::scenarios::{
    batches_of, check_path_count, default_scenario_file, ScenarioWriter, Shard, DEFAULT_PATHS,
    DEFAULT_REGIME,
};

/// Which classical generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Gaussian,
    Bootstrap,
    Fhs,
    /// Filtered historical simulation on EWMA volatility, as of a close only.
    FilteredHs,
}

impl Method {
    pub fn name(&self) -> &'static str {
        match self {
            Method::Gaussian => "gaussian",
            Method::Bootstrap => "bootstrap",
            Method::Fhs => "fhs",
            Method::FilteredHs => "filtered-hs",
        }
    }
}

/// Settings of one baseline run.
#[derive(Debug, Clone)]
pub struct BaselineConfig {
    pub method: Method,
    pub data: PathBuf,
    pub regime: String,
    pub n: usize,
    pub seed: u64,
    pub test_from: i32,
    /// Mean block length of the bootstrap; `None` for the Politis–White choice.
    pub block_length: Option<f64>,
    pub out: PathBuf,
    /// Which part of the run's paths to write (the whole run by default).
    pub shard: Shard,
    /// FHS and filtered historical simulation: every path from the state at this close, the
    /// GARCH or the EWMA started on the panel's days before `test_from` (or up to the close);
    /// the file's regime is the one in force after the close, and `regime` is not used.
    pub as_of: Option<AsOf>,
    /// Filtered historical simulation: the trailing return days its paths come from.
    pub lookback: usize,
    /// Filtered historical simulation: the decay of its EWMA volatility.
    pub ewma_lambda: f64,
}

/// The defaults: 10,000 FHS paths of high-vix fitted on the train days of [`DEFAULT_WINDOWS`]
/// before [`default_test_from`], to `scenarios/high-vix-fhs.parquet`; filtered historical
/// simulation over 500 days with the RiskMetrics decay.
impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            method: Method::Fhs,
            data: DEFAULT_WINDOWS.into(),
            regime: DEFAULT_REGIME.into(),
            n: DEFAULT_PATHS,
            seed: DEFAULT_SEED,
            test_from: default_test_from(),
            block_length: None,
            out: default_scenario_file(DEFAULT_REGIME, Some(Method::Fhs.name())),
            shard: Shard::default(),
            as_of: None,
            lookback: 500,
            ewma_lambda: RISKMETRICS_LAMBDA,
        }
    }
}

/// Paths are written in batches of this many.
const BATCH: usize = 1000;

/// Fits the method on the regime's train days and writes `n` paths.
pub fn generate_baseline(config: &BaselineConfig) -> Result<PathBuf> {
    check_path_count(config.n)?;
    config.shard.check()?;
    if let Some(as_of) = &config.as_of {
        return generate_as_of(config, as_of);
    }
    if config.method == Method::FilteredHs {
        return Err(Error::option(
            "method",
            "filtered-hs",
            "works as of a close only: it rescales the days before the close to its volatility",
        ));
    }
    let set = WindowSet::read(&config.data)?;
    let regime = set.rule.index_of(&config.regime)?;
    let days = DailyPanel::from_windows(&set, Some(regime), SplitChoice::Train, config.test_from);
    let n_assets = set.assets.len();
    let needed = match config.method {
        Method::Gaussian => 2 * n_assets,
        Method::Bootstrap | Method::Fhs | Method::FilteredHs => set.window,
    };
    if days.len() < needed {
        return Err(Error::option(
            "regime",
            &config.regime,
            format!(
                "only {} train days in {} before the test period; {} needs at least {needed}",
                days.len(),
                config.data.display(),
                config.method.name()
            ),
        ));
    }
    let mut metadata = common_metadata(config);
    metadata.insert(
        crate::io::meta::DATA.into(),
        config.data.display().to_string(),
    );
    metadata.insert(crate::io::meta::TRAIN_DAYS.into(), days.len().to_string());
    let generator: Box<dyn PathGenerator> = match config.method {
        Method::Gaussian => Box::new(gaussian::Gaussian::fit(&days, &config.regime)?),
        Method::Bootstrap => Box::new(bootstrap_generator(&days, config.block_length)?),
        Method::Fhs => {
            let all_train =
                DailyPanel::from_windows(&set, None, SplitChoice::Train, config.test_from);
            Box::new(fhs::Fhs::fit(&all_train, &days, &set.assets)?)
        }
        Method::FilteredHs => unreachable!("refused above without --as-of"),
    };
    write_paths(config, &set, &config.regime, metadata, generator.as_ref())
}

/// FHS or filtered historical simulation as of a close ([`BaselineConfig::as_of`]).
fn generate_as_of(config: &BaselineConfig, as_of: &AsOf) -> Result<PathBuf> {
    let set = WindowSet::read(&config.data)?;
    let generator: Box<dyn PathGenerator>;
    let (days, fit_days) = match config.method {
        Method::Fhs => {
            let days = as_of.read(&set.assets, 1)?;
            let fit_days = AsOf::fit_days(&days, config.test_from);
            let garch = GarchPanel::fit(&days.returns.columns, fit_days, &set.assets)?;
            generator = Box::new(fhs::FhsAsOf {
                model: FhsModel::from_panel(&garch, fit_days),
                start: garch.next_variances(days.t),
            });
            (days, fit_days)
        }
        Method::FilteredHs => {
            check_history(&[set.window], config.lookback, Some(config.ewma_lambda))?;
            let days = as_of.read(&set.assets, config.lookback)?;
            let fit_days = AsOf::fit_days(&days, config.test_from).max(1);
            generator = Box::new(historical::FilteredHsAsOf {
                history: FilteredHistory::new(&days.returns.columns, fit_days, config.ewma_lambda),
                t: days.t,
                lookback: config.lookback,
                lambda: config.ewma_lambda,
            });
            (days, fit_days)
        }
        Method::Gaussian | Method::Bootstrap => {
            return Err(Error::option(
                "as-of",
                as_of.date_text(),
                format!(
                    "applies to fhs, filtered-hs and the diffusion model, not {}",
                    config.method.name()
                ),
            ))
        }
    };
    let mut metadata = common_metadata(config);
    metadata.insert(
        crate::io::meta::PRICES.into(),
        as_of.prices.display().to_string(),
    );
    metadata.insert(
        crate::io::meta::AS_OF.into(),
        crate::io::format_date(days.returns.dates[days.t]),
    );
    metadata.insert(crate::io::meta::TRAIN_DAYS.into(), fit_days.to_string());
    write_paths(
        config,
        &set,
        &days.regime_in_force,
        metadata,
        generator.as_ref(),
    )
}

/// The metadata every baseline file has: the method, the seed and the training cut-off.
fn common_metadata(config: &BaselineConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        (crate::io::meta::METHOD.into(), config.method.name().into()),
        (crate::io::meta::SEED.into(), config.seed.to_string()),
        (
            crate::io::meta::TEST_FROM.into(),
            crate::io::format_date(config.test_from),
        ),
    ])
}

/// Writes `config.n` paths (its shard's) of `generator` with `metadata` and its parameters.
fn write_paths(
    config: &BaselineConfig,
    set: &WindowSet,
    regime: &str,
    mut metadata: BTreeMap<String, String>,
    generator: &dyn PathGenerator,
) -> Result<PathBuf> {
    metadata.insert(crate::io::meta::PARAMETERS.into(), generator.parameters());
    metadata.extend(config.shard.metadata(config.n));
    let n_assets = set.assets.len();
    let mut writer =
        ScenarioWriter::create(&config.out, &set.assets, regime, set.window, metadata)?;
    for paths in batches_of(config.shard.paths(config.n), BATCH) {
        let start = paths.start;
        let mut values = Vec::with_capacity(paths.len() * set.window * n_assets);
        for p in paths {
            let mut rng = SeededRng::new(config.seed, p as u64);
            generator.path(set.window, &mut rng, &mut values);
        }
        writer.write_paths(start as u32, &values)?;
    }
    writer.finish()
}

/// One fitted generator: appends a path of `len` days (day-major) to `out`.
trait PathGenerator {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>);
    /// Fitted parameters as JSON, for the file's metadata.
    fn parameters(&self) -> String;
}

struct Bootstrap {
    days: DailyPanel,
    mean_block: f64,
    chosen_by: &'static str,
}

fn bootstrap_generator(days: &DailyPanel, block_length: Option<f64>) -> Result<Bootstrap> {
    let (mean_block, chosen_by) = match block_length {
        Some(b) if b.is_finite() && b >= 1.0 => (b, "block_length"),
        Some(b) => return Err(Error::option("block_length", b, "must be a number >= 1")),
        None => {
            // The mean over assets of each asset's Politis–White length.
            let lengths: Vec<f64> = (0..days.assets)
                .map(|a| optimal_block_length(&days.column(a)).0)
                .collect();
            (
                lengths.iter().sum::<f64>() / lengths.len() as f64,
                "politis-white",
            )
        }
    };
    Ok(Bootstrap {
        days: days.clone(),
        mean_block,
        chosen_by,
    })
}

impl PathGenerator for Bootstrap {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        for d in stationary_path(
            &self.days.stretches,
            self.days.len(),
            len,
            self.mean_block,
            rng,
        ) {
            out.extend_from_slice(self.days.day(d));
        }
    }

    fn parameters(&self) -> String {
        serde_json::json!({
            "mean_block_length": self.mean_block,
            "chosen_by": self.chosen_by,
            "days": self.days.len(),
            "stretches": self.days.stretches.len(),
        })
        .to_string()
    }
}

mod fhs;
mod gaussian;
