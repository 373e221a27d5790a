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

mod predictor;
mod volatility_chain;
mod volatility_states;

pub use predictor::PriorPredictor;
pub use volatility_chain::VolatilityChain;
pub use volatility_states::{scale_grid, state_grid};

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

    /// This prior with class `class`'s windows starting from volatility level distribution
    /// `levels` instead of the chain's fitted first-day levels: windows as of a market state
    /// (see [`GaussianPrior::next_day_levels`]). Unchanged without a chain.
    pub fn starting_at(&self, class: usize, levels: &[f64]) -> GaussianPrior {
        let mut prior = self.clone();
        if let Some(chain) = prior.chains.get_mut(class) {
            chain.level_initial = levels.to_vec();
        }
        prior
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
