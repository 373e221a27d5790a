//! Options of `scengen ingest`.

use std::path::PathBuf;

use clap::ValueEnum;

use super::{list, parse_numbers, split_list};
use scengen::data::{
    IngestConfig, OnMissing, RegimeRule, SignalSource, SyntheticConfig, ValueKind,
};
use scengen::error::Result;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    Prices,
    Returns,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReturnsArg {
    Log,
    Simple,
}

/// `--kind` and `--returns` of a [`ValueKind`].
pub(super) fn kind_args(kind: ValueKind) -> (KindArg, ReturnsArg) {
    match kind {
        ValueKind::Prices => (KindArg::Prices, ReturnsArg::Log),
        ValueKind::LogReturns => (KindArg::Returns, ReturnsArg::Log),
        ValueKind::SimpleReturns => (KindArg::Returns, ReturnsArg::Simple),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnMissingArg {
    Error,
    Drop,
    Ffill,
}

impl From<OnMissing> for OnMissingArg {
    fn from(on_missing: OnMissing) -> Self {
        match on_missing {
            OnMissing::Error => OnMissingArg::Error,
            OnMissing::Drop => OnMissingArg::Drop,
            OnMissing::Ffill => OnMissingArg::Ffill,
        }
    }
}

/// The [`ValueKind`] of `--kind` and `--returns`.
pub(super) fn value_kind(kind: KindArg, returns: ReturnsArg) -> ValueKind {
    match (kind, returns) {
        (KindArg::Prices, _) => ValueKind::Prices,
        (KindArg::Returns, ReturnsArg::Log) => ValueKind::LogReturns,
        (KindArg::Returns, ReturnsArg::Simple) => ValueKind::SimpleReturns,
    }
}

/// `FILE:COLUMN` of the default regime signal's index.
fn default_index() -> String {
    match SignalSource::embedded_index() {
        SignalSource::RealizedVol { path, column } | SignalSource::Level { path, column } => {
            format!("{}:{column}", path.display())
        }
    }
}

/// The regime signal and rule, shared by every command that labels dates with regimes.
#[derive(Debug, clap::Args)]
pub struct RegimeArgs {
    /// A volatility level (e.g. VIX) as FILE:COLUMN, joined on date; replaces --index.
    #[arg(long)]
    pub signal: Option<String>,
    /// Index whose trailing 21-day realised volatility labels the regimes, as FILE:COLUMN.
    #[arg(long, default_value_t = default_index())]
    pub index: String,
    /// Increasing regime thresholds on the signal, comma-separated.
    #[arg(long, default_value_t = list(&RegimeRule::default().thresholds))]
    pub thresholds: String,
    /// Regime labels, one more than thresholds, comma-separated.
    #[arg(long, default_value_t = list(&RegimeRule::default().labels))]
    pub labels: String,
}

impl RegimeArgs {
    pub fn into_parts(self) -> Result<(SignalSource, RegimeRule)> {
        let signal = match &self.signal {
            Some(spec) => {
                let (path, column) = SignalSource::parse_spec("--signal", spec)?;
                SignalSource::Level { path, column }
            }
            None => {
                let (path, column) = SignalSource::parse_spec("--index", &self.index)?;
                SignalSource::RealizedVol { path, column }
            }
        };
        let rule = RegimeRule::new(
            parse_numbers("--thresholds", &self.thresholds)?,
            split_list("--labels", &self.labels)?,
        )?;
        Ok((signal, rule))
    }
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Parquet panel: a date column and one numeric column per asset.
    #[arg(long, default_value_os_t = IngestConfig::default().input)]
    pub input: PathBuf,
    /// Name of the date column.
    #[arg(long, default_value_t = IngestConfig::default().date_column)]
    pub date_column: String,
    /// Asset columns to use, comma-separated (default: every column but the date).
    #[arg(long)]
    pub assets: Option<String>,
    /// What the asset columns hold.
    #[arg(long, value_enum, default_value_t = kind_args(IngestConfig::default().kind).0)]
    pub kind: KindArg,
    /// With --kind returns: log or simple returns.
    #[arg(long, value_enum, default_value_t = kind_args(IngestConfig::default().kind).1)]
    pub returns: ReturnsArg,
    /// Window length in trading days.
    #[arg(long, default_value_t = IngestConfig::default().window)]
    pub window: usize,
    /// Days between window starts.
    #[arg(long, default_value_t = IngestConfig::default().stride)]
    pub stride: usize,
    #[command(flatten)]
    pub regime: RegimeArgs,
    /// Treatment of missing or impossible values.
    #[arg(long, value_enum, default_value_t = IngestConfig::default().on_missing.into())]
    pub on_missing: OnMissingArg,
    /// Clip each asset's returns to its [Q, 1-Q] quantiles (off by default).
    #[arg(long, value_name = "Q")]
    pub winsorize: Option<f64>,
    /// Output windows file.
    #[arg(long, default_value_os_t = IngestConfig::default().out)]
    pub out: PathBuf,
}

impl IngestArgs {
    pub fn into_config(self) -> Result<IngestConfig> {
        let (signal, rule) = self.regime.into_parts()?;
        let assets = self
            .assets
            .as_deref()
            .map(|text| split_list("--assets", text))
            .transpose()?;
        Ok(IngestConfig {
            input: self.input,
            date_column: self.date_column,
            assets,
            kind: value_kind(self.kind, self.returns),
            window: self.window,
            stride: self.stride,
            signal,
            rule,
            on_missing: match self.on_missing {
                OnMissingArg::Error => OnMissing::Error,
                OnMissingArg::Drop => OnMissing::Drop,
                OnMissingArg::Ffill => OnMissing::Ffill,
            },
            winsorize: self.winsorize,
            out: self.out,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct SyntheticArgs {
    /// Assets.
    #[arg(long, default_value_t = SyntheticConfig::default().assets)]
    pub assets: usize,
    /// Factors, the market among them.
    #[arg(long, default_value_t = SyntheticConfig::default().factors)]
    pub factors: usize,
    /// Trading days (weekdays from 1990-01-01).
    #[arg(long, default_value_t = SyntheticConfig::default().days)]
    pub days: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = SyntheticConfig::default().seed)]
    pub seed: u64,
    /// The panel of daily log returns (ingest it with --kind returns).
    #[arg(long, default_value_os_t = SyntheticConfig::default().out)]
    pub out: PathBuf,
    /// The equal-weight index's levels, column `index` (ingest --index FILE:index).
    #[arg(long, default_value_os_t = SyntheticConfig::default().index_out)]
    pub index_out: PathBuf,
}

impl SyntheticArgs {
    pub fn into_config(self) -> SyntheticConfig {
        SyntheticConfig {
            assets: self.assets,
            factors: self.factors,
            days: self.days,
            seed: self.seed,
            out: self.out,
            index_out: self.index_out,
        }
    }
}
