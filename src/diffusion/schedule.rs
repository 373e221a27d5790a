//! Noise schedules: the betas of the forward process and their cumulative products ᾱ.

use serde::{Deserialize, Serialize};

/// Which schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Ho et al. (2020): betas = linspace(1e-4, 0.02, T).
    Linear,
    /// Nichol & Dhariwal (2021): ᾱ follows cos² with offset s = 0.008, betas capped at 0.999.
    Cosine,
    /// The straight path of flow matching (Lipman et al. 2023; rectified flow, Liu et al.
    /// 2023): x_s = (1 − s) x_0 + s ε at s = (i + 1) / (T + 1), written as the variance-preserving
    /// x_t = x_s / ‖(1 − s, s)‖, so ᾱ = (1 − s)² / ((1 − s)² + s²). Every sampler runs on it
    /// unchanged; see [`rectified_time`].
    Rectified,
}

/// Betas and ᾱ at index i, for diffusion step t = i + 1 (the network is given i).
#[derive(Debug, Clone)]
pub struct NoiseSchedule {
    pub betas: Vec<f64>,
    pub alpha_bars: Vec<f64>,
}

impl NoiseSchedule {
    pub fn new(kind: ScheduleKind, steps: usize) -> Self {
        let betas: Vec<f64> = match kind {
            ScheduleKind::Linear => {
                let (lo, hi) = (1e-4, 0.02);
                (0..steps)
                    .map(|i| lo + (hi - lo) * i as f64 / (steps - 1) as f64)
                    .collect()
            }
            ScheduleKind::Cosine => {
                let s = 0.008;
                let f = |t: f64| {
                    (((t / steps as f64) + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                (1..=steps)
                    .map(|t| (1.0 - f(t as f64) / f(t as f64 - 1.0)).min(0.999))
                    .collect()
            }
            ScheduleKind::Rectified => {
                // s stops short of 1 (ᾱ = 1e-6 at T = 1000), so x_0 is still defined at x_T.
                let alpha_bar = |i: usize| {
                    let s = i as f64 / (steps + 1) as f64;
                    (1.0 - s).powi(2) / ((1.0 - s).powi(2) + s * s)
                };
                (1..=steps)
                    .map(|i| 1.0 - alpha_bar(i) / alpha_bar(i - 1))
                    .collect()
            }
        };
        let alpha_bars = betas
            .iter()
            .scan(1.0, |acc, b| {
                *acc *= 1.0 - b;
                Some(*acc)
            })
            .collect();
        Self { betas, alpha_bars }
    }

    /// Number of diffusion steps T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// ᾱ at index `i`, or 1 (no noise) for `None`, the step before the first.
    pub fn alpha_bar(&self, i: Option<usize>) -> f64 {
        i.map_or(1.0, |i| self.alpha_bars[i])
    }
}

/// The time s of the straight path through x_t = √ᾱ x_0 + √(1 − ᾱ) ε, with α = √ᾱ and σ = √(1 − ᾱ):
/// x_t / (α + σ) = (1 − s) x_0 + s ε at s = σ / (α + σ). Any variance-preserving level has one,
/// so the straight-path samplers and the flow-matching loss apply to every schedule.
pub fn rectified_time(alpha_bar: f64) -> f64 {
    let (alpha, sigma) = (alpha_bar.sqrt(), (1.0 - alpha_bar).max(0.0).sqrt());
    sigma / (alpha + sigma)
}
