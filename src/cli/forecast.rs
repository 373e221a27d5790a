//! Options of `scengen forecast-backtest`.

use std::path::PathBuf;

use super::backtest::HeldOutArgs;
use super::ingest::{kind_args, value_kind, KindArg, RegimeArgs, ReturnsArg};
use super::sampling::SamplerArgs;
use super::{list, parse_days, parse_numbers};
use scengen::error::Result;
use scengen::forecast_backtest::ForecastBacktestConfig;

#[derive(Debug, clap::Args)]
pub struct ForecastBacktestArgs {
    #[command(flatten)]
    pub held_out: HeldOutArgs,
    /// What the panel's asset columns hold.
    #[arg(long, value_enum, default_value_t = kind_args(ForecastBacktestConfig::default().kind).0)]
    pub kind: KindArg,
    /// With --kind returns: log or simple returns.
    #[arg(long, value_enum, default_value_t = kind_args(ForecastBacktestConfig::default().kind).1)]
    pub returns: ReturnsArg,
    /// Trading days between forecast dates.
    #[arg(long, default_value_t = ForecastBacktestConfig::default().every)]
    pub every: usize,
    /// Forecast horizons in trading days, comma-separated.
    #[arg(long, default_value_t = list(&ForecastBacktestConfig::default().horizons))]
    pub horizons: String,
    /// Paths per forecast (a scenario file's first paths; FHS draws this many on each date).
    #[arg(long, default_value_t = ForecastBacktestConfig::default().paths)]
    pub paths: usize,
    /// Trailing return days of historical simulation.
    #[arg(long, default_value_t = ForecastBacktestConfig::default().lookback)]
    pub lookback: usize,
    /// Decay of the EWMA volatility of filtered historical simulation.
    #[arg(long, default_value_t = ForecastBacktestConfig::default().ewma_lambda)]
    pub ewma_lambda: f64,
    /// Scenario files, or folders of them: one file per generator and regime (FHS files are
    /// skipped: `fhs` is fitted as of each date).
    #[arg(long, default_values_os_t = ForecastBacktestConfig::default().scenarios)]
    pub scenarios: Vec<PathBuf>,
    /// Draw the diffusion model's scenarios from this model folder instead of its files.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// With --model: the sampler its paths are drawn with.
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Portfolio file (TOML) whose VaR coverage is tested [default: 1 million spread equally
    /// over the assets].
    #[arg(long)]
    pub portfolio: Option<PathBuf>,
    /// VaR confidence levels of the book, comma-separated.
    #[arg(long, default_value_t = list(&ForecastBacktestConfig::default().levels))]
    pub levels: String,
    #[command(flatten)]
    pub regime: RegimeArgs,
    /// Seed of the paths FHS draws (and the model's, with --model).
    #[arg(long, default_value_t = ForecastBacktestConfig::default().seed)]
    pub seed: u64,
    /// Output folder.
    #[arg(long, default_value_os_t = ForecastBacktestConfig::default().out)]
    pub out: PathBuf,
}

impl ForecastBacktestArgs {
    pub fn into_config(self) -> Result<ForecastBacktestConfig> {
        let (signal, rule) = self.regime.into_parts()?;
        let (from, to) = self.held_out.period()?;
        Ok(ForecastBacktestConfig {
            prices: self.held_out.prices,
            date_column: self.held_out.date_column,
            kind: value_kind(self.kind, self.returns),
            from,
            to,
            every: self.every,
            horizons: parse_days("--horizons", &self.horizons)?,
            paths: self.paths,
            lookback: self.lookback,
            ewma_lambda: self.ewma_lambda,
            scenarios: self.scenarios,
            model: self.model,
            sampler: self.sampler.kind(),
            portfolio: self.portfolio,
            levels: parse_numbers("--levels", &self.levels)?,
            signal,
            rule,
            seed: self.seed,
            out: self.out,
        })
    }
}
