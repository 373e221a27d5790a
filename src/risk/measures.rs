//! Profit and loss of a buy-and-hold portfolio along return paths, and its tail measures: VaR
//! and CVaR with bootstrap intervals, and each position's share of the CVaR.

use serde::Serialize;

use crate::rng::SeededRng;
use crate::stats::{mean, quantile, std_dev, tail_indices, var_cvar};

/// Two-sided coverage of the bootstrap intervals.
pub const INTERVAL_COVERAGE: f64 = 0.95;

/// P&L of every path after `horizon` days: `total[p]` and, position by position,
/// `by_position[p * positions + i]`.
pub struct HorizonPnl {
    pub total: Vec<f64>,
    pub by_position: Vec<f64>,
}

/// The P&L of holding `exposures` ((asset column, market value) per position) from the start of
/// each path of daily log returns `values` (paths of `window * assets`, day-major) for `horizon`
/// days without trading: position i gains v_i (exp(Σ_{d < horizon} r_{a_i, d}) − 1).
pub fn horizon_pnl(
    values: &[f64],
    window: usize,
    assets: usize,
    exposures: &[(usize, f64)],
    horizon: usize,
) -> HorizonPnl {
    let paths = values.len() / (window * assets);
    let mut total = Vec::with_capacity(paths);
    let mut by_position = Vec::with_capacity(paths * exposures.len());
    for path in values.chunks_exact(window * assets) {
        let mut sum = 0.0;
        for &(column, value) in exposures {
            let log_return: f64 = (0..horizon).map(|d| path[d * assets + column]).sum();
            let pnl = value * log_return.exp_m1();
            by_position.push(pnl);
            sum += pnl;
        }
        total.push(sum);
    }
    HorizonPnl { total, by_position }
}

/// Tail measures of a P&L distribution at one confidence level, as losses (positive numbers).
#[derive(Debug, Clone, Serialize)]
pub struct TailRisk {
    pub level: f64,
    pub var: f64,
    pub cvar: f64,
    /// Percentile bootstrap interval of the VaR, of coverage [`INTERVAL_COVERAGE`]; none for
    /// real windows, which overlap and so are not independent draws.
    pub var_interval: Option<[f64; 2]>,
    pub cvar_interval: Option<[f64; 2]>,
    /// Each position's mean loss over the paths that make up the CVaR (its Euler contribution):
    /// they add up to the CVaR.
    pub contributions: Vec<f64>,
}

/// The P&L distribution over one horizon.
#[derive(Debug, Clone, Serialize)]
pub struct HorizonRisk {
    pub days: usize,
    pub mean: f64,
    pub std_dev: f64,
    /// The largest loss, and the path (or real window) it came from.
    pub worst_loss: f64,
    pub worst_path: u32,
    pub tails: Vec<TailRisk>,
}

/// VaR, CVaR and contributions of `pnl` at each of `levels`, with bootstrap intervals from
/// `resamples` resamples of the paths drawn from `rng` when it is given. `ids` name the paths.
pub fn horizon_risk(
    days: usize,
    pnl: &HorizonPnl,
    ids: &[u32],
    levels: &[f64],
    resamples: usize,
    rng: Option<&mut SeededRng>,
) -> HorizonRisk {
    let total = &pnl.total;
    let positions = pnl.by_position.len() / total.len();
    let intervals = rng.map(|rng| bootstrap_intervals(total, levels, resamples, rng));
    let tails = levels
        .iter()
        .enumerate()
        .map(|(l, &level)| {
            let (var, cvar) = var_cvar(total, level);
            let tail = tail_indices(total, level);
            let contributions = (0..positions)
                .map(|i| {
                    -tail
                        .iter()
                        .map(|&p| pnl.by_position[p * positions + i])
                        .sum::<f64>()
                        / tail.len() as f64
                })
                .collect();
            TailRisk {
                level,
                var,
                cvar,
                var_interval: intervals.as_ref().map(|i| i[l].0),
                cvar_interval: intervals.as_ref().map(|i| i[l].1),
                contributions,
            }
        })
        .collect();
    let worst = (0..total.len())
        .min_by(|&a, &b| total[a].total_cmp(&total[b]))
        .expect("at least one path");
    HorizonRisk {
        days,
        mean: mean(total),
        std_dev: std_dev(total, 1),
        worst_loss: -total[worst],
        worst_path: ids[worst],
        tails,
    }
}

/// Percentile intervals of VaR and CVaR at each level over `resamples` resamples (with
/// replacement) of `pnl`.
fn bootstrap_intervals(
    pnl: &[f64],
    levels: &[f64],
    resamples: usize,
    rng: &mut SeededRng,
) -> Vec<([f64; 2], [f64; 2])> {
    let n = pnl.len();
    let mut vars = vec![Vec::with_capacity(resamples); levels.len()];
    let mut cvars = vec![Vec::with_capacity(resamples); levels.len()];
    let mut sample = vec![0.0; n];
    for _ in 0..resamples {
        for s in sample.iter_mut() {
            *s = pnl[rng.below(n)];
        }
        for (l, &level) in levels.iter().enumerate() {
            let (var, cvar) = var_cvar(&sample, level);
            vars[l].push(var);
            cvars[l].push(cvar);
        }
    }
    let tail = (1.0 - INTERVAL_COVERAGE) / 2.0;
    let interval = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        [quantile(&v, tail), quantile(&v, 1.0 - tail)]
    };
    vars.into_iter()
        .zip(cvars)
        .map(|(v, c)| (interval(v), interval(c)))
        .collect()
}
