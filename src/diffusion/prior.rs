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
//! hidden state k, and ε_G mixes the states' linear predictions by their posterior probability
//! given the whole noisy window; with one state it is the formula above.

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use super::VolatilityChain;
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
        Ok(())
    }

    /// The prior's eigen-decompositions as tensors on `device`, for windows of `window` days.
    pub fn tensors(&self, window: usize, device: &Device) -> Result<PriorTensors> {
        let assets = self.means.first().map_or(0, Vec::len);
        let classes = self.classes();
        let mut values = Vec::with_capacity(classes * assets);
        let mut vectors = Vec::with_capacity(classes * assets * assets);
        for cov in &self.covariances {
            let (lambda, u) = symmetric_eigen(cov, assets);
            values.extend(lambda.iter().map(|l| l.max(EIGENVALUE_FLOOR) as f32));
            vectors.extend(u.iter().map(|v| *v as f32));
        }
        let means: Vec<f32> = self.means.iter().flatten().map(|v| *v as f32).collect();
        let variances: Vec<f32> = if self.scales.is_empty() {
            vec![1.0]
        } else {
            self.scales.iter().map(|s| (s * s) as f32).collect()
        };
        let states = variances.len();
        Ok(PriorTensors {
            means: Tensor::from_vec(means, (classes, assets), device)?,
            vectors: Tensor::from_vec(vectors, (classes, assets, assets), device)?,
            values: Tensor::from_vec(values, (classes, assets), device)?,
            state_variances: Tensor::from_vec(variances, (1, states, 1), device)?,
            chains: self.chains.clone(),
            window,
        })
    }
}

/// [`GaussianPrior`] ready to compute ε_G on a device (clones share the tensors).
#[derive(Clone)]
pub struct PriorTensors {
    /// (classes, assets)
    means: Tensor,
    /// (classes, assets, assets), eigenvectors in columns.
    vectors: Tensor,
    /// (classes, assets), eigenvalues.
    values: Tensor,
    /// (1, states, 1): s²_k of each volatility state.
    state_variances: Tensor,
    /// Per class, the states' chain (empty with one state); the recursion runs on the host.
    chains: Vec<VolatilityChain>,
    window: usize,
}

impl PriorTensors {
    /// ε_G for `x` (batch, assets, padded) at per-sample √ᾱ `signal` and √(1 − ᾱ) `noise`
    /// ((batch, 1, 1) each) and class indices `classes` (batch,) u32; zero on the padding.
    pub fn eps(
        &self,
        x: &Tensor,
        signal: &Tensor,
        noise: &Tensor,
        classes: &Tensor,
    ) -> Result<Tensor> {
        let (b, assets, padded) = x.dims3()?;
        let classes = classes.to_dtype(DType::U32)?;
        let mean = self.means.index_select(&classes, 0)?.unsqueeze(1)?;
        let u = self.vectors.index_select(&classes, 0)?;
        let lambda = self.values.index_select(&classes, 0)?.unsqueeze(1)?;
        // (batch, days, assets), centred on √ᾱ μ, in the eigenbasis.
        let days = x
            .transpose(1, 2)?
            .broadcast_sub(&mean.broadcast_mul(signal)?)?;
        let coords = days.contiguous()?.matmul(&u)?;
        // Variance of each eigen-coordinate of x_t in each state, (batch, states, assets):
        // ᾱ s²_k λ_i + σ². The noise prediction in state k is σ y / variance.
        let variance = lambda
            .broadcast_mul(&signal.sqr()?)?
            .broadcast_mul(&self.state_variances)?
            .broadcast_add(&noise.sqr()?)?;
        let inverse = variance.recip()?;
        let gain = if self.chains.is_empty() {
            inverse.broadcast_mul(noise)?
        } else {
            // Posterior state probabilities per day, (batch, padded, states), mixing the gains.
            let gamma = self.state_posteriors(&coords, &variance, &inverse, &classes)?;
            gamma.matmul(&inverse)?.broadcast_mul(noise)?
        };
        let eps = coords
            .broadcast_mul(&gain)?
            .matmul(&u.transpose(1, 2)?.contiguous()?)?
            .transpose(1, 2)?;
        let mask: Vec<f32> = (0..padded)
            .map(|d| if d < self.window { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, padded), x.device())?;
        eps.broadcast_mul(&mask)?.reshape((b, assets, padded))
    }

    /// γ_d(k) for each window of `coords` (batch, padded, assets) given the states' `variance`
    /// and its `inverse` (batch, states, assets): Gaussian log densities of each day in each
    /// state on the device, the forward-backward recursion over the window's days on the host
    /// (zero on the padding).
    fn state_posteriors(
        &self,
        coords: &Tensor,
        variance: &Tensor,
        inverse: &Tensor,
        classes: &Tensor,
    ) -> Result<Tensor> {
        let (b, padded, _) = coords.dims3()?;
        let states = inverse.dim(1)?;
        let quadratic = coords
            .sqr()?
            .matmul(&inverse.transpose(1, 2)?.contiguous()?)?;
        let log_det = variance.log()?.sum_keepdim(2)?.transpose(1, 2)?;
        let log_density = (quadratic.broadcast_add(&log_det)? * -0.5)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let classes = classes.to_vec1::<u32>()?;
        let mut gamma = vec![0.0f64; b * padded * states];
        let per_window = padded * states;
        let days = self.window * states;
        // Windows are independent, and the device waits for this: split them over the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = b.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for ((gamma, log_density), classes) in gamma
                .chunks_mut(chunk * per_window)
                .zip(log_density.chunks(chunk * per_window))
                .zip(classes.chunks(chunk))
            {
                scope.spawn(move || {
                    for (w, &c) in classes.iter().enumerate() {
                        let at = w * per_window;
                        self.chains[c as usize].forward_backward(
                            &log_density[at..at + days],
                            self.window,
                            &mut gamma[at..at + days],
                            None,
                        );
                    }
                });
            }
        });
        Tensor::from_vec(gamma, (b, padded, states), coords.device())?.to_dtype(coords.dtype())
    }
}
