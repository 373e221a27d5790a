//! How volatility is spread over many short paths stored one after another: how much a path's
//! volatility differs from one path to the next, and how heavy the tails are once each path is
//! scaled by its own volatility. Together they tell apart the two sources of a set's fat tails:
//! calm and turbulent paths pooled (between paths) and jumps inside a path (within).

use super::{excess_kurtosis, mean, std_dev};

/// Coefficient of variation (std / mean, both ddof 1) of the paths' own standard deviations
/// (ddof 1) over paths of `len` values. For i.i.d. Gaussian values it is only the sampling noise
/// of a `len`-day standard deviation, about 1 / √(2 (len − 1)): 0.131 for 30 days.
pub fn path_vol_dispersion(values: &[f64], len: usize) -> f64 {
    let vols: Vec<f64> = values.chunks(len).map(|p| std_dev(p, 1)).collect();
    std_dev(&vols, 1) / mean(&vols)
}

/// Excess kurtosis (biased, as `excess_kurtosis`) of all values, each path centred and divided
/// by its own standard deviation first; paths with no variation are left out.
pub fn within_path_kurtosis(values: &[f64], len: usize) -> f64 {
    let mut scaled = Vec::with_capacity(values.len());
    for path in values.chunks(len) {
        let (m, s) = (mean(path), std_dev(path, 1));
        if s > 0.0 {
            scaled.extend(path.iter().map(|v| (v - m) / s));
        }
    }
    excess_kurtosis(&scaled)
}
