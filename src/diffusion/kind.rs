//! The user's choice of sampler and its settings, as stored in a scenario file's metadata, and
//! the [`Sampler`] it builds.

use serde::{Deserialize, Serialize};

use super::ddim::Ddim;
use super::dpm_solver::DpmSolver;
use super::heun::Heun;
use super::sampler::{Sampler, Spacing, StepGrid};
use super::schedule::NoiseSchedule;

/// Which sampler and its settings, as recorded in scenario metadata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sampler", rename_all = "lowercase")]
pub enum SamplerKind {
    /// Ancestral sampling over all T steps (Ho et al. 2020).
    Ddpm,
    /// DDIM (Song et al. 2021) with `steps` network evaluations; `eta` = 0 is deterministic,
    /// `eta` = 1 is ancestral.
    Ddim {
        steps: usize,
        eta: f64,
        #[serde(default)]
        spacing: Spacing,
    },
    /// DPM-Solver++(2M) (Lu et al. 2022): second-order multistep in the data prediction.
    #[serde(rename = "dpm-solver++")]
    DpmSolver {
        steps: usize,
        #[serde(default)]
        spacing: Spacing,
    },
    /// SDE-DPM-Solver++(2M) (Lu et al. 2022): the same multistep on the reverse SDE instead of
    /// the probability-flow ODE, adding fresh noise at every step as DDPM does.
    #[serde(rename = "sde-dpm-solver++")]
    SdeDpmSolver {
        steps: usize,
        #[serde(default)]
        spacing: Spacing,
    },
    /// DPM-Solver++(2M) in its ODE form but for the last `stochastic_last` of its `steps`,
    /// which take the SDE form.
    #[serde(rename = "hybrid-dpm-solver++")]
    HybridDpmSolver {
        steps: usize,
        stochastic_last: usize,
        #[serde(default)]
        spacing: Spacing,
    },
    /// Heun's second-order method on the straight path of flow matching, `steps` network
    /// evaluations (two per step, see [`Heun::new`]).
    Heun {
        steps: usize,
        #[serde(default)]
        spacing: Spacing,
    },
    /// DDPM's posterior step over `steps` levels, at an x_0 drawn around the model's estimate
    /// from the uncertainty of the model's prior instead of at the estimate: the process that
    /// runs the network supplies the draw ([`SamplerKind::draws_x0`]). Only a model with a
    /// fitted prior can run it.
    #[serde(rename = "posterior-draw")]
    PosteriorDraw {
        steps: usize,
        #[serde(default)]
        spacing: Spacing,
    },
}

impl SamplerKind {
    /// The sampler, with predictions of x_0 clipped to ±`clip` (see [`Ddim::with_clip`]).
    pub fn build(&self, schedule: &NoiseSchedule, clip: Option<f64>) -> Box<dyn Sampler> {
        match *self {
            // DDPM's ancestral step with the posterior variance β̃ is DDIM with η = 1 on every
            // timestep: one implementation serves both.
            SamplerKind::Ddpm => Box::new(Ddim::new(StepGrid::every_step(schedule), 1.0, clip)),
            SamplerKind::Ddim {
                steps,
                eta,
                spacing,
            } => Box::new(Ddim::new(
                StepGrid::new(schedule, steps, spacing),
                eta,
                clip,
            )),
            // The ODE form is the hybrid with no stochastic step, the SDE form with all of them.
            SamplerKind::DpmSolver { steps, spacing } => Box::new(DpmSolver::new(
                StepGrid::new(schedule, steps, spacing),
                0,
                clip,
            )),
            SamplerKind::SdeDpmSolver { steps, spacing } => Box::new(DpmSolver::new(
                StepGrid::new(schedule, steps, spacing),
                steps,
                clip,
            )),
            SamplerKind::HybridDpmSolver {
                steps,
                stochastic_last,
                spacing,
            } => Box::new(DpmSolver::new(
                StepGrid::new(schedule, steps, spacing),
                stochastic_last,
                clip,
            )),
            SamplerKind::Heun { steps, spacing } => {
                Box::new(Heun::new(schedule, steps, spacing, clip))
            }
            // The posterior step itself is DDIM's with η = 1; what differs is its x_0.
            SamplerKind::PosteriorDraw { steps, spacing } => Box::new(Ddim::new(
                StepGrid::new(schedule, steps, spacing),
                1.0,
                clip,
            )),
        }
    }

    /// Whether each stochastic step is to be taken at a draw of x_0 rather than at its estimate.
    pub fn draws_x0(&self) -> bool {
        matches!(self, SamplerKind::PosteriorDraw { .. })
    }

    /// Checks the settings against a schedule of `schedule_len` steps, naming the option at
    /// fault. A grid has at most `schedule_len − 1` evaluations (see [`StepGrid::new`]); more
    /// would silently run fewer than asked and record the wrong count in the output.
    pub fn validate(&self, schedule_len: usize) -> crate::error::Result<()> {
        use crate::error::Error;
        let most = schedule_len.saturating_sub(1).max(1);
        match *self {
            SamplerKind::Ddim { steps: 0, .. }
            | SamplerKind::DpmSolver { steps: 0, .. }
            | SamplerKind::SdeDpmSolver { steps: 0, .. }
            | SamplerKind::HybridDpmSolver { steps: 0, .. }
            | SamplerKind::Heun { steps: 0, .. }
            | SamplerKind::PosteriorDraw { steps: 0, .. } => {
                Err(Error::option("steps", 0, "must be at least 1"))
            }
            SamplerKind::Ddim { steps, .. }
            | SamplerKind::DpmSolver { steps, .. }
            | SamplerKind::SdeDpmSolver { steps, .. }
            | SamplerKind::HybridDpmSolver { steps, .. }
            | SamplerKind::Heun { steps, .. }
            | SamplerKind::PosteriorDraw { steps, .. }
                if steps > most =>
            {
                Err(Error::option(
                    "steps",
                    steps,
                    format!("must be at most {most}: the model has {schedule_len} diffusion steps"),
                ))
            }
            SamplerKind::Ddim { eta, .. } if !(0.0..=1.0).contains(&eta) => {
                Err(Error::option("eta", eta, "must lie in [0, 1]"))
            }
            _ => Ok(()),
        }
    }

    /// Network evaluations per path without guidance.
    pub fn steps(&self, schedule_len: usize) -> usize {
        match *self {
            SamplerKind::Ddpm => schedule_len,
            SamplerKind::Ddim { steps, .. }
            | SamplerKind::DpmSolver { steps, .. }
            | SamplerKind::SdeDpmSolver { steps, .. }
            | SamplerKind::HybridDpmSolver { steps, .. }
            | SamplerKind::Heun { steps, .. }
            | SamplerKind::PosteriorDraw { steps, .. } => steps,
        }
    }
}
