//! Autocorrelation: the statsmodels definition for one series, and the same estimator pooled
//! over many short paths (cross-products only within a path, one common mean and variance).

/// statsmodels `acf(x, nlags, adjusted=False, fft=False)`: lags 0..=nlags.
pub fn acf(x: &[f64], nlags: usize) -> Vec<f64> {
    pooled_acf(x, x.len(), nlags)
}

/// Autocorrelation of many paths of `len` values each, stored one after another: the mean and
/// the denominator are those of all values; lag-k cross-products are summed only within paths.
pub fn pooled_acf(values: &[f64], len: usize, nlags: usize) -> Vec<f64> {
    let n = values.len() as f64;
    let m = values.iter().sum::<f64>() / n;
    let d: Vec<f64> = values.iter().map(|v| v - m).collect();
    let denom: f64 = d.iter().map(|v| v * v).sum();
    (0..=nlags)
        .map(|k| {
            let mut s = 0.0;
            for path in d.chunks(len) {
                for t in k..path.len() {
                    s += path[t] * path[t - k];
                }
            }
            s / denom
        })
        .collect()
}
