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
        let (b, _, padded) = self.window_shape(x)?;
        let (xs, signal, noise) = (on_host(x)?, on_host(signal)?, on_host(noise)?);
        let classes = classes.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let levels: Vec<Level> = (0..b)
            .map(|w| (classes[w] as usize, signal[w].to_bits(), noise[w].to_bits()))
            .collect();
        let out = self.over_windows(b, padded, |range, scratch, out| {
            // Runs of windows at one class and noise level: all of a sampling step's (two with
            // guidance), one at a time in training.
            let size = self.assets * padded;
            let levels = &levels[range.clone()];
            let mut start = 0;
            while start < levels.len() {
                let len = levels[start..]
                    .iter()
                    .take_while(|l| **l == levels[start])
                    .count();
                let first = (range.start + start) * size;
                self.eps_run(
                    &xs[first..first + len * size],
                    padded,
                    levels[start],
                    scratch,
                    &mut out[start * size..(start + len) * size],
                );
                start += len;
            }
        });
        Tensor::from_vec(out, x.shape(), x.device())?.to_dtype(x.dtype())
    }

    /// A draw of x_0 from the prior's posterior given the windows `x` (batch, assets, padded),
    /// all of class `class` at √ᾱ `signal` and √(1 − ᾱ) `noise`, less the posterior mean; zero
    /// on the padding. The days' volatility states are drawn jointly from their posterior over
    /// the window (so that a path keeps its volatility from day to day), then x_0 given them.
    /// The randomness comes from `normals` and `picks`, N(0, 1) draws shaped as `x`: each
    /// window's states from the first `window` values of its `picks`.
    pub fn x0_deviation(
        &self,
        x: &Tensor,
        (signal, noise): (f64, f64),
        class: usize,
        normals: &Tensor,
        picks: &Tensor,
    ) -> Result<Tensor> {
        let (b, _, padded) = self.window_shape(x)?;
        let (xs, normals, picks) = (on_host(x)?, on_host(normals)?, on_host(picks)?);
        let level = (class, (signal as f32).to_bits(), (noise as f32).to_bits());
        let out = self.over_windows(b, padded, |range, scratch, out| {
            let span = range.start * self.assets * padded..range.end * self.assets * padded;
            self.deviation_run(
                &xs[span.clone()],
                &normals[span.clone()],
                &picks[span],
                padded,
                level,
                scratch,
                out,
            );
        });
        Tensor::from_vec(out, x.shape(), x.device())?.to_dtype(x.dtype())
    }

    /// (batch, assets, padded) of `x`, checked against the prior's assets and window.
    fn window_shape(&self, x: &Tensor) -> Result<(usize, usize, usize)> {
        let (b, assets, padded) = x.dims3()?;
        if assets != self.assets || padded < self.window {
            candle_core::bail!(
                "windows of {assets} assets and {padded} days do not fit a prior of {} assets \
                 and {} days",
                self.assets,
                self.window
            );
        }
        Ok((b, assets, padded))
    }

    /// `run(windows, scratch, out)` over shares of `b` windows of `padded` days, one thread a
    /// share, each writing its windows' values into `out`; the values of all, in order.
    fn over_windows(
        &self,
        b: usize,
        padded: usize,
        run: impl Fn(std::ops::Range<usize>, &mut Scratch, &mut [f32]) + Sync,
    ) -> Vec<f32> {
        let size = self.assets * padded;
        let mut out = vec![0.0f32; b * size];
        // Windows are independent: split them over the cores, in shares large enough to be
        // worth a thread (a window takes some microseconds).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = b.div_ceil(threads).max(MIN_WINDOWS_PER_THREAD);
        let run = &run;
        std::thread::scope(|scope| {
            for (i, out) in out.chunks_mut(chunk * size).enumerate() {
                let range = i * chunk..(i * chunk + out.len() / size);
                scope.spawn(move || run(range, &mut Scratch::default(), out));
            }
        });
        out
    }

    /// The states' variances at `level` into `s`, unless they are there already.
    fn prepare_level(&self, level: Level, s: &mut Scratch) {
        if s.level == Some(level) {
            return;
        }
        let (a, states) = (self.assets, self.state_variances.len());
        let (class, signal, noise) = (level.0, f32::from_bits(level.1), f32::from_bits(level.2));
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

    /// The days of windows `x` (n x assets x padded) centred at `level` into `s.days`, and
    /// their coordinates y = Uᵀ c in the class's eigenbasis into `s.coords`, a row per day.
    fn coordinates(&self, x: &[f32], padded: usize, level: Level, s: &mut Scratch) {
        let (a, days) = (self.assets, self.window);
        let (class, signal) = (level.0, f32::from_bits(level.1));
        let rows = x.len() / (a * padded) * days;
        let mean = &self.means[class * a..(class + 1) * a];
        s.days.clear();
        for window in x.chunks_exact(a * padded) {
            for d in 0..days {
                s.days
                    .extend((0..a).map(|i| window[i * padded + d] - signal * mean[i]));
            }
        }
        let u = &self.vectors[class * a * a..(class + 1) * a * a];
        matmul(&s.days, u, (rows, a, a), &mut s.coords, 1);
    }

    /// The log density of window `window`'s days in each state, up to a constant, (days x
    /// states) into `s.log_density`, from their quadratics in `s.per_state`
    /// ([`Self::state_quadratics`]).
    fn window_log_density(&self, s: &mut Scratch, window: usize) {
        let states = self.state_variances.len();
        let quadratic =
            &s.per_state[window * self.window * states..(window + 1) * self.window * states];
        s.log_density.resize(self.window * states, 0.0);
        for (log_density, q) in s
            .log_density
            .chunks_exact_mut(states)
            .zip(quadratic.chunks_exact(states))
        {
            for ((out, q), l) in log_density.iter_mut().zip(q).zip(&s.log_det) {
                *out = -0.5 * f64::from(q + l);
            }
        }
    }

    /// ε_G of windows `x` (n x assets x padded) that share `level` into `out` (the same shape,
    /// zeros, which the padding keeps). In the eigenbasis of the class's Σ, the coordinate y_j of a day
    /// has variance ᾱ s²_k λ_j + σ² in state k, and the prediction σ y_j / that variance is
    /// mixed over the states by their posterior given the whole window. The days of all the
    /// windows are stacked as rows, so that each product is one matrix product.
    fn eps_run(&self, x: &[f32], padded: usize, level: Level, s: &mut Scratch, out: &mut [f32]) {
        let (a, days, states) = (self.assets, self.window, self.state_variances.len());
        let (class, noise) = (level.0, f32::from_bits(level.2));
        let rows = x.len() / (a * padded) * days;
        self.prepare_level(level, s);
        self.coordinates(x, padded, level, s);
        if !self.mixed() {
            s.work.clear();
            for _ in 0..rows {
                s.work.extend(s.inverse[..a].iter().map(|i| noise * i));
            }
        } else {
            self.state_quadratics(rows, s);
            s.gamma.resize(days * states, 0.0);
            for window in 0..rows / days {
                self.window_log_density(s, window);
                self.chains[class].forward_backward(&s.log_density, days, &mut s.gamma, None);
                s.per_state[window * days * states..(window + 1) * days * states]
                    .iter_mut()
                    .zip(&s.gamma)
                    .for_each(|(q, g)| *q = noise * *g as f32);
            }
            // The gains σ Σ_k γ_k / variance_k.
            matmul(&s.per_state, &s.inverse, (rows, states, a), &mut s.work, 1);
        }
        // ε = U (gain ⊙ y) for every day, then back to assets x padded.
        s.coords.iter_mut().zip(&s.work).for_each(|(y, g)| *y *= g);
        self.to_windows(class, rows, padded, s, out);
    }

    /// Whether the prior mixes volatility states (else one Gaussian, state 0, per class).
    fn mixed(&self) -> bool {
        self.state_variances.len() > 1 && !self.chains.is_empty()
    }

    /// Σ_j y_j² / (ᾱ s²_k λ_j + σ²) per day and state into `s.per_state` (rows x states).
    fn state_quadratics(&self, rows: usize, s: &mut Scratch) {
        let (a, states) = (self.assets, self.state_variances.len());
        s.work.clear();
        s.work.extend(s.coords.iter().map(|y| y * y));
        matmul(
            &s.work,
            &s.inverse_t,
            (rows, a, states),
            &mut s.per_state,
            1,
        );
    }

    /// The rows of eigen-coordinates in `s.coords`, turned back by U into the assets and laid
    /// out as windows (assets x padded) into `out`.
    fn to_windows(
        &self,
        class: usize,
        rows: usize,
        padded: usize,
        s: &mut Scratch,
        out: &mut [f32],
    ) {
        let (a, days) = (self.assets, self.window);
        let u_t = &self.vectors_t[class * a * a..(class + 1) * a * a];
        matmul(&s.coords, u_t, (rows, a, a), &mut s.days, 1);
        for (window, values) in out
            .chunks_exact_mut(a * padded)
            .zip(s.days.chunks_exact(days * a))
        {
            for (d, day) in values.chunks_exact(a).enumerate() {
                for (i, v) in day.iter().enumerate() {
                    window[i * padded + d] = *v;
                }
            }
        }
    }

    /// Each state's prior variance of each eigen-coordinate, s²_k λ_j (m²_k on the market
    /// direction), (states x assets).
    fn state_coordinate_variances(&self, class: usize) -> Vec<f32> {
        let a = self.assets;
        let lambda = &self.values[class * a..(class + 1) * a];
        let market = self.market[class];
        self.state_variances
            .iter()
            .zip(&self.market_variances)
            .flat_map(|(v, m)| {
                lambda
                    .iter()
                    .enumerate()
                    .map(move |(j, l)| if j == market { v * m * l } else { v * l })
            })
            .collect()
    }

    /// [`PriorPredictor::x0_deviation`] for windows that share `level`. Given state k, x_0's
    /// eigen-coordinate j is N(√ᾱ p_kj y_j / v_kj, p_kj σ² / v_kj), p_kj its prior variance
    /// and v_kj = ᾱ p_kj + σ²; the posterior mean mixes the means by the states' posterior γ.
    #[allow(clippy::too_many_arguments)]
    fn deviation_run(
        &self,
        x: &[f32],
        normals: &[f32],
        picks: &[f32],
        padded: usize,
        level: Level,
        s: &mut Scratch,
        out: &mut [f32],
    ) {
        let (a, days, states) = (self.assets, self.window, self.state_variances.len());
        let (class, signal, noise) = (level.0, f32::from_bits(level.1), f32::from_bits(level.2));
        let rows = x.len() / (a * padded) * days;
        self.prepare_level(level, s);
        self.coordinates(x, padded, level, s);
        let variances = self.state_coordinate_variances(class);
        // Per state and coordinate: the gain √ᾱ p / v of the mean on y, and the variance p σ² / v.
        let gain: Vec<f32> = variances
            .iter()
            .zip(&s.inverse)
            .map(|(p, inv)| signal * p * inv)
            .collect();
        let spread: Vec<f32> = variances
            .iter()
            .zip(&s.inverse)
            .map(|(p, inv)| (p * noise * noise * inv).sqrt())
            .collect();
        let mut drawn = vec![0usize; rows];
        let mut gamma = vec![1.0f32; rows * states];
        if self.mixed() {
            self.state_quadratics(rows, s);
            s.gamma.resize(days * states, 0.0);
            let window_size = a * padded;
            for window in 0..rows / days {
                self.window_log_density(s, window);
                let uniforms: Vec<f64> = picks[window * window_size..window * window_size + days]
                    .iter()
                    .map(|z| standard_normal_cdf(f64::from(*z)))
                    .collect();
                let chain = &self.chains[class];
                let path = chain.sample_states(&s.log_density, days, &mut s.gamma, &uniforms);
                drawn[window * days..(window + 1) * days].copy_from_slice(&path);
                gamma[window * days * states..(window + 1) * days * states]
                    .iter_mut()
                    .zip(&s.gamma)
                    .for_each(|(g, p)| *g = *p as f32);
            }
        }
        // The posterior mean's gains Σ_k γ_k √ᾱ p_kj / v_kj per day.
        let mut mean_gain = Vec::new();
        let mixing = if self.mixed() { states } else { 1 };
        matmul(
            &gamma[..rows * mixing],
            &gain[..mixing * a],
            (rows, mixing, a),
            &mut mean_gain,
            1,
        );
        for (r, (y, mean_gain)) in s
            .coords
            .chunks_exact_mut(a)
            .zip(mean_gain.chunks_exact(a))
            .enumerate()
        {
            let k = drawn[r];
            let (window, day) = (r / days, r % days);
            let z = &normals[window * a * padded..(window + 1) * a * padded];
            for (j, y) in y.iter_mut().enumerate() {
                *y =
                    (gain[k * a + j] - mean_gain[j]) * *y + spread[k * a + j] * z[j * padded + day];
            }
        }
        self.to_windows(class, rows, padded, s, out);
    }
}

/// A tensor's values as f32 on the host, where the prior runs whatever the device.
fn on_host(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// Φ, the standard normal distribution function: a uniform draw from a normal one.
fn standard_normal_cdf(z: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2)
}

/// The fewest windows [`PriorPredictor::eps`] gives a thread.
const MIN_WINDOWS_PER_THREAD: usize = 16;

/// A window's class and its √ᾱ and √(1 − ᾱ) as bits: windows that share it share the states'
/// variances.
type Level = (usize, u32, u32);
