//! The Gaussian part of the noise prediction: for days drawn independently from N(μ_c, Σ_c) per
//! regime c, the best prediction of ε from x_t = √ᾱ x_0 + √(1 − ᾱ) ε is linear,
//!
//!   ε_G(x_t) = σ (ᾱ Σ_c + σ² I)⁻¹ (x_t − √ᾱ μ_c),  σ = √(1 − ᾱ),  per day,
//!
//! and sampling with it alone gives each regime's Gaussian exactly. The network then learns only
//! what is not Gaussian. Without it the network has to rebuild this 20 x 20 map from the ε loss,
//! where a wrong level of correlation costs almost nothing (the market factor is one direction
//! in twenty), and generated correlations came out a third too low.
//!
//! With volatility states (`volatility_states.rs`), each day's covariance is s²_k Σ_c for a
//! hidden state k, its market direction (the top eigenvector of the class's covariance) scaled
//! by a further m_k, and ε_G mixes the states' linear predictions by their posterior probability
//! given the whole noisy window; with one state it is the formula above.
//!
//! The prior is fitted by `train` and stored in the model card; [`crate::model::predict_eps`]
//! adds the network's correction to it.

mod volatility_chain;
mod volatility_states;

pub use volatility_chain::VolatilityChain;
pub use volatility_states::{scale_grid, state_grid};

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::stats::symmetric_eigen;

/// Floor on the eigenvalues of a fitted covariance (standardised units), so that a class with
/// fewer days than assets still has an invertible ᾱ Σ + σ² I near ᾱ = 1.
pub(super) const EIGENVALUE_FLOOR: f64 = 1e-4;

/// Mean and covariance of a day of standardised returns, per regime and, last, pooled over all
/// (the class of the null label used for guidance). Stored in the model's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredPrior")]
pub struct GaussianPrior {
    /// Per class, `assets` values.
    pub means: Vec<Vec<f64>>,
    /// Per class, `assets * assets` values, row-major: the covariance of a day in the state of
    /// scale 1 (with one state, of every day).
    pub covariances: Vec<Vec<f64>>,
    /// Day scales of the volatility states (see `volatility_states.rs`); empty for a single
    /// Gaussian per class, as in models written before the states existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scales: Vec<f64>,
    /// Per class, the chain of the states (empty with a single Gaussian).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<VolatilityChain>,
    /// Per state, the market shock m: the market direction's standard deviation is m times the
    /// other directions' (see `volatility_states.rs`); empty where every m is 1, as in models
    /// written before market shocks existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub market_scales: Vec<f64>,
    /// Per class, the unit market direction (an eigenvector of its covariance) that the market
    /// shocks scale; empty with `market_scales`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub market_directions: Vec<Vec<f64>>,
}

/// [`GaussianPrior`] as `config.json` holds it: models written before the chain was stored as
/// levels and shocks have each class's chain as a full `initial` / `transitions` pair instead,
/// which load as a chain of that many levels and one shock.
#[derive(Deserialize)]
struct StoredPrior {
    means: Vec<Vec<f64>>,
    covariances: Vec<Vec<f64>>,
    #[serde(default)]
    scales: Vec<f64>,
    #[serde(default)]
    chains: Vec<VolatilityChain>,
    #[serde(default)]
    market_scales: Vec<f64>,
    #[serde(default)]
    market_directions: Vec<Vec<f64>>,
    #[serde(default)]
    initial: Vec<Vec<f64>>,
    #[serde(default)]
    transitions: Vec<Vec<f64>>,
}

impl From<StoredPrior> for GaussianPrior {
    fn from(stored: StoredPrior) -> Self {
        let mut chains = stored.chains;
        if chains.is_empty() {
            chains = stored
                .initial
                .into_iter()
                .zip(stored.transitions)
                .map(|(initial, transitions)| VolatilityChain::from_states(initial, transitions))
                .collect();
        }
        Self {
            means: stored.means,
            covariances: stored.covariances,
            scales: stored.scales,
            chains,
            market_scales: stored.market_scales,
            market_directions: stored.market_directions,
        }
    }
}

impl GaussianPrior {
    /// Fits each of `regimes` classes and the pooled class on the days of standardised windows
    /// `values` (`labels.len()` windows of `assets` x `padded`, the first `window` days data).
    pub fn fit(
        values: &[f32],
        labels: &[u32],
        regimes: usize,
        assets: usize,
        padded: usize,
        window: usize,
    ) -> Self {
        let mut sums = vec![vec![0.0f64; assets]; regimes + 1];
        let mut products = vec![vec![0.0f64; assets * assets]; regimes + 1];
        let mut counts = vec![0usize; regimes + 1];
        let mut day = vec![0.0f64; assets];
        for (w, &label) in labels.iter().enumerate() {
            let v = &values[w * assets * padded..(w + 1) * assets * padded];
            for d in 0..window {
                for (a, x) in day.iter_mut().enumerate() {
                    *x = v[a * padded + d] as f64;
                }
                for class in [label as usize, regimes] {
                    counts[class] += 1;
                    for i in 0..assets {
                        sums[class][i] += day[i];
                        for j in 0..assets {
                            products[class][i * assets + j] += day[i] * day[j];
                        }
                    }
                }
            }
        }
        let mut means = Vec::new();
        let mut covariances = Vec::new();
        for class in 0..=regimes {
            let n = counts[class].max(2) as f64;
            let mean: Vec<f64> = sums[class].iter().map(|s| s / n).collect();
            let cov = (0..assets * assets)
                .map(|k| {
                    let (i, j) = (k / assets, k % assets);
                    (products[class][k] - n * mean[i] * mean[j]) / (n - 1.0)
                })
                .collect();
            means.push(mean);
            covariances.push(cov);
        }
        Self {
            means,
            covariances,
            scales: Vec::new(),
            chains: Vec::new(),
            market_scales: Vec::new(),
            market_directions: Vec::new(),
        }
    }

    /// Classes (regimes + 1).
    pub fn classes(&self) -> usize {
        self.means.len()
    }

    /// Volatility states per class (1: a single Gaussian).
    pub fn states(&self) -> usize {
        self.scales.len().max(1)
    }

    /// Checks that every part has `classes` classes of `assets` assets and that the states'
    /// parts agree; the message says which part does not.
    pub fn check(&self, classes: usize, assets: usize) -> std::result::Result<(), String> {
        let k = self.states();
        let sized = |name: &str, parts: &[Vec<f64>], len: usize| {
            if parts.len() == classes && parts.iter().all(|p| p.len() == len) {
                Ok(())
            } else {
                Err(format!(
                    "the prior does not have {classes} classes of {len} {name}"
                ))
            }
        };
        sized("means", &self.means, assets)?;
        sized("covariance entries", &self.covariances, assets * assets)?;
        if self.means.iter().flatten().any(|m| !m.is_finite()) {
            return Err("the prior has a mean that is not finite".into());
        }
        for (class, c) in self.covariances.iter().enumerate() {
            let symmetric = (0..assets).all(|i| {
                (0..i).all(|j| {
                    (c[i * assets + j] - c[j * assets + i]).abs()
                        <= 1e-9 * c[i * assets + i].abs().max(1.0)
                })
            });
            if c.iter().any(|v| !v.is_finite()) || !symmetric {
                return Err(format!(
                    "the prior's covariance of class {class} is not a finite symmetric matrix"
                ));
            }
            if symmetric_eigen(c, assets)
                .0
                .first()
                .is_none_or(|&least| least <= 0.0)
            {
                return Err(format!(
                    "the prior's covariance of class {class} is not positive definite"
                ));
            }
        }
        if !self.scales.is_empty() {
            if self.chains.len() != classes {
                return Err(format!(
                    "the prior does not have {classes} classes of volatility chains"
                ));
            }
            for chain in &self.chains {
                chain.check(k).map_err(|e| format!("the prior's {e}"))?;
            }
            if self.scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                return Err("the prior has a state scale that is not positive".into());
            }
        }
        if !self.market_scales.is_empty() {
            if self.market_scales.len() != self.scales.len() {
                return Err(format!(
                    "the prior does not have {} market shocks, one per state",
                    self.scales.len()
                ));
            }
            if self
                .market_scales
                .iter()
                .any(|s| !(s.is_finite() && *s > 0.0))
            {
                return Err("the prior has a market shock that is not positive".into());
            }
            let unit = |u: &Vec<f64>| {
                u.len() == assets && (u.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-6
            };
            if self.market_directions.len() != classes || !self.market_directions.iter().all(unit) {
                return Err(format!(
                    "the prior does not have {classes} unit market directions of {assets} assets"
                ));
            }
        }
        Ok(())
    }

    /// Per state, the market shock m (1 for every state of a prior without market shocks).
    pub fn market_multipliers(&self) -> Vec<f64> {
        if self.market_scales.is_empty() {
            vec![1.0; self.states()]
        } else {
            self.market_scales.clone()
        }
    }

    /// Class `class`'s covariance in its eigenbasis: see [`ClassBasis`].
    pub fn basis(&self, class: usize) -> ClassBasis {
        ClassBasis::new(
            &self.covariances[class],
            self.market_directions.get(class).map(Vec::as_slice),
        )
    }

    /// The prior's eigen-decompositions, ready to predict ε_G for windows of `window` days.
    pub fn predictor(&self, window: usize) -> PriorPredictor {
        let assets = self.means.first().map_or(0, Vec::len);
        let mut values = Vec::with_capacity(self.classes() * assets);
        let mut vectors = Vec::with_capacity(self.classes() * assets * assets);
        let mut vectors_t = Vec::with_capacity(self.classes() * assets * assets);
        let mut market = Vec::with_capacity(self.classes());
        for class in 0..self.classes() {
            let basis = self.basis(class);
            values.extend(basis.lambda.iter().map(|l| *l as f32));
            vectors.extend(basis.vectors.iter().map(|v| *v as f32));
            vectors_t.extend(
                (0..assets * assets)
                    .map(|k| basis.vectors[(k % assets) * assets + k / assets] as f32),
            );
            market.push(basis.market);
        }
        let state_variances = if self.scales.is_empty() {
            vec![1.0]
        } else {
            self.scales.iter().map(|s| (s * s) as f32).collect()
        };
        PriorPredictor {
            assets,
            window,
            means: self.means.iter().flatten().map(|v| *v as f32).collect(),
            vectors,
            vectors_t,
            values,
            market,
            market_variances: self
                .market_multipliers()
                .iter()
                .map(|m| (m * m) as f32)
                .collect(),
            state_variances,
            chains: self.chains.clone(),
        }
    }
}

/// A class's covariance Σ = U diag(λ) Uᵀ, λ floored at [`EIGENVALUE_FLOOR`], with the column of
/// U that is the market direction. The market direction is found by decomposing
/// Σ + c u uᵀ for a c far above every eigenvalue: u is an eigenvector of Σ (the fit makes it
/// one), and the shift keeps it apart from the others even where Σ has equal eigenvalues.
pub struct ClassBasis {
    pub lambda: Vec<f64>,
    /// Eigenvectors in columns, row-major.
    pub vectors: Vec<f64>,
    /// The column of the market direction (that of the largest eigenvalue without one).
    pub market: usize,
}

impl ClassBasis {
    pub fn new(covariance: &[f64], market_direction: Option<&[f64]>) -> Self {
        let n = market_direction.map_or((covariance.len() as f64).sqrt() as usize, <[f64]>::len);
        let Some(u) = market_direction else {
            let (lambda, vectors) = symmetric_eigen(covariance, n);
            let market = argmax(&lambda);
            let lambda = lambda.iter().map(|l| l.max(EIGENVALUE_FLOOR)).collect();
            return Self {
                lambda,
                vectors,
                market,
            };
        };
        let shift = 1.0 + 10.0 * (0..n).map(|i| covariance[i * n + i].abs()).sum::<f64>();
        let shifted: Vec<f64> = (0..n * n)
            .map(|k| covariance[k] + shift * u[k / n] * u[k % n])
            .collect();
        let (mut lambda, vectors) = symmetric_eigen(&shifted, n);
        let alignment: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| u[i] * vectors[i * n + j]).sum::<f64>().abs())
            .collect();
        let market = argmax(&alignment);
        lambda[market] -= shift;
        let lambda = lambda.iter().map(|l| l.max(EIGENVALUE_FLOOR)).collect();
        Self {
            lambda,
            vectors,
            market,
        }
    }
}

/// The index of the largest value.
fn argmax(values: &[f64]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, v)| {
            if *v > best.1 {
                (i, *v)
            } else {
                best
            }
        })
        .0
}

/// [`GaussianPrior`] ready to compute ε_G. It runs on the host whatever the device of the
/// windows: per window it is a few 20 x 20 projections and the forward-backward recursion over
/// 30 days, which the recursion needs the host for anyway. As candle CPU ops with a host round
/// trip for the recursion it took a third of the generation time (2.1 of 6.3 s per 2,000
/// paths); here 1.4 s.
#[derive(Clone)]
pub struct PriorPredictor {
    assets: usize,
    window: usize,
    /// Per class, `assets` values.
    means: Vec<f32>,
    /// Per class, U (assets x assets, row-major, eigenvectors in columns) and Uᵀ.
    vectors: Vec<f32>,
    vectors_t: Vec<f32>,
    /// Per class, the eigenvalues λ.
    values: Vec<f32>,
    /// s²_k of each volatility state ([1] with a single Gaussian).
    state_variances: Vec<f32>,
    /// Per class, the coordinate of the market direction; per state, m²_k, its extra variance.
    market: Vec<usize>,
    market_variances: Vec<f32>,
    /// Per class, the states' chain (empty with one state).
    chains: Vec<VolatilityChain>,
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
        matmul(&s.days, u, (rows, a, a), &mut s.coords);
        if states == 1 || self.chains.is_empty() {
            s.work.clear();
            for _ in 0..rows {
                s.work.extend(s.inverse[..a].iter().map(|i| noise * i));
            }
        } else {
            // log N(y; 0, diag(variance_k)) per day and state, up to a constant.
            s.work.clear();
            s.work.extend(s.coords.iter().map(|y| y * y));
            matmul(&s.work, &s.inverse_t, (rows, a, states), &mut s.per_state);
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
            matmul(&s.per_state, &s.inverse, (rows, states, a), &mut s.work);
        }
        // ε = U (gain ⊙ y) for every day, then back to assets x padded.
        s.coords.iter_mut().zip(&s.work).for_each(|(y, g)| *y *= g);
        let u_t = &self.vectors_t[class * a * a..(class + 1) * a * a];
        matmul(&s.coords, u_t, (rows, a, a), &mut s.days);
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

/// `out` = `lhs` (m x k) · `rhs` (k x n), all row-major.
fn matmul(lhs: &[f32], rhs: &[f32], (m, k, n): (usize, usize, usize), out: &mut Vec<f32>) {
    assert!(lhs.len() == m * k && rhs.len() == k * n);
    out.clear();
    out.resize(m * n, 0.0);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the three buffers hold exactly the extents given, as asserted and resized above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
