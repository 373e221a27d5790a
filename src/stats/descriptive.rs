//! Moments and quantiles with the conventions of NumPy / SciPy, so figures can be checked
//! against them.

/// Arithmetic mean; NaN for an empty slice.
pub fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Variance with `ddof` degrees of freedom removed (1 for the sample variance).
pub fn variance(x: &[f64], ddof: usize) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - ddof as f64)
}

/// The variance (ddof 1) of each column of row-major `rows` with `n` columns.
pub fn column_variances(rows: &[f64], n: usize) -> Vec<f64> {
    (0..n)
        .map(|a| {
            variance(
                &rows.iter().skip(a).step_by(n).copied().collect::<Vec<_>>(),
                1,
            )
        })
        .collect()
}

/// Standard deviation with `ddof` degrees of freedom removed.
pub fn std_dev(x: &[f64], ddof: usize) -> f64 {
    variance(x, ddof).sqrt()
}

/// Biased sample skewness m3 / m2^1.5 (SciPy `skew(bias=True)`).
pub fn skewness(x: &[f64]) -> f64 {
    let (m2, m3, _) = central_moments(x);
    m3 / m2.powf(1.5)
}

/// Biased excess kurtosis m4 / m2^2 - 3 (SciPy `kurtosis(bias=True)`).
pub fn excess_kurtosis(x: &[f64]) -> f64 {
    let (m2, _, m4) = central_moments(x);
    m4 / (m2 * m2) - 3.0
}

fn central_moments(x: &[f64]) -> (f64, f64, f64) {
    let m = mean(x);
    let n = x.len() as f64;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for v in x {
        let d = v - m;
        let d2 = d * d;
        m2 += d2;
        m3 += d2 * d;
        m4 += d2 * d2;
    }
    (m2 / n, m3 / n, m4 / n)
}

/// Quantile `q` in [0, 1] of already sorted data by linear interpolation between order
/// statistics (NumPy's default, `method="linear"`).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "quantile of an empty sample");
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_numpy() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&x, 0.0), 1.0);
        assert_eq!(quantile(&x, 1.0), 4.0);
        // numpy.quantile([1,2,3,4], 0.1) = 1.3
        assert!((quantile(&x, 0.1) - 1.3).abs() < 1e-12);
    }

    #[test]
    fn moments_of_a_small_sample() {
        let x = [1.0, 2.0, 3.0, 10.0];
        assert!((mean(&x) - 4.0).abs() < 1e-12);
        assert!((variance(&x, 1) - 50.0 / 3.0).abs() < 1e-12);
        // scipy.stats.skew([1, 2, 3, 10]): m3 / m2^1.5 = 45 / 12.5^1.5
        assert!((skewness(&x) - 1.018_233_764_908_628_4).abs() < 1e-9);
    }
}
