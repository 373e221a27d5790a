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

/// How the evaluation timesteps are spread between T − 1 and 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Evenly in t.
    #[default]
    Uniform,
    /// Evenly in √t: denser near the data (Song et al. 2021).
    Quadratic,
    /// Evenly in λ = log(α / σ), the log signal-to-noise ratio (Lu et al. 2022).
    LogSnr,
    /// Evenly in λ over [`LOG_SNR_BAND`] only, then one step to the least noisy level: no
    /// evaluation where the noise hides the data or is already negligible.
    #[serde(rename = "logsnr-band")]
    LogSnrBand,
}

/// The band of λ = log(α / σ) that [`Spacing::LogSnrBand`] evaluates in. The windows are
/// standardised per asset: at λ = −4 a day of unit scale is 55 times below the noise, and
/// the prediction of x_0 there is nearly the prior's mean; at λ = 3 the noise is a twentieth of
/// it. With 10 evaluations the full log-SNR grid spends four of them below −4; over the band
/// the generated volatility and correlation come closer to the 100-step sets' on both the
/// S&P-20 and the 49 industries (docs/samplers.md).
pub const LOG_SNR_BAND: (f64, f64) = (-4.0, 3.0);

/// The noise levels a sampler visits: it evaluates the network at `timesteps[i]` and moves x to
/// the level `alpha_bars[i + 1]`; `alpha_bars` has one entry more than `timesteps`, the level
/// it ends on.
#[derive(Debug, Clone, PartialEq)]
pub struct StepGrid {
    pub timesteps: Vec<usize>,
    pub alpha_bars: Vec<f64>,
}

impl StepGrid {
    /// `evaluations` + 1 points from T − 1 (the band's noisiest level for
    /// [`Spacing::LogSnrBand`]) down to 0 by `spacing`, rounded to distinct schedule indices;
    /// the sample is x at index 0, where √(1 − ᾱ) is below 0.01 for both schedules, so no
    /// evaluation is spent on the last, nearly clean, level.
    pub fn new(schedule: &NoiseSchedule, evaluations: usize, spacing: Spacing) -> Self {
        let t_max = schedule.len() - 1;
        let n = evaluations.clamp(1, t_max.max(1));
        let log_snr = |i: usize| {
            let ab = schedule.alpha_bars[i];
            0.5 * (ab / (1.0 - ab)).ln()
        };
        let (lo, hi) = (log_snr(t_max), log_snr(0));
        // The first index whose λ is at most the target (λ falls with t), or the one before it
        // when that is nearer in λ.
        let index_of = |target: f64| {
            let i = (0..=t_max).position(|i| log_snr(i) <= target + 1e-12);
            let i = i.unwrap_or(t_max);
            if i > 0 && (log_snr(i - 1) - target).abs() < (log_snr(i) - target).abs() {
                i - 1
            } else {
                i
            }
        };
        let (band_lo, band_hi) = (LOG_SNR_BAND.0.max(lo), LOG_SNR_BAND.1.min(hi));
        let mut points: Vec<usize> = (0..=n)
            .map(|k| {
                let f = k as f64 / n as f64;
                match spacing {
                    Spacing::Uniform => (t_max as f64 * (1.0 - f)).round() as usize,
                    Spacing::Quadratic => (t_max as f64 * (1.0 - f).powi(2)).round() as usize,
                    Spacing::LogSnr => index_of(lo + (hi - lo) * f),
                    // n evaluations evenly over the band, then the least noisy level.
                    Spacing::LogSnrBand if k == n => 0,
                    Spacing::LogSnrBand => {
                        let g = k as f64 / (n - 1).max(1) as f64;
                        index_of(band_lo + (band_hi - band_lo) * g)
                    }
                }
            })
            .collect();
        // Rounding can make neighbours collide near t = 0: keep the points strictly decreasing
        // (so every requested evaluation happens) and leave room for the ones still to come.
        for k in 1..=n {
            points[k] = points[k].min(points[k - 1] - 1).max(n - k);
        }
        let alpha_bars = points.iter().map(|&i| schedule.alpha_bars[i]).collect();
        points.pop();
        Self {
            timesteps: points,
            alpha_bars,
        }
    }

    /// Every timestep, ending on the clean data (ᾱ = 1): the ancestral DDPM chain.
    pub fn every_step(schedule: &NoiseSchedule) -> Self {
        let timesteps: Vec<usize> = (0..schedule.len()).rev().collect();
        let alpha_bars = timesteps
            .iter()
            .map(|&i| schedule.alpha_bars[i])
            .chain(std::iter::once(1.0))
            .collect();
        Self {
            timesteps,
            alpha_bars,
        }
    }
}

/// x̂_0 = (x − √(1 − ᾱ) ε) / √ᾱ, clipped to ±`clip`. Near t = T, ᾱ is tiny (2.4e-9 at the
/// cosine schedule's last step) and this multiplies any error in ε by up to 20,000; clipping to
/// the range of the training data keeps such a step from throwing the path out of range, as
/// image models clip to [-1, 1].
pub(super) fn predict_x0(
    x: &Tensor,
    eps: &Tensor,
    alpha_bar: f64,
    clip: Option<f64>,
) -> Result<Tensor> {
    let x0 = ((x - (eps * (1.0 - alpha_bar).sqrt())?)? / alpha_bar.sqrt())?;
    match clip {
        Some(c) => x0.clamp(-c, c),
        None => Ok(x0),
    }
}
