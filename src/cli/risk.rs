//! Options of `scengen risk`.

use std::path::PathBuf;

use super::evaluate::SplitArg;
use super::parse_numbers;
use crate::error::{Error, Result};
use crate::io::parse_date;
use crate::risk::RiskConfig;

#[derive(Debug, clap::Args)]
pub struct RiskArgs {
    /// Portfolio file (TOML): a [positions] table of asset = market value.
    #[arg(long)]
    pub portfolio: PathBuf,
    /// Scenario files of one regime (repeat the option for several).
    #[arg(long, required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Labels of the scenario files, in the same order (default: file names).
    #[arg(long)]
    pub label: Vec<String>,
    /// Windows file whose windows of the same regime are scored alongside.
    #[arg(long)]
    pub real: Option<PathBuf>,
    /// Which real windows (with --real).
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    #[arg(long, default_value = "2016-01-01")]
    pub test_from: String,
    /// Holding periods in days, comma-separated.
    #[arg(long, default_value = "1,10,30")]
    pub horizons: String,
    /// Confidence levels of VaR and CVaR, comma-separated.
    #[arg(long, default_value = "0.95,0.99")]
    pub levels: String,
    /// Bootstrap resamples per interval (0: no intervals).
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Output folder (default reports/risk/<portfolio file name>-<first scenario file name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl RiskArgs {
    pub fn into_config(self) -> Result<RiskConfig> {
        let horizons = parse_numbers("--horizons", &self.horizons)?
            .into_iter()
            .map(|h| {
                if h.fract() == 0.0 && (1.0..=u16::MAX as f64).contains(&h) {
                    Ok(h as usize)
                } else {
                    Err(Error::option(
                        "--horizons",
                        &self.horizons,
                        format!("`{h}` is not a whole number of days"),
                    ))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let stem = |p: &PathBuf| crate::sample::default_label(p);
        let out = self.out.unwrap_or_else(|| {
            PathBuf::from(format!(
                "reports/risk/{}-{}",
                stem(&self.portfolio),
                stem(&self.scenarios[0])
            ))
        });
        let scenarios = super::labelled("--scenarios", self.scenarios, self.label)?;
        Ok(RiskConfig {
            portfolio: self.portfolio,
            scenarios,
            real: self.real,
            split: self.split.into(),
            test_from: parse_date("--test-from", &self.test_from)?,
            horizons,
            levels: parse_numbers("--levels", &self.levels)?,
            resamples: self.resamples,
            seed: self.seed,
            out,
        })
    }
}
