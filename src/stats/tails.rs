//! Historical value at risk and expected shortfall, as losses (positive numbers).

/// How many of `n` outcomes form the tail at level `alpha` (e.g. 0.99): ceil((1 − alpha) n),
/// at least 1.
pub fn tail_count(n: usize, alpha: f64) -> usize {
    // A tiny slack keeps e.g. (1 - 0.95) * 8312 = 415.6000000001 from rounding up to 417.
    ((((1.0 - alpha) * n as f64) - 1e-9).ceil().max(1.0) as usize).min(n)
}

/// VaR and CVaR at level `alpha` (e.g. 0.99): with k = [`tail_count`], VaR is minus the k-th
/// smallest return and CVaR minus the mean of the k smallest. Linear time (a selection, not a
/// sort), so that bootstrap intervals stay cheap.
pub fn var_cvar(returns: &[f64], alpha: f64) -> (f64, f64) {
    let mut s = returns.to_vec();
    let k = tail_count(s.len(), alpha);
    let (smaller, kth, _) = s.select_nth_unstable_by(k - 1, f64::total_cmp);
    let var = -*kth;
    let cvar = -(smaller.iter().sum::<f64>() + *kth) / k as f64;
    (var, cvar)
}

/// Indices of the [`tail_count`] smallest of `returns` (the outcomes that make up the CVaR), in
/// no particular order.
pub fn tail_indices(returns: &[f64], alpha: f64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..returns.len()).collect();
    let k = tail_count(returns.len(), alpha);
    order.select_nth_unstable_by(k - 1, |&a, &b| returns[a].total_cmp(&returns[b]));
    order.truncate(k);
    order
}
