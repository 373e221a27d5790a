//! Minimum-variance weights: the global minimum-variance portfolio in closed form and the
//! long-only one by a primal active-set quadratic program, with a check of the optimality
//! (Karush–Kuhn–Tucker) conditions that tests and the backtest both use.

use crate::stats::solve_spd;

/// w = Σ⁻¹1 / 1ᵀΣ⁻¹1, the fully invested portfolio of least variance (shorts allowed); `None`
/// when Σ is not positive definite.
pub fn global_min_variance(cov: &[f64], n: usize) -> Option<Vec<f64>> {
    let x = solve_spd(cov, n, &vec![1.0; n])?;
    let total: f64 = x.iter().sum();
    Some(x.iter().map(|v| v / total).collect())
}

/// The minimum of wᵀΣw subject to Σw = 1 and w ≥ 0, by a primal active-set method: start from
/// equal weights; on the assets not held at zero solve the budget-constrained problem in closed
/// form; step towards it until a weight hits zero (that asset joins the zero set); at the
/// subproblem's solution release the zero-held asset whose bound multiplier is most negative,
/// or stop when none is — then the KKT conditions hold. `None` when Σ is not positive definite.
pub fn long_only_min_variance(cov: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut w = vec![1.0 / n as f64; n];
    let mut at_zero = vec![false; n];
    // Each pass either adds an asset to the zero set or leaves a subproblem optimum for a
    // strictly lower objective, so the method ends; the cap only guards against rounding loops.
    for _ in 0..(50 * n + 100) {
        let free: Vec<usize> = (0..n).filter(|&i| !at_zero[i]).collect();
        let sub: Vec<f64> = free
            .iter()
            .flat_map(|&i| free.iter().map(move |&j| cov[i * n + j]))
            .collect();
        let target = global_min_variance(&sub, free.len())?;
        let direction: Vec<f64> = free.iter().zip(&target).map(|(&i, t)| t - w[i]).collect();
        // The longest step along the direction that keeps every free weight non-negative.
        let mut step = 1.0;
        let mut blocking = None;
        for (k, &i) in free.iter().enumerate() {
            if direction[k] < 0.0 {
                let ratio = w[i] / -direction[k];
                if ratio < step {
                    step = ratio;
                    blocking = Some(i);
                }
            }
        }
        for (k, &i) in free.iter().enumerate() {
            w[i] = if blocking.is_none() {
                target[k]
            } else {
                (w[i] + step * direction[k]).max(0.0)
            };
        }
        if let Some(i) = blocking {
            w[i] = 0.0;
            at_zero[i] = true;
            continue;
        }
        let kkt = kkt_conditions(cov, n, &w);
        let release = (0..n)
            .filter(|&i| at_zero[i])
            .map(|i| (i, kkt.multipliers[i]))
            .filter(|(_, m)| *m < -1e-12 * kkt.scale)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match release {
            Some((i, _)) => at_zero[i] = false,
            None => return Some(w),
        }
    }
    None
}

/// The first-order conditions of min wᵀΣw s.t. Σw = 1, w ≥ 0 at `w`: with g = Σw and λ the
/// budget multiplier (the mean of g over held assets), the bound multipliers μᵢ = gᵢ − λ must be
/// ≥ 0, and μᵢ = 0 wherever wᵢ > 0.
#[derive(Debug, Clone)]
pub struct KktConditions {
    /// |Σw − 1|.
    pub budget_error: f64,
    /// The smallest weight (must be ≥ 0).
    pub min_weight: f64,
    /// μᵢ = (Σw)ᵢ − λ for every asset.
    pub multipliers: Vec<f64>,
    /// max |μᵢ| over assets with wᵢ > 0, relative to `scale` (stationarity).
    pub stationarity: f64,
    /// max(0, −min μᵢ), relative to `scale` (dual feasibility).
    pub dual_infeasibility: f64,
    /// max |Σw|ᵢ, the scale the relative figures use.
    pub scale: f64,
}

impl KktConditions {
    /// The largest violation among budget, sign, stationarity and dual feasibility.
    pub fn worst_violation(&self) -> f64 {
        self.budget_error
            .max(-self.min_weight)
            .max(self.stationarity)
            .max(self.dual_infeasibility)
    }
}

/// Evaluates [`KktConditions`] at `w`.
pub fn kkt_conditions(cov: &[f64], n: usize, w: &[f64]) -> KktConditions {
    let g: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| cov[i * n + j] * w[j]).sum())
        .collect();
    let held: Vec<usize> = (0..n).filter(|&i| w[i] > 0.0).collect();
    let lambda = held.iter().map(|&i| g[i]).sum::<f64>() / held.len().max(1) as f64;
    let multipliers: Vec<f64> = g.iter().map(|v| v - lambda).collect();
    let scale = g
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    KktConditions {
        budget_error: (w.iter().sum::<f64>() - 1.0).abs(),
        min_weight: w.iter().copied().fold(f64::INFINITY, f64::min),
        stationarity: held
            .iter()
            .map(|&i| multipliers[i].abs())
            .fold(0.0, f64::max)
            / scale,
        dual_infeasibility: multipliers.iter().map(|m| -m).fold(0.0, f64::max) / scale,
        multipliers,
        scale,
    }
}
