//! Two-sample tests with SciPy's definitions: Kolmogorov–Smirnov (`ks_2samp`, exact and
//! asymptotic p-values) and Cramér–von Mises (`cramervonmises_2samp`, asymptotic p-value).

use std::f64::consts::PI;

use super::kolmogorov::kstwo_sf;

/// A statistic and its p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TestResult {
    pub statistic: f64,
    pub pvalue: f64,
}

/// How the KS p-value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KsMethod {
    /// Exact, by counting lattice paths (small samples).
    Exact,
    /// SciPy's `method='asymp'`: the one-sample distribution with n = round(mn / (m + n)).
    Asymptotic,
}

fn sorted(x: &[f64]) -> Vec<f64> {
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// D = sup |F_x − F_y|, ties handled by evaluating both empirical CDFs at every data point.
pub fn ks_statistic(x: &[f64], y: &[f64]) -> f64 {
    let (xs, ys) = (sorted(x), sorted(y));
    let (n, m) = (xs.len() as f64, ys.len() as f64);
    let (mut i, mut j) = (0, 0);
    let mut d = 0f64;
    while i < xs.len() || j < ys.len() {
        let v = match (xs.get(i), ys.get(j)) {
            (Some(a), Some(b)) => a.min(*b),
            (Some(a), None) => *a,
            (None, Some(b)) => *b,
            (None, None) => break,
        };
        while i < xs.len() && xs[i] <= v {
            i += 1;
        }
        while j < ys.len() && ys[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

/// Two-sided two-sample KS test.
pub fn ks_2samp(x: &[f64], y: &[f64], method: KsMethod) -> TestResult {
    let d = ks_statistic(x, y);
    // D = 0 (identical samples): the p-value is 1; some library loops never end there.
    if d == 0.0 {
        return TestResult {
            statistic: 0.0,
            pvalue: 1.0,
        };
    }
    let (n1, n2) = (x.len() as u64, y.len() as u64);
    let pvalue = match method {
        KsMethod::Exact => ks_exact_sf(n1, n2, d),
        KsMethod::Asymptotic => {
            let (m, n) = (n1.max(n2) as f64, n1.min(n2) as f64);
            let en = (m * n / (m + n)).round() as u64;
            kstwo_sf(en, d)
        }
    };
    TestResult {
        statistic: d,
        pvalue,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Exact P(D >= d) under the null: one minus the probability that a uniformly random lattice
/// path from (0, 0) to (m, n) stays strictly inside |i/m − j/n| < d (integer arithmetic on the
/// lcm grid, as SciPy does).
pub fn ks_exact_sf(m: u64, n: u64, d: f64) -> f64 {
    let lcm = m / gcd(m, n) * n;
    let h = (d * lcm as f64).round() as i64;
    let (sm, sn) = ((lcm / m) as i64, (lcm / n) as i64);
    let (m, n) = (m as usize, n as usize);
    // prob[j]: probability of being at (i, j) having stayed inside; each step moves in i with
    // probability (m - i) / (m - i + n - j), as a uniform random path does.
    let inside = |i: usize, j: usize| (i as i64 * sm - j as i64 * sn).abs() < h;
    let mut prob = vec![0.0f64; n + 1];
    prob[0] = 1.0;
    for i in 0..=m {
        for j in 0..=n {
            if i == 0 && j == 0 {
                continue;
            }
            let mut p = 0.0;
            if j > 0 {
                // from (i, j - 1), a step in j
                let (ri, rj) = ((m - i) as f64, (n - j + 1) as f64);
                p += prob[j - 1] * rj / (ri + rj);
            }
            if i > 0 {
                // from (i - 1, j), a step in i: prob[j] still holds row i - 1
                let (ri, rj) = ((m - i + 1) as f64, (n - j) as f64);
                p += prob[j] * ri / (ri + rj);
            }
            prob[j] = if inside(i, j) { p } else { 0.0 };
        }
    }
    (1.0 - prob[n]).clamp(0.0, 1.0)
}

/// Ranks 1..=n with ties given their average rank (SciPy `rankdata(method='average')`).
pub fn average_ranks(z: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..z.len()).collect();
    order.sort_by(|&a, &b| z[a].total_cmp(&z[b]));
    let mut ranks = vec![0.0; z.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && z[order[end]] == z[order[start]] {
            end += 1;
        }
        let avg = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            ranks[k] = avg;
        }
        start = end;
    }
    ranks
}

/// Two-sample Cramér–von Mises test (Anderson 1962) with SciPy's asymptotic p-value.
pub fn cvm_2samp(x: &[f64], y: &[f64]) -> TestResult {
    let (xs, ys) = (sorted(x), sorted(y));
    let (nx, ny) = (xs.len(), ys.len());
    let z: Vec<f64> = xs.iter().chain(&ys).copied().collect();
    let r = average_ranks(&z);
    let u = nx as f64
        * (0..nx)
            .map(|i| (r[i] - (i + 1) as f64).powi(2))
            .sum::<f64>()
        + ny as f64
            * (0..ny)
                .map(|i| (r[nx + i] - (i + 1) as f64).powi(2))
                .sum::<f64>();
    let (nxf, nyf) = (nx as f64, ny as f64);
    let (k, n) = (nxf * nyf, nxf + nyf);
    let t = u / (k * n) - (4.0 * k - 1.0) / (6.0 * n);
    let et = (1.0 + 1.0 / n) / 6.0;
    let vt = (n + 1.0) * (4.0 * k * n - 3.0 * (nxf * nxf + nyf * nyf) - 2.0 * k)
        / (45.0 * n * n * 4.0 * k);
    let tn = 1.0 / 6.0 + (t - et) / (45.0 * vt).sqrt();
    let pvalue = if tn < 0.003 {
        1.0
    } else {
        (1.0 - cvm_limit_cdf(tn)).max(0.0)
    };
    TestResult {
        statistic: t,
        pvalue,
    }
}

/// CDF of the limiting Cramér–von Mises distribution (Csörgő & Faraway 1996, eq. 1.2), summed
/// until a term falls below 1e-7, as SciPy does.
fn cvm_limit_cdf(x: f64) -> f64 {
    use statrs::function::gamma::ln_gamma;
    let mut total = 0.0;
    let mut k = 0.0;
    loop {
        let u = (ln_gamma(k + 0.5) - ln_gamma(k + 1.0)).exp() / (PI.powf(1.5) * x.sqrt());
        let y = 4.0 * k + 1.0;
        let q = y * y / (16.0 * x);
        let term = u * y.sqrt() * (-q).exp() * bessel_k(0.25, q);
        total += term;
        if term.abs() < 1e-7 {
            return total;
        }
        k += 1.0;
    }
}

/// Modified Bessel function of the second kind K_ν(x), x > 0, from its integral
/// ∫₀^∞ exp(−x cosh t) cosh(ν t) dt by the trapezoid rule, which converges geometrically for
/// this analytic, fast-decaying integrand.
pub fn bessel_k(nu: f64, x: f64) -> f64 {
    let h: f64 = 0.02;
    let mut sum = 0.5 * (-x).exp();
    let mut t = h;
    loop {
        let v = (-x * t.cosh()).exp() * (nu * t).cosh();
        sum += v;
        if v < 1e-300 || (v < 1e-18 * sum && x * t.cosh() > 50.0) {
            break;
        }
        t += h;
    }
    sum * h
}
