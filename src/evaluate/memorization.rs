//! Memorisation: how close each generated path lies to its nearest training window, against
//! how close real held-out windows lie. A path much nearer its nearest training window than to
//! the second nearest (ratio < 1/3) looks copied.

use candle_core::{Device, Tensor};
use serde::Serialize;

/// Nearest-neighbour distances of a set of paths to the training windows.
#[derive(Debug, Clone, Serialize)]
pub struct Memorization {
    pub paths: usize,
    /// Share of paths whose nearest / second-nearest distance ratio is below 1/3.
    pub share_ratio_below_third: f64,
    pub min_distance: f64,
    pub median_distance: f64,
}

/// Distances in standardised returns (each asset scaled by `scale`, after removing `center`)
/// from each of `paths` to its two nearest rows of `train`, both flattened to `dim` values per
/// row. Squared distances come from one matrix product per chunk: |a|² + |b|² − 2 a·b.
pub fn memorization(
    paths: &[f64],
    train: &[f64],
    dim: usize,
    center: &[f64],
    scale: &[f64],
) -> candle_core::Result<Memorization> {
    let n_assets = center.len();
    let standardise = |v: &[f64]| -> Vec<f32> {
        v.iter()
            .enumerate()
            .map(|(i, x)| ((x - center[i % n_assets]) / scale[i % n_assets]) as f32)
            .collect()
    };
    let device = Device::Cpu;
    let t_rows = train.len() / dim;
    let train_t = Tensor::from_vec(standardise(train), (t_rows, dim), &device)?;
    let train_sq: Vec<f32> = train_t.sqr()?.sum(1)?.to_vec1()?;
    let train_tt = train_t.t()?.contiguous()?;
    let p_rows = paths.len() / dim;
    let mut nearest = Vec::with_capacity(p_rows);
    let mut ratios_below = 0usize;
    let chunk = 1024;
    for start in (0..p_rows).step_by(chunk) {
        let end = (start + chunk).min(p_rows);
        let block = Tensor::from_vec(
            standardise(&paths[start * dim..end * dim]),
            (end - start, dim),
            &device,
        )?;
        let block_sq: Vec<f32> = block.sqr()?.sum(1)?.to_vec1()?;
        let dots: Vec<Vec<f32>> = block.matmul(&train_tt)?.to_vec2()?;
        for (r, row) in dots.iter().enumerate() {
            let (mut d1, mut d2) = (f64::INFINITY, f64::INFINITY);
            for (c, dot) in row.iter().enumerate() {
                let d = (block_sq[r] as f64 + train_sq[c] as f64 - 2.0 * *dot as f64).max(0.0);
                if d < d1 {
                    d2 = d1;
                    d1 = d;
                } else if d < d2 {
                    d2 = d;
                }
            }
            let (d1, d2) = (d1.sqrt(), d2.sqrt());
            if d1 < d2 / 3.0 {
                ratios_below += 1;
            }
            nearest.push(d1);
        }
    }
    nearest.sort_by(f64::total_cmp);
    Ok(Memorization {
        paths: p_rows,
        share_ratio_below_third: ratios_below as f64 / p_rows as f64,
        min_distance: nearest[0],
        median_distance: nearest[p_rows / 2],
    })
}
