//! Training data: the train-split windows of a windows file, standardised per asset, split by
//! date into fitting and validation parts, and turned into (batch, assets, padded_len) tensors.

use candle_core::{Device, Result, Tensor};

use crate::data::{SplitChoice, WindowSet};
use crate::model::{IdiosyncraticJumps, Layout, Normalisation};

/// Windows ready for the network: standardised, channel-major, zero-padded.
pub struct Dataset {
    pub assets: usize,
    pub window: usize,
    pub padded: usize,
    /// `len * assets * padded` values.
    pub values: Vec<f32>,
    pub regimes: Vec<u32>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.regimes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regimes.is_empty()
    }

    /// The windows `indices` of `set`, standardised with `norm`, padded to `padded` days.
    pub fn from_windows(
        set: &WindowSet,
        indices: &[usize],
        norm: &Normalisation,
        padded: usize,
    ) -> Self {
        let (l, n) = (set.window, set.assets.len());
        let mut values = vec![0f32; indices.len() * n * padded];
        for (k, &w) in indices.iter().enumerate() {
            let src = set.window_values(w);
            let dst = &mut values[k * n * padded..(k + 1) * n * padded];
            for day in 0..l {
                for a in 0..n {
                    dst[a * padded + day] =
                        ((src[day * n + a] - norm.mean[a]) / norm.std[a]) as f32;
                }
            }
        }
        Self {
            assets: n,
            window: l,
            padded,
            values,
            regimes: indices
                .iter()
                .map(|&w| set.windows[w].regime as u32)
                .collect(),
        }
    }

    /// Each regime's idiosyncratic jumps fitted on these windows (`regimes` of them).
    pub fn fit_jumps(&self, regimes: usize) -> IdiosyncraticJumps {
        IdiosyncraticJumps::fit(&self.values, &self.regimes, regimes, self.layout())
    }

    /// Takes each window's expected jumps out.
    pub fn remove_jumps(&mut self, jumps: &IdiosyncraticJumps) {
        let layout = self.layout();
        jumps.remove(&mut self.values, &self.regimes, layout);
    }

    fn layout(&self) -> Layout {
        Layout::windows(self.assets, self.window, self.padded)
    }

    /// A (batch, assets, padded) tensor of the windows `rows`.
    pub fn batch(&self, rows: &[usize], device: &Device) -> Result<Tensor> {
        let size = self.assets * self.padded;
        let mut data = Vec::with_capacity(rows.len() * size);
        for &r in rows {
            data.extend_from_slice(&self.values[r * size..(r + 1) * size]);
        }
        Tensor::from_vec(data, (rows.len(), self.assets, self.padded), device)
    }
}

/// Per-asset mean and standard deviation of the daily returns of `indices`.
pub fn fit_normalisation(set: &WindowSet, indices: &[usize]) -> Normalisation {
    let n = set.assets.len();
    let mut sum = vec![0f64; n];
    let mut sq = vec![0f64; n];
    let mut count = 0f64;
    for &w in indices {
        for day in set.window_values(w).chunks(n) {
            for a in 0..n {
                sum[a] += day[a];
                sq[a] += day[a] * day[a];
            }
            count += 1.0;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let std: Vec<f64> = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| {
            ((q / count - m * m) * count / (count - 1.0))
                .max(1e-12)
                .sqrt()
        })
        .collect();
    let mut clip = 0f64;
    for &w in indices {
        for day in set.window_values(w).chunks(n) {
            for a in 0..n {
                clip = clip.max(((day[a] - mean[a]) / std[a]).abs());
            }
        }
    }
    Normalisation { mean, std, clip }
}

/// Train-split windows divided by date: the earliest `1 - validation_fraction` for fitting, the
/// rest for validation. Windows overlapping the boundary are dropped so validation days are
/// never seen in fitting.
pub fn split_train_validation(
    set: &WindowSet,
    test_from: i32,
    validation_fraction: f64,
) -> (Vec<usize>, Vec<usize>) {
    let train = set.select(None, SplitChoice::Train, test_from);
    if train.is_empty() {
        return (vec![], vec![]);
    }
    let cut = ((1.0 - validation_fraction) * train.len() as f64).round() as usize;
    let cut = cut.clamp(1, train.len());
    if cut == train.len() {
        return (train, vec![]);
    }
    let boundary = set.windows[train[cut]].start_date;
    let fit = train[..cut]
        .iter()
        .copied()
        .filter(|&w| set.windows[w].end_date < boundary)
        .collect();
    (fit, train[cut..].to_vec())
}
