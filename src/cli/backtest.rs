//! Options of `scengen backtest`.

use std::path::PathBuf;

use clap::ValueEnum;

use super::ingest::RegimeArgs;
use crate::error::Result;
use crate::io::parse_date;
use crate::portfolio::{BacktestConfig, Rebalance};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RebalanceArg {
    Weekly,
    Monthly,
    Quarterly,
}

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Parquet panel of prices: a date column and one column per asset of the scenarios.
    #[arg(long, default_value = "data/sp500_20_prices.parquet")]
    pub prices: PathBuf,
    /// Name of the date column.
    #[arg(long, default_value = "date")]
    pub date_column: String,
    /// First out-of-sample day.
    #[arg(long, default_value = "2016-01-01")]
    pub from: String,
    /// Last day (default: the end of the data).
    #[arg(long)]
    pub to: Option<String>,
    /// Trailing return days behind the classical estimators.
    #[arg(long, default_value_t = 252)]
    pub lookback: usize,
    /// Trailing return days behind the variances that scale the synthetic correlation.
    #[arg(long, default_value_t = 63)]
    pub variance_days: usize,
    /// Rebuild the portfolios on the first trading day of each week, month or quarter.
    #[arg(long, value_enum, default_value = "monthly")]
    pub rebalance: RebalanceArg,
    /// Diffusion scenario files, one per regime, or folders of them (baseline files are skipped).
    #[arg(long, default_value = "scenarios")]
    pub scenarios: Vec<PathBuf>,
    #[command(flatten)]
    pub regime: RegimeArgs,
    #[arg(long, default_value = "reports/backtest")]
    pub out: PathBuf,
}

impl BacktestArgs {
    pub fn into_config(self) -> Result<BacktestConfig> {
        let (signal, rule) = self.regime.into_parts()?;
        Ok(BacktestConfig {
            prices: self.prices,
            date_column: self.date_column,
            from: parse_date("--from", &self.from)?,
            to: self.to.map(|t| parse_date("--to", &t)).transpose()?,
            lookback: self.lookback,
            variance_days: self.variance_days,
            rebalance: match self.rebalance {
                RebalanceArg::Weekly => Rebalance::Weekly,
                RebalanceArg::Monthly => Rebalance::Monthly,
                RebalanceArg::Quarterly => Rebalance::Quarterly,
            },
            scenarios: self.scenarios,
            signal,
            rule,
            out: self.out,
        })
    }
}
