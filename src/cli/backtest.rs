//! Options of `scengen backtest`.

use std::path::PathBuf;

use clap::ValueEnum;

use super::date;
use super::ingest::RegimeArgs;
use scengen::backtest::{BacktestConfig, Rebalance};
use scengen::error::Result;
use scengen::io::parse_date;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RebalanceArg {
    Weekly,
    Monthly,
    Quarterly,
}

impl From<Rebalance> for RebalanceArg {
    fn from(rebalance: Rebalance) -> Self {
        match rebalance {
            Rebalance::Weekly => RebalanceArg::Weekly,
            Rebalance::Monthly => RebalanceArg::Monthly,
            Rebalance::Quarterly => RebalanceArg::Quarterly,
        }
    }
}

/// The real prices and the held-out period of a backtest (`backtest`, `var-backtest`).
#[derive(Debug, clap::Args)]
pub struct HeldOutArgs {
    /// Parquet panel of prices (or returns, with --kind of var-backtest and forecast-backtest): a
    /// date column and one column per asset of the scenarios.
    #[arg(long, default_value_os_t = BacktestConfig::default().prices)]
    pub prices: PathBuf,
    /// Name of the date column.
    #[arg(long, default_value_t = BacktestConfig::default().date_column)]
    pub date_column: String,
    /// First held-out day: the first rebalance, the first day a VaR is forecast for, or the
    /// first forecast date.
    #[arg(long, default_value_t = date(BacktestConfig::default().from))]
    pub from: String,
    /// Last held-out day (default: the end of the data).
    #[arg(long)]
    pub to: Option<String>,
}

impl HeldOutArgs {
    /// `--from` and `--to` as day numbers.
    pub fn period(&self) -> Result<(i32, Option<i32>)> {
        Ok((
            parse_date("--from", &self.from)?,
            self.to
                .as_deref()
                .map(|t| parse_date("--to", t))
                .transpose()?,
        ))
    }
}

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub held_out: HeldOutArgs,
    /// Trailing return days behind the classical estimators.
    #[arg(long, default_value_t = BacktestConfig::default().lookback)]
    pub lookback: usize,
    /// Trailing return days behind the variances that scale the synthetic correlation.
    #[arg(long, default_value_t = BacktestConfig::default().variance_days)]
    pub variance_days: usize,
    /// Rebuild the portfolios on the first trading day of each week, month or quarter.
    #[arg(long, value_enum, default_value_t = BacktestConfig::default().rebalance.into())]
    pub rebalance: RebalanceArg,
    /// Diffusion scenario files, one per regime, or folders of them (baseline files are skipped).
    #[arg(long, default_values_os_t = BacktestConfig::default().scenarios)]
    pub scenarios: Vec<PathBuf>,
    #[command(flatten)]
    pub regime: RegimeArgs,
    /// Output folder.
    #[arg(long, default_value_os_t = BacktestConfig::default().out)]
    pub out: PathBuf,
}

impl BacktestArgs {
    pub fn into_config(self) -> Result<BacktestConfig> {
        let (signal, rule) = self.regime.into_parts()?;
        let (from, to) = self.held_out.period()?;
        Ok(BacktestConfig {
            prices: self.held_out.prices,
            date_column: self.held_out.date_column,
            from,
            to,
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
