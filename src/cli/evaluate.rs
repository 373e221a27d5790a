//! Options of `scengen evaluate`.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::data::SplitChoice;
use crate::error::Result;
use crate::eval::EvaluateConfig;
use crate::io::parse_date;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Test,
    Train,
    All,
}

impl From<SplitArg> for SplitChoice {
    fn from(split: SplitArg) -> Self {
        match split {
            SplitArg::Test => SplitChoice::Test,
            SplitArg::Train => SplitChoice::Train,
            SplitArg::All => SplitChoice::All,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Windows file written by `scengen ingest`.
    #[arg(long, default_value = "data/windows.parquet")]
    pub real: PathBuf,
    /// Regime to evaluate.
    #[arg(long)]
    pub regime: String,
    /// Which real windows are the reference.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    #[arg(long, default_value = "2016-01-01")]
    pub test_from: String,
    /// Scenario files (repeat the option for several).
    #[arg(long, required = true)]
    pub synthetic: Vec<PathBuf>,
    /// Labels of the scenario files, in the same order (default: file names).
    #[arg(long)]
    pub label: Vec<String>,
    /// Output folder (default reports/<regime>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl EvaluateArgs {
    pub fn into_config(self) -> Result<EvaluateConfig> {
        let synthetic = super::labelled("--synthetic", self.synthetic, self.label)?;
        Ok(EvaluateConfig {
            out: self
                .out
                .unwrap_or_else(|| PathBuf::from(format!("reports/{}", self.regime))),
            real: self.real,
            regime: self.regime,
            split: self.split.into(),
            test_from: parse_date("--test-from", &self.test_from)?,
            synthetic,
        })
    }
}
