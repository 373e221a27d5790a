//! Diffusion, apart from any network: noise schedules (the straight path of flow matching
//! among them), forward noising, the training objectives' weights, and the reverse-process
//! samplers (DDPM and DDIM, DPM-Solver++ in its ODE and SDE forms, Heun on the straight path),
//! one per file, behind the [`Sampler`] trait. Nothing here knows the model; the generation pipeline owns the loop.

mod ddim;
mod dpm_solver;
mod heun;
mod kind;
mod objective;
mod sampler;
mod schedule;

pub use ddim::Ddim;
pub use dpm_solver::DpmSolver;
pub use heun::Heun;
pub use kind::SamplerKind;
pub use objective::Objective;
pub use sampler::{Sampler, Spacing, StepGrid, LOG_SNR_BAND};
pub use schedule::{rectified_time, NoiseSchedule, ScheduleKind};

use candle_core::{Result, Tensor};

/// q(x_t | x_0): √ᾱ_t x_0 + √(1 − ᾱ_t) ε, with per-sample schedule indices `t`.
pub fn add_noise(
    schedule: &NoiseSchedule,
    x0: &Tensor,
    eps: &Tensor,
    t: &[usize],
) -> Result<Tensor> {
    let device = x0.device();
    let b = t.len();
    let sa: Vec<f32> = t
        .iter()
        .map(|&i| schedule.alpha_bars[i].sqrt() as f32)
        .collect();
    let sb: Vec<f32> = t
        .iter()
        .map(|&i| (1.0 - schedule.alpha_bars[i]).sqrt() as f32)
        .collect();
    let sa = Tensor::from_vec(sa, (b, 1, 1), device)?;
    let sb = Tensor::from_vec(sb, (b, 1, 1), device)?;
    x0.broadcast_mul(&sa)? + eps.broadcast_mul(&sb)?
}
