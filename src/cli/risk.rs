//! Options of `scengen risk`.

use std::path::PathBuf;

use super::backtest::HeldOutArgs;
use super::evaluate::SplitArg;
use super::ingest::{kind_args, value_kind, KindArg, RegimeArgs, ReturnsArg};
use super::{date, list, parse_days, parse_numbers};
use scengen::error::Result;
use scengen::io::parse_date;
use scengen::risk::{default_out, RiskConfig};
use scengen::var_backtest::{VarBacktestConfig, RISKMETRICS_LAMBDA};

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
    #[arg(long, value_enum, default_value_t = RiskConfig::default().split.into())]
    pub split: SplitArg,
    /// First day of the held-out period (with --real).
    #[arg(long, default_value_t = date(RiskConfig::default().test_from))]
    pub test_from: String,
    /// Holding periods in days, comma-separated.
    #[arg(long, default_value_t = list(&RiskConfig::default().horizons))]
    pub horizons: String,
    /// Confidence levels of VaR and CVaR, comma-separated.
    #[arg(long, default_value_t = list(&RiskConfig::default().levels))]
    pub levels: String,
    /// Bootstrap resamples per interval (0: no intervals).
    #[arg(long, default_value_t = RiskConfig::default().resamples)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = RiskConfig::default().seed)]
    pub seed: u64,
    /// Output folder (default reports/risk/<portfolio file name>-<first scenario file name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl RiskArgs {
    pub fn into_config(self) -> Result<RiskConfig> {
        let horizons = parse_days("--horizons", &self.horizons)?;
        let out = self
            .out
            .unwrap_or_else(|| default_out(&self.portfolio, &self.scenarios[0]));
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

#[derive(Debug, clap::Args)]
pub struct VarBacktestArgs {
    /// Portfolio file (TOML): a [positions] table of asset = market value. Without it, the
    /// example book data/example_portfolio.toml, and a note on the terminal says so.
    #[arg(long)]
    pub portfolio: Option<PathBuf>,
    #[command(flatten)]
    pub held_out: HeldOutArgs,
    /// What the panel's asset columns hold.
    #[arg(long, value_enum, default_value_t = kind_args(VarBacktestConfig::default().kind).0)]
    pub kind: KindArg,
    /// With --kind returns: log or simple returns.
    #[arg(long, value_enum, default_value_t = kind_args(VarBacktestConfig::default().kind).1)]
    pub returns: ReturnsArg,
    /// Holding periods in days, comma-separated.
    #[arg(long, default_value_t = list(&VarBacktestConfig::default().horizons))]
    pub horizons: String,
    /// VaR confidence levels, comma-separated.
    #[arg(long, default_value_t = list(&VarBacktestConfig::default().levels))]
    pub levels: String,
    /// Trailing return days behind the historical-simulation reference.
    #[arg(long, default_value_t = VarBacktestConfig::default().lookback)]
    pub lookback: usize,
    /// Decay of the portfolio's EWMA volatility, to which every model is also scaled
    /// (`<model>+ewma`).
    #[arg(long, default_value_t = RISKMETRICS_LAMBDA)]
    pub ewma_lambda: f64,
    /// Score the models only as they are, not also scaled to the EWMA volatility.
    #[arg(long)]
    pub no_ewma: bool,
    /// Scenario files, or folders of them: one file per generator and regime.
    #[arg(long, default_values_os_t = VarBacktestConfig::default().scenarios)]
    pub scenarios: Vec<PathBuf>,
    /// Also score this model's scenarios as of each morning (`diffusion-state`), beside FHS as
    /// of each morning (`fhs`, whose regime files are then not read).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Paths per morning of the models as of each morning (per regime and starting level for
    /// the diffusion model's draw).
    #[arg(long, default_value_t = VarBacktestConfig::default().paths)]
    pub paths: usize,
    /// Seed of the models as of each morning.
    #[arg(long, default_value_t = VarBacktestConfig::default().seed)]
    pub seed: u64,
    #[command(flatten)]
    pub regime: RegimeArgs,
    /// Output folder.
    #[arg(long, default_value_os_t = VarBacktestConfig::default().out)]
    pub out: PathBuf,
}

impl VarBacktestArgs {
    pub fn into_config(self) -> Result<VarBacktestConfig> {
        let (signal, rule) = self.regime.into_parts()?;
        let (from, to) = self.held_out.period()?;
        let example = self.portfolio.is_none();
        let config = VarBacktestConfig {
            portfolio: self
                .portfolio
                .unwrap_or_else(|| VarBacktestConfig::default().portfolio),
            prices: self.held_out.prices,
            date_column: self.held_out.date_column,
            kind: value_kind(self.kind, self.returns),
            from,
            to,
            horizons: parse_days("--horizons", &self.horizons)?,
            levels: parse_numbers("--levels", &self.levels)?,
            lookback: self.lookback,
            ewma_lambda: (!self.no_ewma).then_some(self.ewma_lambda),
            scenarios: self.scenarios,
            model: self.model,
            paths: self.paths,
            seed: self.seed,
            signal,
            rule,
            out: self.out,
        };
        if example {
            eprintln!(
                "note: no --portfolio given; backtesting the example book {}",
                config.portfolio.display()
            );
        }
        Ok(config)
    }
}
