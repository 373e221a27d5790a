//! Options of `scengen train` and `scengen generate`.

use std::path::PathBuf;

use clap::{ArgAction, ValueEnum};

use super::date;
use super::ingest::{value_kind, KindArg, RegimeArgs, ReturnsArg};
use super::sampling::SamplingArgs;
use scengen::baselines::{BaselineConfig, Method};
use scengen::data::{AsOf, DEFAULT_DATE_COLUMN, EMBEDDED_PRICES, LATEST};
use scengen::device::{device_name, select_device};
use scengen::diffusion::{Objective, ScheduleKind};
use scengen::error::{Error, Result};
use scengen::generate::{default_batch_size, BenchConfig, GenerateConfig};
use scengen::io::parse_date;
use scengen::scenarios::{default_scenario_file, Shard};
use scengen::train::TrainConfig;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Linear,
    Cosine,
    /// The straight path of flow matching.
    Rectified,
}

impl From<ScheduleKind> for ScheduleArg {
    fn from(kind: ScheduleKind) -> Self {
        match kind {
            ScheduleKind::Linear => ScheduleArg::Linear,
            ScheduleKind::Cosine => ScheduleArg::Cosine,
            ScheduleKind::Rectified => ScheduleArg::Rectified,
        }
    }
}

impl From<ScheduleArg> for ScheduleKind {
    fn from(arg: ScheduleArg) -> Self {
        match arg {
            ScheduleArg::Linear => ScheduleKind::Linear,
            ScheduleArg::Cosine => ScheduleKind::Cosine,
            ScheduleArg::Rectified => ScheduleKind::Rectified,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Mean squared error of the predicted noise.
    Epsilon,
    /// Mean squared error of the straight path's velocity (flow matching).
    FlowMatching,
}

impl From<ObjectiveArg> for Objective {
    fn from(arg: ObjectiveArg) -> Self {
        match arg {
            ObjectiveArg::Epsilon => Objective::Epsilon,
            ObjectiveArg::FlowMatching => Objective::FlowMatching,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// The trained diffusion model (--model).
    Diffusion,
    /// I.i.d. multivariate normal days.
    Gaussian,
    /// Stationary block bootstrap of real days.
    Bootstrap,
    /// Filtered historical simulation on GARCH(1,1).
    Fhs,
    /// Filtered historical simulation on EWMA volatility: the trailing --lookback days before
    /// the --as-of close, rescaled to its volatility.
    FilteredHs,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Windows file written by `scengen ingest`.
    #[arg(long, default_value_os_t = TrainConfig::default().data)]
    pub data: PathBuf,
    /// Model directory to write.
    #[arg(long, default_value_os_t = TrainConfig::default().out)]
    pub out: PathBuf,
    /// Seed of every random draw: initial weights, batches, noise, label dropout.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Windows that end on or after this date are never seen in training.
    #[arg(long, default_value_t = date(TrainConfig::default().test_from))]
    pub test_from: String,
    /// Maximum epochs (early stopping may end sooner).
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Windows per training step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub lr: f64,
    /// Epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    pub patience: usize,
    /// The first epoch whose weights may be kept and after which early stopping may end
    /// training (the last epoch, with fewer --epochs).
    #[arg(long, default_value_t = TrainConfig::default().min_epochs)]
    pub min_epochs: usize,
    /// Probability of dropping the regime label (for classifier-free guidance).
    #[arg(long, default_value_t = TrainConfig::default().regime_dropout)]
    pub regime_dropout: f64,
    /// What the network learns: the noise (epsilon) or the straight path's velocity
    /// (flow-matching).
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Epsilon)]
    pub objective: ObjectiveArg,
    /// Noise schedule of the forward process [default: cosine for epsilon, rectified for
    /// flow-matching].
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Channels of the first U-Net level [default: sized to the number of assets].
    #[arg(long)]
    pub channels: Option<usize>,
    /// Give the network the noisy window's amplitude as an input (`false` to leave it out).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1,
          default_value_t = TrainConfig::default().amplitude_input,
          default_missing_value = "true", value_name = "BOOL")]
    pub amplitude_input: bool,
    /// Rank of the cross-asset linear path (0: none).
    #[arg(long, default_value_t = TrainConfig::default().linear_path)]
    pub linear_path: usize,
    /// Latent factors of a diffusion factor model: the U-Net's correction acts through a learned
    /// assets-to-factors encoder and decoder (0: on the assets directly).
    #[arg(long, default_value_t = TrainConfig::default().factors)]
    pub factors: usize,
    /// Predict the noise as each regime's Gaussian part plus the network's correction
    /// (`false`: the network alone).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1,
          default_value_t = TrainConfig::default().gaussian_prior,
          default_missing_value = "true", value_name = "BOOL")]
    pub gaussian_prior: bool,
    /// Persistent volatility levels of the Gaussian prior (with --volatility-shocks 1 as well:
    /// one Gaussian per regime) [default: 8, or 1 with --gaussian-prior false].
    #[arg(long)]
    pub volatility_levels: Option<usize>,
    /// Day shock sizes of the Gaussian prior, drawn afresh every day on top of the level
    /// [default: 3, or 1 with --gaussian-prior false].
    #[arg(long)]
    pub volatility_shocks: Option<usize>,
    /// Market shock sizes of the Gaussian prior, drawn afresh every day: the market direction's
    /// scale times 0.5 to 8 (1: none) [default: 5, or 1 with --gaussian-prior false].
    #[arg(long)]
    pub market_shocks: Option<usize>,
    /// Fit each asset's own jumps (the tails the prior's common states cannot draw), take them
    /// out of the windows the model learns from and add them to its paths (`false`: none).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1,
          default_value_t = TrainConfig::default().idiosyncratic_jumps,
          default_missing_value = "true", value_name = "BOOL")]
    pub idiosyncratic_jumps: bool,
    /// cpu, cuda or auto.
    #[arg(long, default_value_t = device_name(&TrainConfig::default().device))]
    pub device: String,
}

impl TrainArgs {
    pub fn into_config(self) -> Result<TrainConfig> {
        let defaults = TrainConfig::default();
        // Without the prior there are no states, so the defaults follow it.
        let states = |given: Option<usize>, default: usize| {
            given.unwrap_or(if self.gaussian_prior { default } else { 1 })
        };
        let config = TrainConfig {
            data: self.data,
            out: self.out,
            seed: self.seed,
            test_from: parse_date("--test-from", &self.test_from)?,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            patience: self.patience,
            min_epochs: self.min_epochs,
            regime_dropout: self.regime_dropout,
            objective: self.objective.into(),
            schedule: self.schedule.map_or_else(
                || Objective::from(self.objective).default_schedule(),
                ScheduleKind::from,
            ),
            base_channels: self.channels,
            amplitude_input: self.amplitude_input,
            linear_path: self.linear_path,
            factors: self.factors,
            gaussian_prior: self.gaussian_prior,
            volatility_levels: states(self.volatility_levels, defaults.volatility_levels),
            volatility_shocks: states(self.volatility_shocks, defaults.volatility_shocks),
            market_shocks: states(self.market_shocks, defaults.market_shocks),
            idiosyncratic_jumps: self.idiosyncratic_jumps,
            device: select_device(&self.device)?,
            progress: true,
            ..defaults
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Generator: the diffusion model or a classical baseline.
    #[arg(long, value_enum, default_value_t = MethodArg::Diffusion)]
    pub method: MethodArg,
    /// Windows file the baselines fit on (train split only).
    #[arg(long, default_value_os_t = BaselineConfig::default().data)]
    pub data: PathBuf,
    /// Baselines: days from this date on are never used.
    #[arg(long, default_value_t = date(BaselineConfig::default().test_from))]
    pub test_from: String,
    /// Bootstrap: mean block length (default: Politis–White).
    #[arg(long)]
    pub block_length: Option<f64>,
    /// filtered-hs: trailing return days up to the --as-of close that its paths come from.
    #[arg(long, default_value_t = BaselineConfig::default().lookback)]
    pub lookback: usize,
    /// filtered-hs: decay of each asset's EWMA volatility.
    #[arg(long, default_value_t = BaselineConfig::default().ewma_lambda)]
    pub ewma_lambda: f64,
    /// Model directory written by `scengen train`.
    #[arg(long, default_value_os_t = GenerateConfig::default().model)]
    pub model: PathBuf,
    /// Regime label, e.g. high-vix (with --as-of: the regime in force after that close when
    /// not given).
    #[arg(long, required_unless_present = "as_of")]
    pub regime: Option<String>,
    #[command(flatten)]
    pub as_of: AsOfArgs,
    /// Diffusion without --as-of: where each path starts: `fitted`, the regime chain's fitted
    /// first-day levels; `train-days`, the market's state after a random train day of the
    /// regime in --data (as FHS starts its paths), at its GARCH variances.
    #[arg(long, value_enum, default_value_t = StartsArg::Fitted)]
    pub starts: StartsArg,
    /// Number of paths.
    #[arg(long, default_value_t = GenerateConfig::default().n)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Output scenario file [default: scenarios/<regime>.parquet, or
    /// scenarios/<regime>-<method>.parquet for a baseline].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Paths per network batch [default: 1,000 on the CPU, 5,000 on CUDA].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// cpu, cuda or auto.
    #[arg(long, default_value_t = device_name(&GenerateConfig::default().device))]
    pub device: String,
    /// Write only part I of N of the run's paths, as I/N (I from 0, as JOB_COMPLETION_INDEX
    /// or SLURM_ARRAY_TASK_ID count): the parts of N runs with the same settings together hold
    /// exactly the paths of the unsharded run, and a folder of them reads as one set.
    #[arg(long)]
    pub shard: Option<String>,
}

/// Where the diffusion model's paths start without --as-of.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StartsArg {
    Fitted,
    TrainDays,
}

/// Paths as of a market close: the data the market's state is read from.
#[derive(Debug, clap::Args)]
pub struct AsOfArgs {
    /// Paths for the trading days after this date's close (the last trading day on or before
    /// it; `latest`: the last day of --prices), started from the market's state then: the
    /// diffusion model's, FHS's conditional variances or filtered-hs's EWMA volatilities.
    #[arg(long)]
    pub as_of: Option<String>,
    /// With --as-of: Parquet panel of prices (or returns, with --kind) holding the model's
    /// assets, as ingest read it.
    #[arg(long, default_value = EMBEDDED_PRICES)]
    pub prices: PathBuf,
    /// With --as-of: name of the panel's date column.
    #[arg(long, default_value = DEFAULT_DATE_COLUMN)]
    pub date_column: String,
    /// With --as-of: what the panel's asset columns hold.
    #[arg(long, value_enum, default_value_t = KindArg::Prices)]
    pub kind: KindArg,
    /// With --as-of and --kind returns: log or simple returns.
    #[arg(long, value_enum, default_value_t = ReturnsArg::Log)]
    pub returns: ReturnsArg,
    #[command(flatten)]
    pub regime: RegimeArgs,
}

impl AsOfArgs {
    fn into_as_of(self) -> Result<Option<AsOf>> {
        let Some(date) = &self.as_of else {
            return Ok(None);
        };
        let (signal, rule) = self.regime.into_parts()?;
        Ok(Some(AsOf {
            date: match date.as_str() {
                LATEST => None,
                date => Some(parse_date("--as-of", date)?),
            },
            prices: self.prices,
            date_column: self.date_column,
            kind: value_kind(self.kind, self.returns),
            signal,
            rule,
        }))
    }
}

/// What `generate` will run.
pub enum GenerateJob {
    Diffusion(GenerateConfig),
    Baseline(BaselineConfig),
}

impl GenerateArgs {
    pub fn into_job(self) -> Result<GenerateJob> {
        let shard = parse_shard(self.shard.as_deref())?;
        let method = match self.method {
            MethodArg::Diffusion => {
                let config = GenerateConfig {
                    shard,
                    ..self.into_diffusion()?
                };
                return Ok(GenerateJob::Diffusion(config));
            }
            MethodArg::Gaussian => Method::Gaussian,
            MethodArg::Bootstrap => Method::Bootstrap,
            MethodArg::Fhs => Method::Fhs,
            MethodArg::FilteredHs => Method::FilteredHs,
        };
        let as_of = self.as_of.into_as_of()?;
        let (regime, out_name) = match (self.regime, &as_of) {
            (Some(regime), Some(_)) => {
                return Err(Error::option(
                    "--regime",
                    regime,
                    format!(
                        "does not apply to {} as of a date, which starts from the close's own \
                         volatilities",
                        method.name()
                    ),
                ))
            }
            (Some(regime), None) => (regime.clone(), regime),
            (None, Some(a)) => (String::new(), format!("as-of-{}", a.date_text())),
            (None, None) => return Err(Error::option("--regime", "", "is needed by a baseline")),
        };
        let out = self
            .out
            .unwrap_or_else(|| default_scenario_file(&out_name, Some(method.name())));
        Ok(GenerateJob::Baseline(BaselineConfig {
            method,
            data: self.data,
            regime,
            n: self.n,
            seed: self.sampling.seed,
            test_from: parse_date("--test-from", &self.test_from)?,
            block_length: self.block_length,
            out,
            shard,
            as_of,
            lookback: self.lookback,
            ewma_lambda: self.ewma_lambda,
        }))
    }

    fn into_diffusion(self) -> Result<GenerateConfig> {
        let as_of = self.as_of.into_as_of()?;
        let name = match (&self.regime, &as_of) {
            (Some(regime), _) => regime.clone(),
            (None, Some(a)) => format!("as-of-{}", a.date_text()),
            (None, None) => return Err(Error::option("--regime", "", "is needed without --as-of")),
        };
        let out = self
            .out
            .unwrap_or_else(|| default_scenario_file(&name, None));
        let device = select_device(&self.device)?;
        Ok(GenerateConfig {
            model: self.model,
            regime: self.regime,
            as_of,
            start_days: match self.starts {
                StartsArg::Fitted => None,
                StartsArg::TrainDays => Some(self.data),
            },
            n: self.n,
            sampler: self.sampling.kind(),
            guidance: self.sampling.guidance,
            seed: self.sampling.seed,
            out,
            batch_size: self.batch_size.unwrap_or(default_batch_size(&device)),
            device,
            engine: self.sampling.engine.into(),
            progress: true,
            shard: Shard::default(),
        })
    }
}

/// `--shard I/N`, checked by the library once parsed; none is the whole run.
fn parse_shard(text: Option<&str>) -> Result<Shard> {
    let Some(text) = text else {
        return Ok(Shard::default());
    };
    let parsed = text
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    let Some((index, count)) = parsed else {
        return Err(Error::option(
            "--shard",
            text,
            "expected I/N, two whole numbers such as 3/8",
        ));
    };
    let shard = Shard { index, count };
    shard.check()?;
    Ok(shard)
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model directory written by `scengen train`.
    #[arg(long, default_value_os_t = BenchConfig::default().model)]
    pub model: PathBuf,
    /// Regime label.
    #[arg(long, default_value_t = BenchConfig::default().regime)]
    pub regime: String,
    /// Paths per run (the report also scales the median to 10,000 paths).
    #[arg(long, default_value_t = BenchConfig::default().n)]
    pub n: usize,
    /// Paths per network batch [default: 1,000 on the CPU, 5,000 on CUDA].
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = BenchConfig::default().runs)]
    pub runs: usize,
    /// cpu, cuda or auto.
    #[arg(long, default_value_t = device_name(&BenchConfig::default().device))]
    pub device: String,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl BenchArgs {
    pub fn into_config(self) -> Result<(BenchConfig, Option<PathBuf>)> {
        let device = select_device(&self.device)?;
        Ok((
            BenchConfig {
                model: self.model,
                regime: self.regime,
                n: self.n,
                batch_size: self.batch_size.unwrap_or(default_batch_size(&device)),
                sampler: self.sampling.kind(),
                guidance: self.sampling.guidance,
                engine: self.sampling.engine.into(),
                runs: self.runs,
                seed: self.sampling.seed,
                device,
            },
            self.out,
        ))
    }
}
