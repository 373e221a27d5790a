//! Options of `scengen evaluate`.

use std::path::PathBuf;

use clap::ValueEnum;

use super::date;
use scengen::data::SplitChoice;
use scengen::error::Result;
use scengen::evaluate::{default_out, EvaluateConfig};
use scengen::io::parse_date;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Test,
    Train,
    All,
}

impl From<SplitChoice> for SplitArg {
    fn from(split: SplitChoice) -> Self {
        match split {
            SplitChoice::Test => SplitArg::Test,
            SplitChoice::Train => SplitArg::Train,
            SplitChoice::All => SplitArg::All,
        }
    }
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
    #[arg(long, default_value_os_t = EvaluateConfig::default().real)]
    pub real: PathBuf,
    /// Regime to evaluate.
    #[arg(long)]
    pub regime: String,
    /// Which real windows are the reference.
    #[arg(long, value_enum, default_value_t = EvaluateConfig::default().split.into())]
    pub split: SplitArg,
    /// First day of the held-out period: test windows start on or after it, train windows end
    /// before it.
    #[arg(long, default_value_t = date(EvaluateConfig::default().test_from))]
    pub test_from: String,
    /// Scenario files (repeat the option for several).
    #[arg(long, required = true)]
    pub synthetic: Vec<PathBuf>,
    /// Labels of the scenario files, in the same order (default: file names).
    #[arg(long)]
    pub label: Vec<String>,
    /// Label of one of the scenario files: report every other file's two-sample energy
    /// distance to it (paths as window x assets vectors; e.g. the model's 1,000-step DDPM set,
    /// against which samplers are compared).
    #[arg(long)]
    pub distance_to: Option<String>,
    /// Leave out the reference windows that hold any of these days (YYYY-MM-DD,
    /// comma-separated), and the noise floor's with them: how much of a gap one event makes.
    #[arg(long)]
    pub without: Option<String>,
    /// Output folder (default reports/<regime>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl EvaluateArgs {
    pub fn into_config(self) -> Result<EvaluateConfig> {
        let synthetic = super::labelled("--synthetic", self.synthetic, self.label)?;
        Ok(EvaluateConfig {
            out: self.out.unwrap_or_else(|| default_out(&self.regime)),
            real: self.real,
            regime: self.regime,
            split: self.split.into(),
            test_from: parse_date("--test-from", &self.test_from)?,
            synthetic,
            distance_to: self.distance_to,
            without: match &self.without {
                Some(text) => super::split_list("--without", text)?
                    .iter()
                    .map(|d| parse_date("--without", d))
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            },
        })
    }
}
