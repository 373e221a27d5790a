//! The stationary bootstrap (Politis & Romano 1994) of whole daily cross-sections, with blocks
//! kept inside contiguous stretches of days, and its mean block length chosen by Politis & White
//! (2004) with the correction of Patton, Politis & White (2009), as in the `arch` package.

use std::ops::Range;

use crate::rng::SeededRng;

/// Optimal mean block lengths (stationary, circular) of one series.
pub fn optimal_block_length(x: &[f64]) -> (f64, f64) {
    let n = x.len();
    let nf = n as f64;
    let m = x.iter().sum::<f64>() / nf;
    let eps: Vec<f64> = x.iter().map(|v| v - m).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let b_max = (3.0 * nf.sqrt()).min(nf / 3.0).ceil();
    let kn = 5usize.max(nf.log10() as usize);
    let m_max = nf.sqrt().ceil() as usize + kn;
    let cv = 2.0 * (nf.log10() / nf).sqrt();
    let mut acv = vec![0.0; m_max + 1];
    let mut abs_acorr = vec![0.0; m_max + 1];
    let mut opt_m: Option<usize> = None;
    for i in 0..=m_max {
        let v1 = dot(&eps[i + 1..], &eps[i + 1..]);
        let v2 = dot(&eps[..n - i - 1], &eps[..n - i - 1]);
        let cross = dot(&eps[i..], &eps[..n - i]);
        acv[i] = cross / nf;
        abs_acorr[i] = cross.abs() / (v1 * v2).sqrt();
        if i >= kn && opt_m.is_none() && abs_acorr[i - kn..i].iter().all(|a| *a < cv) {
            opt_m = Some(i - kn);
        }
    }
    let mm = opt_m.map_or(m_max, |o| 2 * o.max(1)).min(m_max);
    let mut g = 0.0;
    let mut lr_acv = acv[0];
    for (k, acv_k) in acv.iter().enumerate().take(mm + 1).skip(1) {
        let ratio = k as f64 / mm as f64;
        let lam = if ratio <= 0.5 {
            1.0
        } else {
            2.0 * (1.0 - ratio)
        };
        g += 2.0 * lam * k as f64 * acv_k;
        lr_acv += 2.0 * lam * acv_k;
    }
    let d_sb = 2.0 * lr_acv * lr_acv;
    let d_cb = 4.0 / 3.0 * lr_acv * lr_acv;
    let b_sb = ((2.0 * g * g) / d_sb).powf(1.0 / 3.0) * nf.powf(1.0 / 3.0);
    // arch keeps 2 g² in the circular numerator too: only the denominators differ.
    let b_cb = ((2.0 * g * g) / d_cb).powf(1.0 / 3.0) * nf.powf(1.0 / 3.0);
    (b_sb.min(b_max), b_cb.min(b_max))
}

/// Day indices of one bootstrap path of `len` days: a block starts at a uniformly drawn day and
/// continues day by day with probability 1 - 1/`mean_block`, or until its stretch ends; then a
/// new block starts.
pub fn stationary_path(
    stretches: &[Range<usize>],
    days: usize,
    len: usize,
    mean_block: f64,
    rng: &mut SeededRng,
) -> Vec<usize> {
    // Which stretch each day belongs to, for the end-of-stretch check.
    let end_of = |d: usize| -> usize {
        let s = stretches.partition_point(|r| r.end <= d);
        stretches[s].end
    };
    let p_new = 1.0 / mean_block.max(1.0);
    let mut out = Vec::with_capacity(len);
    let mut day = rng.below(days);
    out.push(day);
    while out.len() < len {
        if rng.uniform() < p_new || day + 1 >= end_of(day) {
            day = rng.below(days);
        } else {
            day += 1;
        }
        out.push(day);
    }
    out
}
