//! Historical value at risk and expected shortfall, as losses (positive numbers).

/// VaR and CVaR at level `alpha` (e.g. 0.99): with k = ceil((1 − alpha) n), VaR is minus the
/// k-th smallest return and CVaR minus the mean of the k smallest.
pub fn var_cvar(returns: &[f64], alpha: f64) -> (f64, f64) {
    let mut s = returns.to_vec();
    s.sort_by(f64::total_cmp);
    // A tiny slack keeps e.g. (1 - 0.95) * 8312 = 415.6000000001 from rounding up to 417.
    let k = (((1.0 - alpha) * s.len() as f64) - 1e-9).ceil().max(1.0) as usize;
    let var = -s[k - 1];
    let cvar = -s[..k].iter().sum::<f64>() / k as f64;
    (var, cvar)
}
