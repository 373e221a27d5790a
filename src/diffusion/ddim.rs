//! DDIM (Song et al. 2021): the deterministic (η = 0) or partly stochastic reverse step over a
//! [`StepGrid`]; η = 1 with every schedule index is DDPM's ancestral sampler.

use candle_core::{Result, Tensor};

use super::sampler::{predict_x0, Sampler, StepGrid};

/// DDIM with stochasticity η over a [`StepGrid`].
pub struct Ddim {
    grid: StepGrid,
    eta: f64,
    clip: Option<f64>,
}

impl Ddim {
    pub fn new(grid: StepGrid, eta: f64, clip: Option<f64>) -> Self {
        Self { grid, eta, clip }
    }
}

impl Sampler for Ddim {
    fn timesteps(&self) -> &[usize] {
        &self.grid.timesteps
    }

    fn needs_noise(&self, i: usize) -> bool {
        self.eta > 0.0 && self.grid.alpha_bars[i + 1] < 1.0
    }

    fn step(
        &mut self,
        i: usize,
        x: &Tensor,
        eps: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (ab, ab_prev) = (self.grid.alpha_bars[i], self.grid.alpha_bars[i + 1]);
        let x0 = predict_x0(x, eps, ab, self.clip)?;
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
