//! The teacher's paths of one regime and the energy distance the student is trained and
//! validated on, between the laws of each path's standardised returns together with their
//! absolute values.
//!
//! The pair determines the path, so the distance is still zero only between equal laws; the
//! absolute values weigh what the paths' scale varies with (fat tails, volatility that comes
//! and goes within a path) as much as the returns' signs and co-movements. On the returns
//! alone, distilling the embedded model matched its default sampler's volatility and
//! correlation but left its daily kurtosis at 2.7 against 3.1 (docs/samplers.md).

use candle_core::{Device, Tensor};

use crate::model::ModelCard;
use crate::rng::SeededRng;
use crate::stats::{energy_distance_with_spread, energy_spread};

/// The teacher's paths of one regime, standardised and laid out as the network's windows
/// (asset-major, the window's days), one row per path; the last fifth is held out.
pub(super) struct Pool {
    rows: Vec<f32>,
    dim: usize,
    training: usize,
    /// The held-out paths' [`features`] and their energy spread, fixed for the run.
    held_out: Vec<f64>,
    held_out_spread: f64,
}

impl Pool {
    /// From `sample_paths`' de-standardised returns (path, day, asset).
    pub(super) fn new(card: &ModelCard, returns: &[f64]) -> Self {
        let (assets, window) = (card.assets.len(), card.window);
        let norm = &card.normalisation;
        let dim = assets * window;
        let mut rows = vec![0.0f32; returns.len()];
        for (path, values) in returns.chunks_exact(dim).enumerate() {
            for day in 0..window {
                for a in 0..assets {
                    let z = (values[day * assets + a] - norm.mean[a]) / norm.std[a];
                    rows[path * dim + a * window + day] = z as f32;
                }
            }
        }
        let paths = returns.len() / dim;
        let training = paths - paths / 5;
        let held_out = Tensor::from_slice(&rows[training * dim..], (paths / 5, dim), &Device::Cpu)
            .and_then(|t| features_f64(&t))
            .expect("a CPU tensor of its own length");
        Self {
            held_out_spread: energy_spread(&held_out, 2 * dim),
            held_out,
            rows,
            dim,
            training,
        }
    }

    pub(super) fn held_out_len(&self) -> usize {
        self.rows.len() / self.dim - self.training
    }

    /// The energy distance between the paths `x` (n, dim) and the held-out paths.
    pub(super) fn held_out_distance(&self, x: &Tensor) -> candle_core::Result<f64> {
        let x = features_f64(x)?;
        Ok(energy_distance_with_spread(
            &x,
            &self.held_out,
            2 * self.dim,
            self.held_out_spread,
        ))
    }

    /// `n` training paths drawn with replacement, (n, dim).
    pub(super) fn training_batch(
        &self,
        n: usize,
        rng: &mut SeededRng,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut batch = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            let row = rng.below(self.training);
            batch.extend_from_slice(&self.rows[row * self.dim..(row + 1) * self.dim]);
        }
        Tensor::from_vec(batch, (n, self.dim), device)
    }
}

/// Each path's returns followed by their absolute values, (n, 2 · dim).
fn features(x: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::cat(&[x, &x.abs()?], 1)
}

/// [`features`], flattened to f64 for the statistics.
fn features_f64(x: &Tensor) -> candle_core::Result<Vec<f64>> {
    let f = features(x)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(f.into_iter().map(f64::from).collect())
}

/// Pairwise Euclidean distances between the rows of `x` (n, d) and `y` (m, d), (n, m). The
/// small floor under the square root keeps the gradient finite where rows coincide (the
/// diagonal of x against itself), where the squared distance's own gradient is zero.
fn pairwise_distances(x: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let xx = x.sqr()?.sum_keepdim(1)?;
    let yy = y.sqr()?.sum_keepdim(1)?.t()?;
    let cross = x.matmul(&y.t()?)?;
    let squared = (xx.broadcast_add(&yy)? - (cross * 2.0)?)?;
    (squared.relu()? + 1e-6)?.sqrt()
}

/// The energy distance between the laws of the [`features`] of `student` (n, d) and `teacher`
/// (m, d) rows, less the teacher batch's own spread, which does not depend on the student:
/// 2 E‖X − Y‖ − E‖X − X′‖, with X′ another student row (the diagonal left out).
pub(super) fn batch_energy_loss(student: &Tensor, teacher: &Tensor) -> candle_core::Result<Tensor> {
    let (student, teacher) = (&features(student)?, &features(teacher)?);
    let n = student.dim(0)? as f64;
    let cross = pairwise_distances(student, teacher)?.mean_all()?;
    let within = (pairwise_distances(student, student)?.sum_all()? / (n * (n - 1.0)))?;
    (cross * 2.0)? - within
}
