//! Heun's second-order method (Karras et al. 2022) on the straight path of flow matching: the
//! ODE dy/ds = ε̂ − x̂_0 in y = x_t / (α + σ) and s = σ / (α + σ) (see
//! [`super::rectified_time`]). Its Euler predictor alone is DDIM with η = 0, which is Euler on
//! this ODE in other coordinates; the corrector averages the slopes at both ends of a step.

use candle_core::{Result, Tensor};

use super::sampler::{predict_x0, Sampler, Spacing, StepGrid};
use super::schedule::{rectified_time, NoiseSchedule};

/// One network evaluation of a Heun run: the Euler predictor of step k, at the step's start,
/// or its corrector, at the step's end.
#[derive(Debug, Clone, Copy)]
enum Stage {
    Predict(usize),
    Correct(usize),
}

/// Heun's method with a fixed number of network evaluations over a [`StepGrid`].
pub struct Heun {
    grid: StepGrid,
    stages: Vec<Stage>,
    timesteps: Vec<usize>,
    clip: Option<f64>,
    /// y at the start of the step under way and the slope there, kept from its predictor.
    start: Option<(Tensor, Tensor)>,
}

impl Heun {
    /// `evaluations` network evaluations: ⌈evaluations / 2⌉ steps over the grid of `spacing`,
    /// each with its corrector but the last when `evaluations` is odd (an Euler step, as
    /// Karras et al. end).
    pub fn new(
        schedule: &NoiseSchedule,
        evaluations: usize,
        spacing: Spacing,
        clip: Option<f64>,
    ) -> Self {
        let evaluations = evaluations.max(1);
        let grid = StepGrid::new(schedule, evaluations.div_ceil(2), spacing);
        let steps = grid.timesteps.len();
        let mut stages = Vec::with_capacity(evaluations);
        let mut timesteps = Vec::with_capacity(evaluations);
        for k in 0..steps {
            stages.push(Stage::Predict(k));
            timesteps.push(grid.timesteps[k]);
            if stages.len() < evaluations {
                stages.push(Stage::Correct(k));
                // StepGrid ends every grid on schedule index 0.
                timesteps.push(grid.timesteps.get(k + 1).copied().unwrap_or(0));
            }
        }
        Self {
            grid,
            stages,
            timesteps,
            clip,
            start: None,
        }
    }

    /// y and s at grid level `k`, and the factor α + σ that turns y back into x_t.
    fn level(&self, k: usize) -> (f64, f64) {
        let ab = self.grid.alpha_bars[k];
        (rectified_time(ab), ab.sqrt() + (1.0 - ab).max(0.0).sqrt())
    }

    /// The slope ε̂ − x̂_0 of the straight-path ODE at level `k`.
    fn slope(&self, k: usize, x: &Tensor, eps: &Tensor) -> Result<Tensor> {
        eps - predict_x0(x, eps, self.grid.alpha_bars[k], self.clip)?
    }
}

impl Sampler for Heun {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn needs_noise(&self, _: usize) -> bool {
        false
    }

    fn step(&mut self, i: usize, x: &Tensor, eps: &Tensor, _: Option<&Tensor>) -> Result<Tensor> {
        match self.stages[i] {
            Stage::Predict(k) => {
                let ((s, norm), (s_next, norm_next)) = (self.level(k), self.level(k + 1));
                let y = (x / norm)?;
                let d = self.slope(k, x, eps)?;
                let next = ((&y + (&d * (s_next - s))?)? * norm_next)?;
                self.start = Some((y, d));
                Ok(next)
            }
            Stage::Correct(k) => {
                let ((s, _), (s_next, norm_next)) = (self.level(k), self.level(k + 1));
                let (y, d) = self
                    .start
                    .take()
                    .expect("a corrector follows its predictor");
                let d_end = self.slope(k + 1, x, eps)?;
                let mean_slope = ((d + d_end)? * 0.5)?;
                (y + (mean_slope * (s_next - s))?)? * norm_next
            }
        }
    }
}
