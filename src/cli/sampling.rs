//! The sampler flags that `generate`, `bench` and `distill` share, and the network engine.

use clap::ValueEnum;

use scengen::diffusion::{SamplerKind, Spacing};
use scengen::generate::{GenerateConfig, DEFAULT_SAMPLER};
use scengen::model::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SamplerArg {
    Ddpm,
    Ddim,
    #[value(name = "dpm-solver++")]
    DpmSolver,
    #[value(name = "sde-dpm-solver++")]
    SdeDpmSolver,
    /// DPM-Solver++(2M), its last --stochastic-last steps in the SDE form.
    #[value(name = "hybrid-dpm-solver++")]
    HybridDpmSolver,
    /// Heun's method on the straight path of flow matching (--steps evaluations).
    Heun,
    /// DDPM's posterior step at an x_0 drawn from the model's prior around its estimate
    /// (models with a fitted prior).
    #[value(name = "posterior-draw")]
    PosteriorDraw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpacingArg {
    Uniform,
    Quadratic,
    Logsnr,
    /// Evenly in log-SNR over [-4, 3], then to the least noisy level.
    LogsnrBand,
}

impl From<Spacing> for SpacingArg {
    fn from(spacing: Spacing) -> Self {
        match spacing {
            Spacing::Uniform => SpacingArg::Uniform,
            Spacing::Quadratic => SpacingArg::Quadratic,
            Spacing::LogSnr => SpacingArg::Logsnr,
            Spacing::LogSnrBand => SpacingArg::LogsnrBand,
        }
    }
}

impl From<SpacingArg> for Spacing {
    fn from(arg: SpacingArg) -> Self {
        match arg {
            SpacingArg::Uniform => Spacing::Uniform,
            SpacingArg::Quadratic => Spacing::Quadratic,
            SpacingArg::Logsnr => Spacing::LogSnr,
            SpacingArg::LogsnrBand => Spacing::LogSnrBand,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The fast path on the CPU, candle elsewhere.
    Auto,
    Fast,
    Candle,
}

impl From<Engine> for EngineArg {
    fn from(engine: Engine) -> Self {
        match engine {
            Engine::Auto => EngineArg::Auto,
            Engine::Fast => EngineArg::Fast,
            Engine::Candle => EngineArg::Candle,
        }
    }
}

impl From<EngineArg> for Engine {
    fn from(arg: EngineArg) -> Self {
        match arg {
            EngineArg::Auto => Engine::Auto,
            EngineArg::Fast => Engine::Fast,
            EngineArg::Candle => Engine::Candle,
        }
    }
}

/// The library's default sampler's settings, which the sampler options start from.
fn default_sampler() -> (SamplerArg, usize, SpacingArg, f64) {
    match DEFAULT_SAMPLER {
        SamplerKind::Ddpm => (SamplerArg::Ddpm, 1000, SpacingArg::Uniform, 1.0),
        SamplerKind::Ddim {
            steps,
            eta,
            spacing,
        } => (SamplerArg::Ddim, steps, spacing.into(), eta),
        SamplerKind::DpmSolver { steps, spacing } => {
            (SamplerArg::DpmSolver, steps, spacing.into(), 0.0)
        }
        SamplerKind::SdeDpmSolver { steps, spacing } => {
            (SamplerArg::SdeDpmSolver, steps, spacing.into(), 0.0)
        }
        SamplerKind::HybridDpmSolver { steps, spacing, .. } => {
            (SamplerArg::HybridDpmSolver, steps, spacing.into(), 0.0)
        }
        SamplerKind::Heun { steps, spacing } => (SamplerArg::Heun, steps, spacing.into(), 0.0),
        SamplerKind::PosteriorDraw { steps, spacing } => {
            (SamplerArg::PosteriorDraw, steps, spacing.into(), 0.0)
        }
    }
}

/// The SDE steps of `hybrid-dpm-solver++` unless `--stochastic-last` says otherwise.
pub(crate) const DEFAULT_STOCHASTIC_LAST: usize = 3;

/// The sampler flags: none given, the model's own sampler (`generate::model_sampler`); any
/// given, the others from the default sampler's.
#[derive(Debug, clap::Args)]
pub struct SamplerArgs {
    /// Sampler [default: the model's own: the one a distilled model was distilled for, else
    /// SDE-DPM-Solver++(2M), 100 steps, log-SNR spacing; see docs/commands.md].
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerArg>,
    /// Network evaluations per path (DDIM, DPM-Solver++ and its SDE form, Heun, posterior-draw),
    /// doubled by guidance [default: 100].
    #[arg(long)]
    pub steps: Option<usize>,
    /// How the steps are spread over the noise levels [default: logsnr].
    #[arg(long, value_enum)]
    pub spacing: Option<SpacingArg>,
    /// DDIM stochasticity (0 = deterministic) [default: 0].
    #[arg(long)]
    pub eta: Option<f64>,
    /// The steps of hybrid-dpm-solver++ taken in the SDE form, the last ones [default: 3].
    #[arg(long)]
    pub stochastic_last: Option<usize>,
}

impl SamplerArgs {
    /// The sampler asked for; `None` for the model's own.
    pub fn kind(&self) -> Option<SamplerKind> {
        if self.sampler.is_none()
            && self.steps.is_none()
            && self.spacing.is_none()
            && self.eta.is_none()
            && self.stochastic_last.is_none()
        {
            return None;
        }
        let (sampler, steps, spacing, eta) = default_sampler();
        Some(sampler_kind(
            self.sampler.unwrap_or(sampler),
            self.steps.unwrap_or(steps),
            self.spacing.unwrap_or(spacing),
            self.eta.unwrap_or(eta),
            self.stochastic_last.unwrap_or(DEFAULT_STOCHASTIC_LAST),
        ))
    }
}

/// Sampling settings shared by `generate` and `bench`: the sampler, guidance, seed and engine.
#[derive(Debug, clap::Args)]
pub struct SamplingArgs {
    #[command(flatten)]
    pub sampler: SamplerArgs,
    /// Classifier-free guidance weight (1 = plain conditional; default: 1 for a model with a
    /// Gaussian prior, 1.5 otherwise).
    #[arg(long)]
    pub guidance: Option<f64>,
    /// Seed of the paths: path p draws from stream p of it.
    #[arg(long, default_value_t = GenerateConfig::default().seed)]
    pub seed: u64,
    /// Network implementation for inference.
    #[arg(long, value_enum, default_value_t = GenerateConfig::default().engine.into())]
    pub engine: EngineArg,
}

impl SamplingArgs {
    /// The sampler asked for; `None` for the model's own.
    pub fn kind(&self) -> Option<SamplerKind> {
        self.sampler.kind()
    }
}

/// The sampler the flags name.
pub(crate) fn sampler_kind(
    sampler: SamplerArg,
    steps: usize,
    spacing: SpacingArg,
    eta: f64,
    stochastic_last: usize,
) -> SamplerKind {
    let spacing = spacing.into();
    match sampler {
        SamplerArg::Ddpm => SamplerKind::Ddpm,
        SamplerArg::Ddim => SamplerKind::Ddim {
            steps,
            eta,
            spacing,
        },
        SamplerArg::DpmSolver => SamplerKind::DpmSolver { steps, spacing },
        SamplerArg::SdeDpmSolver => SamplerKind::SdeDpmSolver { steps, spacing },
        SamplerArg::HybridDpmSolver => SamplerKind::HybridDpmSolver {
            steps,
            stochastic_last,
            spacing,
        },
        SamplerArg::Heun => SamplerKind::Heun { steps, spacing },
        SamplerArg::PosteriorDraw => SamplerKind::PosteriorDraw { steps, spacing },
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
    fn the_option_defaults_are_the_model_s_own_sampler_then_the_library_default() {
        let parsed = Sampling::parse_from(["scengen"]);
        assert_eq!(parsed.args.kind(), None);
        assert_eq!(parsed.args.guidance, None);
        let parsed = Sampling::parse_from(["scengen", "--steps", "100"]);
        assert_eq!(parsed.args.kind(), Some(scengen::generate::DEFAULT_SAMPLER));
    }
}
