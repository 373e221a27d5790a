//! The Gaussian part of the noise prediction: for days drawn independently from N(μ_c, Σ_c) per
//! regime c, the best prediction of ε from x_t = √ᾱ x_0 + √(1 − ᾱ) ε is linear,
//!
//!   ε_G(x_t) = σ (ᾱ Σ_c + σ² I)⁻¹ (x_t − √ᾱ μ_c),  σ = √(1 − ᾱ),  per day,
//!
//! and sampling with it alone gives each regime's Gaussian exactly. The network then learns only
//! what is not Gaussian. Without it the network has to rebuild this 20 x 20 map from the ε loss,
//! where a wrong level of correlation costs almost nothing (the market factor is one direction
//! in twenty), and generated correlations came out a third too low.

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::stats::symmetric_eigen;

/// Floor on the eigenvalues of a fitted covariance (standardised units), so that a class with
/// fewer days than assets still has an invertible ᾱ Σ + σ² I near ᾱ = 1.
const EIGENVALUE_FLOOR: f64 = 1e-4;

/// Mean and covariance of a day of standardised returns, per regime and, last, pooled over all
/// (the class of the null label used for guidance). Stored in the model's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianPrior {
    /// Per class, `assets` values.
    pub means: Vec<Vec<f64>>,
    /// Per class, `assets * assets` values, row-major.
    pub covariances: Vec<Vec<f64>>,
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
        Self { means, covariances }
    }

    /// Classes (regimes + 1).
    pub fn classes(&self) -> usize {
        self.means.len()
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
        Ok(PriorTensors {
            means: Tensor::from_vec(means, (classes, assets), device)?,
            vectors: Tensor::from_vec(vectors, (classes, assets, assets), device)?,
            values: Tensor::from_vec(values, (classes, assets), device)?,
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
        let gain = lambda
            .broadcast_mul(&signal.sqr()?)?
            .broadcast_add(&noise.sqr()?)?
            .recip()?
            .broadcast_mul(noise)?;
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
}
