//! Reverse-process samplers behind one trait, independent of the network: given the predicted
//! noise at the current timestep, take one step towards the data.

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

use super::schedule::NoiseSchedule;

/// One reverse-process integrator.
pub trait Sampler {
    /// Schedule indices visited, noisiest first.
    fn timesteps(&self) -> &[usize];
    /// Whether step `i` (into `timesteps()`) adds fresh Gaussian noise.
    fn needs_noise(&self, i: usize) -> bool;
    /// From x at `timesteps()[i]` and its predicted noise to x at the next timestep (x_0 after
    /// the last); `noise` is given exactly when `needs_noise(i)`.
    fn step(
        &mut self,
        i: usize,
        x: &Tensor,
        eps: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor>;
}

/// Which sampler and its settings, as recorded in scenario metadata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sampler", rename_all = "lowercase")]
pub enum SamplerKind {
    /// Ancestral sampling over all T steps (Ho et al. 2020).
    Ddpm,
    /// DDIM (Song et al. 2021) over `steps` evenly spaced timesteps; `eta` = 0 is
    /// deterministic, `eta` = 1 is ancestral.
    Ddim { steps: usize, eta: f64 },
}

impl SamplerKind {
    /// The sampler, with predictions of x_0 clipped to ±`clip` (see [`Ddim::with_clip`]).
    pub fn build(&self, schedule: &NoiseSchedule, clip: Option<f64>) -> Box<dyn Sampler> {
        let ddim = match *self {
            // DDPM's ancestral step with the posterior variance β̃ is DDIM with η = 1 on every
            // timestep: one implementation serves both.
            SamplerKind::Ddpm => Ddim::new(schedule, schedule.len(), 1.0),
            SamplerKind::Ddim { steps, eta } => Ddim::new(schedule, steps, eta),
        };
        Box::new(ddim.with_clip(clip))
    }

    /// Network evaluations per path without guidance.
    pub fn steps(&self, schedule_len: usize) -> usize {
        match *self {
            SamplerKind::Ddpm => schedule_len,
            SamplerKind::Ddim { steps, .. } => steps,
        }
    }
}

/// DDIM with stochasticity η over a subsequence of the schedule.
pub struct Ddim {
    timesteps: Vec<usize>,
    alpha_bars: Vec<f64>,
    eta: f64,
    clip: Option<f64>,
}

impl Ddim {
    /// `steps` timesteps evenly spaced from T - 1 down to 0 (both included).
    pub fn new(schedule: &NoiseSchedule, steps: usize, eta: f64) -> Self {
        let t_max = schedule.len() - 1;
        let steps = steps.clamp(1, schedule.len());
        let mut timesteps: Vec<usize> = (0..steps)
            .map(|k| {
                if steps == 1 {
                    t_max
                } else {
                    (t_max as f64 * (1.0 - k as f64 / (steps - 1) as f64)).round() as usize
                }
            })
            .collect();
        timesteps.dedup();
        Self {
            timesteps,
            alpha_bars: schedule.alpha_bars.clone(),
            eta,
            clip: None,
        }
    }

    /// Clips each prediction of x_0 to ±`clip`. Near t = T, ᾱ is tiny (2.4e-9 at the cosine
    /// schedule's last step) and x_0 = (x - √(1-ᾱ) ε) / √ᾱ multiplies any error in ε by up to
    /// 20,000; clipping to the range of the training data keeps such a step from throwing the
    /// path out of range, as image models clip to [-1, 1].
    pub fn with_clip(mut self, clip: Option<f64>) -> Self {
        self.clip = clip;
        self
    }

    fn prev(&self, i: usize) -> Option<usize> {
        self.timesteps.get(i + 1).copied()
    }
}

impl Sampler for Ddim {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn needs_noise(&self, i: usize) -> bool {
        self.eta > 0.0 && self.prev(i).is_some()
    }

    fn step(
        &mut self,
        i: usize,
        x: &Tensor,
        eps: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let ab = self.alpha_bars[self.timesteps[i]];
        let ab_prev = self.prev(i).map_or(1.0, |p| self.alpha_bars[p]);
        let mut x0 = ((x - (eps * (1.0 - ab).sqrt())?)? / ab.sqrt())?;
        if let Some(c) = self.clip {
            x0 = x0.clamp(-c, c)?;
        }
        let sigma = self.eta
            * ((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
                .max(0.0)
                .sqrt();
        let dir = (1.0 - ab_prev - sigma * sigma).max(0.0).sqrt();
        let mut next = ((x0 * ab_prev.sqrt())? + (eps * dir)?)?;
        if let Some(z) = noise {
            next = (next + (z * sigma)?)?;
        }
        Ok(next)
    }
}
