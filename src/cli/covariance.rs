//! Options of `scengen covariance`.

use std::path::PathBuf;

use super::date;
use scengen::covariance::CovarianceConfig;
use scengen::error::Result;
use scengen::io::parse_date;

#[derive(Debug, clap::Args)]
pub struct CovarianceArgs {
    /// Windows file written by `scengen ingest`.
    #[arg(long, default_value_os_t = CovarianceConfig::default().real)]
    pub real: PathBuf,
    /// Diffusion scenario files or folders of them (baseline files in a folder are skipped).
    #[arg(long, default_values_os_t = CovarianceConfig::default().scenarios)]
    pub scenarios: Vec<PathBuf>,
    /// Real days before this date estimate the matrices.
    #[arg(long, default_value_t = date(CovarianceConfig::default().test_from))]
    pub test_from: String,
    /// Output folder.
    #[arg(long, default_value_os_t = CovarianceConfig::default().out)]
    pub out: PathBuf,
}

impl CovarianceArgs {
    pub fn into_config(self) -> Result<CovarianceConfig> {
        Ok(CovarianceConfig {
            real: self.real,
            scenarios: self.scenarios,
            test_from: parse_date("--test-from", &self.test_from)?,
            out: self.out,
        })
    }
}
