//! Options of `scengen covariance`.

use std::path::PathBuf;

use crate::covariance::CovarianceConfig;
use crate::error::Result;
use crate::io::parse_date;

#[derive(Debug, clap::Args)]
pub struct CovarianceArgs {
    /// Windows file written by `scengen ingest`.
    #[arg(long, default_value = "data/windows.parquet")]
    pub real: PathBuf,
    /// Diffusion scenario files or folders of them (baseline files in a folder are skipped).
    #[arg(long, default_value = "scenarios")]
    pub scenarios: Vec<PathBuf>,
    /// Real days before this date estimate the matrices.
    #[arg(long, default_value = "2016-01-01")]
    pub test_from: String,
    #[arg(long, default_value = "reports/covariance")]
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
