//! The project's seeded random numbers. candle's CPU generator cannot be seeded, so every draw
//! that must be reproducible (initial weights, shuffling, timesteps, noise, label dropout,
//! resampling) comes from here and enters candle through `Tensor::from_vec`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The seed of every command unless told otherwise.
pub const DEFAULT_SEED: u64 = 7;

/// A ChaCha8 stream: `(seed, stream)` names it, so independent parts of a run (say, each
/// generated path) draw from their own stream and do not depend on batch sizes or order.
#[derive(Debug, Clone)]
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    /// The stream `stream` of `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Self(rng)
    }

    /// A standard normal draw.
    pub fn normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }

    /// `n` standard normal draws as `f32`, for tensors.
    pub fn normals_f32(&mut self, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; n];
        self.fill_normals_f32(&mut out);
        out
    }

    /// Fills `out` with standard normal `f32` draws.
    pub fn fill_normals_f32(&mut self, out: &mut [f32]) {
        out.iter_mut()
            .for_each(|z| *z = StandardNormal.sample(&mut self.0));
    }

    /// Uniform on [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<f32> = SeededRng::new(3, 0).normals_f32(8);
        let b: Vec<f32> = SeededRng::new(3, 0).normals_f32(8);
        let c: Vec<f32> = SeededRng::new(3, 1).normals_f32(8);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
