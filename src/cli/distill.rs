//! The flags of `scengen distill`.

use std::path::PathBuf;

use scengen::device::{device_name, select_device};
use scengen::diffusion::SamplerKind;
use scengen::distill::{DistillConfig, DISTILLED_SAMPLER};
use scengen::error::Result;

use super::sampling::{sampler_kind, SamplerArg, SpacingArg, DEFAULT_STOCHASTIC_LAST};

/// The distilled sampler's settings, which its flags start from.
fn student_sampler() -> (SamplerArg, usize, SpacingArg) {
    match DISTILLED_SAMPLER {
        SamplerKind::DpmSolver { steps, spacing } => (SamplerArg::DpmSolver, steps, spacing.into()),
        other => unreachable!("the distilled sampler is DPM-Solver++, not {other:?}"),
    }
}

/// Options of `scengen distill`.
#[derive(Debug, clap::Args)]
pub struct DistillArgs {
    /// The trained model folder to distil.
    #[arg(long, default_value_os_t = DistillConfig::default().teacher)]
    pub teacher: PathBuf,
    /// Model folder to write.
    #[arg(long, default_value_os_t = DistillConfig::default().out)]
    pub out: PathBuf,
    /// The few-step sampler the weights are trained for (the distilled model's default).
    #[arg(long, value_enum, default_value_t = student_sampler().0)]
    pub sampler: SamplerArg,
    /// Its network evaluations per path.
    #[arg(long, default_value_t = student_sampler().1)]
    pub steps: usize,
    /// How its steps are spread over the noise levels.
    #[arg(long, value_enum, default_value_t = student_sampler().2)]
    pub spacing: SpacingArg,
    /// With hybrid-dpm-solver++: its last steps taken in the SDE form.
    #[arg(long, default_value_t = DEFAULT_STOCHASTIC_LAST)]
    pub stochastic_last: usize,
    /// Teacher paths per regime, drawn with the default sampler (a fifth held out).
    #[arg(long, default_value_t = DistillConfig::default().teacher_paths)]
    pub teacher_paths: usize,
    /// Optimiser steps.
    #[arg(long, default_value_t = DistillConfig::default().iterations)]
    pub iterations: usize,
    /// Student paths per optimiser step.
    #[arg(long, default_value_t = DistillConfig::default().batch_size)]
    pub batch_size: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = DistillConfig::default().learning_rate)]
    pub lr: f64,
    /// Seed of the teacher's paths and of the student's draws.
    #[arg(long, default_value_t = DistillConfig::default().seed)]
    pub seed: u64,
    /// cpu, cuda or auto.
    #[arg(long, default_value_t = device_name(&DistillConfig::default().device))]
    pub device: String,
}

impl DistillArgs {
    pub fn into_config(self) -> Result<DistillConfig> {
        Ok(DistillConfig {
            teacher: self.teacher,
            out: self.out,
            sampler: sampler_kind(
                self.sampler,
                self.steps,
                self.spacing,
                0.0,
                self.stochastic_last,
            ),
            teacher_paths: self.teacher_paths,
            iterations: self.iterations,
            batch_size: self.batch_size,
            learning_rate: self.lr,
            seed: self.seed,
            device: select_device(&self.device)?,
            progress: true,
            ..DistillConfig::default()
        })
    }
}
