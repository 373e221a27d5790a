//! Options of `scengen train` and `scengen generate`.

use std::path::PathBuf;

use clap::{ArgAction, ValueEnum};

use crate::baselines::{BaselineConfig, Method};
use crate::device::select_device;
use crate::diffusion::{SamplerKind, ScheduleKind, Spacing};
use crate::error::Result;
use crate::io::parse_date;
use crate::model::Engine;
use crate::sample::{default_batch_size, GenerateConfig};
use crate::train::{
    TrainConfig, DEFAULT_LINEAR_PATH, DEFAULT_VOLATILITY_LEVELS, DEFAULT_VOLATILITY_SHOCKS,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    Linear,
    Cosine,
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SamplerArg {
    Ddpm,
    Ddim,
    #[value(name = "dpm-solver++")]
    DpmSolver,
    #[value(name = "sde-dpm-solver++")]
    SdeDpmSolver,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SpacingArg {
    Uniform,
    Quadratic,
    Logsnr,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EngineArg {
    /// The fast path on the CPU, candle elsewhere.
    Auto,
    Fast,
    Candle,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Windows file written by `scengen ingest`.
    #[arg(long, default_value = "data/windows.parquet")]
    pub data: PathBuf,
    /// Model directory to write.
    #[arg(long, default_value = "models/default")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Windows that end on or after this date are never seen in training.
    #[arg(long, default_value = "2016-01-01")]
    pub test_from: String,
    /// Maximum epochs (early stopping may end sooner).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 8)]
    pub patience: usize,
    /// Probability of dropping the regime label (for classifier-free guidance).
    #[arg(long, default_value_t = 0.15)]
    pub regime_dropout: f64,
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: ScheduleArg,
    /// Channels of the first U-Net level.
    #[arg(long)]
    pub channels: Option<usize>,
    /// Give the network the noisy window's amplitude as an input (`false` to leave it out).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
          default_missing_value = "true", value_name = "BOOL")]
    pub amplitude_input: bool,
    /// Rank of the cross-asset linear path (0: none).
    #[arg(long, default_value_t = DEFAULT_LINEAR_PATH)]
    pub linear_path: usize,
    /// Latent factors of a diffusion factor model: the U-Net's correction acts through a learned
    /// assets-to-factors encoder and decoder (0: on the assets directly).
    #[arg(long, default_value_t = 0)]
    pub factors: usize,
    /// Predict the noise as each regime's Gaussian part plus the network's correction
    /// (`false`: the network alone).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true,
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
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl TrainArgs {
    pub fn into_config(self) -> Result<TrainConfig> {
        let mut c = TrainConfig::new(
            self.data,
            self.out,
            self.seed,
            parse_date("--test-from", &self.test_from)?,
        );
        c.epochs = self.epochs;
        c.batch_size = self.batch_size;
        c.learning_rate = self.lr;
        c.patience = self.patience;
        c.regime_dropout = self.regime_dropout;
        c.schedule = match self.schedule {
            ScheduleArg::Linear => ScheduleKind::Linear,
            ScheduleArg::Cosine => ScheduleKind::Cosine,
        };
        c.base_channels = self.channels;
        c.amplitude_input = self.amplitude_input;
        c.linear_path = self.linear_path;
        c.factors = self.factors;
        c.gaussian_prior = self.gaussian_prior;
        // Without the prior there are no states, so the defaults follow it.
        let states = |given: Option<usize>, default: usize| {
            given.unwrap_or(if self.gaussian_prior { default } else { 1 })
        };
        c.volatility_levels = states(self.volatility_levels, DEFAULT_VOLATILITY_LEVELS);
        c.volatility_shocks = states(self.volatility_shocks, DEFAULT_VOLATILITY_SHOCKS);
        c.device = select_device(&self.device)?;
        c.progress = true;
        c.validate()?;
        Ok(c)
    }
}

/// Sampler settings shared by `generate` and `bench`.
#[derive(Debug, clap::Args)]
pub struct SamplingArgs {
    /// Sampler (default: SDE-DPM-Solver++(2M), 100 steps, log-SNR spacing; see README).
    #[arg(long, value_enum, default_value = "sde-dpm-solver++")]
    pub sampler: SamplerArg,
    /// Network evaluations per path (DDIM, DPM-Solver++ and its SDE form), doubled by
    /// guidance.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// How the steps are spread over the noise levels.
    #[arg(long, value_enum, default_value = "logsnr")]
    pub spacing: SpacingArg,
    /// DDIM stochasticity (0 = deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    /// Classifier-free guidance weight (1 = plain conditional; default: 1 for a model with a
    /// Gaussian prior, 1.5 otherwise).
    #[arg(long)]
    pub guidance: Option<f64>,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Network implementation for inference.
    #[arg(long, value_enum, default_value = "auto")]
    pub engine: EngineArg,
}

impl SamplingArgs {
    pub fn kind(&self) -> SamplerKind {
        let spacing = match self.spacing {
            SpacingArg::Uniform => Spacing::Uniform,
            SpacingArg::Quadratic => Spacing::Quadratic,
            SpacingArg::Logsnr => Spacing::LogSnr,
        };
        match self.sampler {
            SamplerArg::Ddpm => SamplerKind::Ddpm,
            SamplerArg::Ddim => SamplerKind::Ddim {
                steps: self.steps,
                eta: self.eta,
                spacing,
            },
            SamplerArg::DpmSolver => SamplerKind::DpmSolver {
                steps: self.steps,
                spacing,
            },
            SamplerArg::SdeDpmSolver => SamplerKind::SdeDpmSolver {
                steps: self.steps,
                spacing,
            },
        }
    }

    pub fn engine(&self) -> Engine {
        match self.engine {
            EngineArg::Auto => Engine::Auto,
            EngineArg::Fast => Engine::Fast,
            EngineArg::Candle => Engine::Candle,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Generator: the diffusion model or a classical baseline.
    #[arg(long, value_enum, default_value = "diffusion")]
    pub method: MethodArg,
    /// Windows file the baselines fit on (train split only).
    #[arg(long, default_value = "data/windows.parquet")]
    pub data: PathBuf,
    /// Baselines: days from this date on are never used.
    #[arg(long, default_value = "2016-01-01")]
    pub test_from: String,
    /// Bootstrap: mean block length (default: Politis–White).
    #[arg(long)]
    pub block_length: Option<f64>,
    /// Model directory written by `scengen train`.
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    /// Regime label, e.g. high-vix.
    #[arg(long)]
    pub regime: String,
    /// Number of paths.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Output scenario file (default scenarios/<regime>.parquet).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Paths per network batch (default 1,000 on the CPU, 5,000 on CUDA).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// What `generate` will run.
pub enum GenerateJob {
    Diffusion(GenerateConfig),
    Baseline(BaselineConfig),
}

impl GenerateArgs {
    pub fn into_job(self) -> Result<GenerateJob> {
        let method = match self.method {
            MethodArg::Diffusion => return Ok(GenerateJob::Diffusion(self.into_diffusion()?)),
            MethodArg::Gaussian => Method::Gaussian,
            MethodArg::Bootstrap => Method::Bootstrap,
            MethodArg::Fhs => Method::Fhs,
        };
        let out = self.out.unwrap_or_else(|| {
            PathBuf::from(format!(
                "scenarios/{}-{}.parquet",
                self.regime,
                method.name()
            ))
        });
        Ok(GenerateJob::Baseline(BaselineConfig {
            method,
            data: self.data,
            regime: self.regime,
            n: self.n,
            seed: self.sampling.seed,
            test_from: parse_date("--test-from", &self.test_from)?,
            block_length: self.block_length,
            out,
        }))
    }

    fn into_diffusion(self) -> Result<GenerateConfig> {
        let out = self
            .out
            .unwrap_or_else(|| PathBuf::from(format!("scenarios/{}.parquet", self.regime)));
        let device = select_device(&self.device)?;
        Ok(GenerateConfig {
            model: self.model,
            regime: self.regime,
            n: self.n,
            sampler: self.sampling.kind(),
            guidance: self.sampling.guidance,
            seed: self.sampling.seed,
            out,
            batch_size: self.batch_size.unwrap_or(default_batch_size(&device)),
            device,
            engine: self.sampling.engine(),
            progress: true,
        })
    }
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "models/default")]
    pub model: PathBuf,
    #[arg(long, default_value = "high-vix")]
    pub regime: String,
    /// Paths per run (the report also scales the median to 10,000 paths).
    #[arg(long, default_value_t = 2_000)]
    pub n: usize,
    /// Paths per network batch (default 1,000 on the CPU, 5,000 on CUDA).
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also write the JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl BenchArgs {
    pub fn into_config(self) -> Result<(crate::sample::BenchConfig, Option<PathBuf>)> {
        let device = select_device(&self.device)?;
        Ok((
            crate::sample::BenchConfig {
                model: self.model,
                regime: self.regime,
                n: self.n,
                batch_size: self.batch_size.unwrap_or(default_batch_size(&device)),
                sampler: self.sampling.kind(),
                guidance: self.sampling.guidance,
                engine: self.sampling.engine(),
                runs: self.runs,
                seed: self.sampling.seed,
                device,
            },
            self.out,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Sampling {
        #[command(flatten)]
        args: SamplingArgs,
    }

    #[test]
    fn the_option_defaults_are_the_library_default_sampler() {
        let parsed = Sampling::parse_from(["scengen"]);
        assert_eq!(parsed.args.kind(), crate::sample::DEFAULT_SAMPLER);
        assert_eq!(parsed.args.guidance, None);
    }
}
