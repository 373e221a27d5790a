//! [`PriorPredictor`]: the fitted prior ready to compute ε_G at every sampling step, on the
//! host, for a batch of noisy windows.

use candle_core::{DType, Result, Tensor};

use super::VolatilityChain;
use crate::model::matmul;

/// [`GaussianPrior`] ready to compute ε_G. It runs on the host whatever the device of the
/// windows: per window it is a few 20 x 20 projections and the forward-backward recursion over
/// 30 days, which the recursion needs the host for anyway. As candle CPU ops with a host round
/// trip for the recursion it took a third of the generation time (2.1 of 6.3 s per 2,000
/// paths); here 1.4 s.
#[derive(Clone)]
pub struct PriorPredictor {
    pub(super) assets: usize,
    pub(super) window: usize,
    /// Per class, `assets` values.
    pub(super) means: Vec<f32>,
    /// Per class, U (assets x assets, row-major, eigenvectors in columns) and Uᵀ.
    pub(super) vectors: Vec<f32>,
    pub(super) vectors_t: Vec<f32>,
    /// Per class, the eigenvalues λ.
    pub(super) values: Vec<f32>,
    /// s²_k of each volatility state ([1] with a single Gaussian).
    pub(super) state_variances: Vec<f32>,
    /// Per class, the coordinate of the market direction; per state, m²_k, its extra variance.
    pub(super) market: Vec<usize>,
    pub(super) market_variances: Vec<f32>,
    /// Per class, the states' chain (empty with one state).
    pub(super) chains: Vec<VolatilityChain>,
}

/// One thread's buffers for [`PriorPredictor::eps_run`], and the states' variances at the class
/// and noise level of the last run.
#[derive(Default)]
struct Scratch {
    /// (class, √ᾱ, √(1 − ᾱ)) that `inverse`, `inverse_t` and `log_det` were computed for.
    level: Option<Level>,
    /// (states, assets): 1 / (ᾱ s²_k λ_j + σ²), and its transpose.
    inverse: Vec<f32>,
    inverse_t: Vec<f32>,
    /// (states,): Σ_j log(ᾱ s²_k λ_j + σ²).
    log_det: Vec<f32>,
    /// (rows, assets), a row per day of the run's windows: the centred days, then ε_G.
    days: Vec<f32>,
    /// (rows, assets): the eigen-coordinates y, then gain ⊙ y.
    coords: Vec<f32>,
    /// (rows, assets): y², then the gains.
    work: Vec<f32>,
    /// (rows, states): Σ_j y_j² / (ᾱ s²_k λ_j + σ²), then σ times the posteriors γ.
    per_state: Vec<f32>,
    /// (days, states) of one window: log densities and posteriors for the recursion.
    log_density: Vec<f64>,
    gamma: Vec<f64>,
}

impl PriorPredictor {
    /// ε_G for `x` (batch, assets, padded) at per-sample √ᾱ `signal` and √(1 − ᾱ) `noise`
    /// ((batch, 1, 1) each) and class indices `classes` (batch,); zero on the padding, on the
    /// device of `x`.
    pub fn eps(
        &self,
        x: &Tensor,
        signal: &Tensor,
        noise: &Tensor,
        classes: &Tensor,
    ) -> Result<Tensor> {
        let (b, assets, padded) = x.dims3()?;
        if assets != self.assets || padded < self.window {
            candle_core::bail!(
                "windows of {assets} assets and {padded} days do not fit a prior of {} assets \
                 and {} days",
                self.assets,
                self.window
            );
        }
        let host = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
        let (xs, signal, noise) = (host(x)?, host(signal)?, host(noise)?);
        let classes = classes.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let levels: Vec<Level> = (0..b)
            .map(|w| (classes[w] as usize, signal[w].to_bits(), noise[w].to_bits()))
            .collect();
        let size = assets * padded;
        let mut out = vec![0.0f32; b * size];
        // Windows are independent: split them over the cores, in shares large enough to be
        // worth a thread (a window takes some microseconds).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = b.div_ceil(threads).max(MIN_WINDOWS_PER_THREAD);
        std::thread::scope(|scope| {
            for ((xs, out), levels) in xs
                .chunks(chunk * size)
                .zip(out.chunks_mut(chunk * size))
                .zip(levels.chunks(chunk))
            {
                scope.spawn(move || {
                    let mut scratch = Scratch::default();
                    // Runs of windows at one class and noise level: all of a sampling step's
                    // (two with guidance), one at a time in training.
                    let mut start = 0;
                    while start < levels.len() {
                        let len = levels[start..]
                            .iter()
                            .take_while(|l| **l == levels[start])
                            .count();
                        let span = start * size..(start + len) * size;
                        self.eps_run(
                            &xs[span.clone()],
                            padded,
                            levels[start],
                            &mut scratch,
                            &mut out[span],
                        );
                        start += len;
                    }
                });
            }
        });
        Tensor::from_vec(out, (b, assets, padded), x.device())?.to_dtype(x.dtype())
    }

    /// ε_G of windows `x` (n x assets x padded) that share `level` into `out` (the same shape,
    /// zeros, which the padding keeps). In the eigenbasis of the class's Σ, the coordinate y_j of a day
    /// has variance ᾱ s²_k λ_j + σ² in state k, and the prediction σ y_j / that variance is
    /// mixed over the states by their posterior given the whole window. The days of all the
    /// windows are stacked as rows, so that each product is one matrix product.
    fn eps_run(&self, x: &[f32], padded: usize, level: Level, s: &mut Scratch, out: &mut [f32]) {
        let (a, days, states) = (self.assets, self.window, self.state_variances.len());
        let (class, signal, noise) = (level.0, f32::from_bits(level.1), f32::from_bits(level.2));
        let windows = x.len() / (a * padded);
        let rows = windows * days;
        let mean = &self.means[class * a..(class + 1) * a];
        if s.level != Some(level) {
            s.level = Some(level);
            let lambda = &self.values[class * a..(class + 1) * a];
            let (signal2, noise2) = (signal * signal, noise * noise);
            let market = self.market[class];
            s.inverse.clear();
            s.log_det.clear();
            for (v, m) in self.state_variances.iter().zip(&self.market_variances) {
                let mut log_det = 0.0f32;
                s.inverse.extend(lambda.iter().enumerate().map(|(j, l)| {
                    let shock = if j == market { v * m } else { *v };
                    let variance = signal2 * shock * l + noise2;
                    log_det += variance.ln();
                    1.0 / variance
                }));
                s.log_det.push(log_det);
            }
            s.inverse_t.clear();
            s.inverse_t
                .extend((0..a * states).map(|k| s.inverse[(k % states) * a + k / states]));
        }
        s.days.clear();
        for window in x.chunks_exact(a * padded) {
            for d in 0..days {
                s.days
                    .extend((0..a).map(|i| window[i * padded + d] - signal * mean[i]));
            }
        }
        // y = Uᵀ c for every day: the rows times U.
        let u = &self.vectors[class * a * a..(class + 1) * a * a];
        matmul(&s.days, u, (rows, a, a), &mut s.coords, 1);
        if states == 1 || self.chains.is_empty() {
            s.work.clear();
            for _ in 0..rows {
                s.work.extend(s.inverse[..a].iter().map(|i| noise * i));
            }
        } else {
            // log N(y; 0, diag(variance_k)) per day and state, up to a constant.
            s.work.clear();
            s.work.extend(s.coords.iter().map(|y| y * y));
            matmul(
                &s.work,
                &s.inverse_t,
                (rows, a, states),
                &mut s.per_state,
                1,
            );
            s.gamma.resize(days * states, 0.0);
            for quadratic in s.per_state.chunks_exact_mut(days * states) {
                s.log_density.resize(days * states, 0.0);
                for (log_density, q) in s
                    .log_density
                    .chunks_exact_mut(states)
                    .zip(quadratic.chunks_exact(states))
                {
                    for ((out, q), l) in log_density.iter_mut().zip(q).zip(&s.log_det) {
                        *out = -0.5 * f64::from(q + l);
                    }
                }
                self.chains[class].forward_backward(&s.log_density, days, &mut s.gamma, None);
                quadratic
                    .iter_mut()
                    .zip(&s.gamma)
                    .for_each(|(q, g)| *q = noise * *g as f32);
            }
            // The gains σ Σ_k γ_k / variance_k.
            matmul(&s.per_state, &s.inverse, (rows, states, a), &mut s.work, 1);
        }
        // ε = U (gain ⊙ y) for every day, then back to assets x padded.
        s.coords.iter_mut().zip(&s.work).for_each(|(y, g)| *y *= g);
        let u_t = &self.vectors_t[class * a * a..(class + 1) * a * a];
        matmul(&s.coords, u_t, (rows, a, a), &mut s.days, 1);
        for (window, eps) in out
            .chunks_exact_mut(a * padded)
            .zip(s.days.chunks_exact(days * a))
        {
            for (d, day) in eps.chunks_exact(a).enumerate() {
                for (i, e) in day.iter().enumerate() {
                    window[i * padded + d] = *e;
                }
            }
        }
    }
}

/// The fewest windows [`PriorPredictor::eps`] gives a thread.
const MIN_WINDOWS_PER_THREAD: usize = 16;

/// A window's class and its √ᾱ and √(1 − ᾱ) as bits: windows that share it share the states'
/// variances.
type Level = (usize, u32, u32);
