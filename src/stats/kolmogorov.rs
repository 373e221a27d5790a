//! The distribution of the one-sample Kolmogorov–Smirnov statistic D_n, as SciPy's `kstwo`
//! computes it (`scipy.stats._ksstats._kolmogn`): exact where SciPy is exact (the Durbin matrix
//! of Marsaglia, Tsang & Wang 2003, and Smirnov's one-sided formula), the Pelz–Good (1976)
//! expansion where SciPy uses it, so that p-values match SciPy's to about 1e-9.

use std::f64::consts::PI;

/// P(D_n >= x), the survival function of `kstwo(n)`.
pub fn kstwo_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        // Ruben–Gambino: P(D_n <= x) = n! / n^n (2t - 1)^n for 1/2n <= x <= 1/n.
        let log_cdf = log_factorial(n) - nf * nf.ln() + nf * (2.0 * t - 1.0).ln();
        return clip(1.0 - log_cdf.exp());
    }
    if t >= nf - 1.0 {
        return clip(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let nx2 = t * x;
    if n <= 140 {
        if nx2 <= 4.0 {
            return clip(1.0 - durbin_cdf(n, x));
        }
        return clip(2.0 * smirnov_sf(n, x));
    }
    if nx2 >= 370.0 {
        return 0.0;
    }
    if nx2 >= 2.2 {
        return clip(2.0 * smirnov_sf(n, x));
    }
    let cdf = if nx2 >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        durbin_cdf(n, x)
    } else {
        pelz_good_cdf(n, x)
    };
    clip(1.0 - cdf)
}

fn clip(p: f64) -> f64 {
    p.clamp(0.0, 1.0)
}

fn log_factorial(n: u64) -> f64 {
    statrs::function::gamma::ln_gamma(n as f64 + 1.0)
}

/// Smirnov's one-sided P(D_n^+ >= x), by the Birnbaum–Tingey sum in log space.
pub fn smirnov_sf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let jmax = (nf * (1.0 - x)).floor() as u64;
    let mut total = 0.0;
    for j in 0..=jmax {
        let jf = j as f64;
        let a = 1.0 - x - jf / nf;
        let b = x + jf / nf;
        if a <= 0.0 {
            continue;
        }
        let log_binom = log_factorial(n) - log_factorial(j) - log_factorial(n - j);
        total += (log_binom + (nf - jf) * a.ln() + (jf - 1.0) * b.ln()).exp();
    }
    x * total
}

/// Exact P(D_n < x) by the Durbin matrix (Marsaglia, Tsang & Wang 2003), with the matrix power
/// computed by squaring and rescaling to avoid overflow.
pub fn durbin_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let k = (nf * x).floor() as usize + 1;
    let m = 2 * k - 1;
    let h = k as f64 - nf * x;
    let mut a = vec![0.0; m * m];
    for i in 0..m {
        for j in 0..m {
            if i + 1 >= j {
                a[i * m + j] = 1.0;
            }
        }
    }
    for i in 0..m {
        a[i * m] -= h.powi(i as i32 + 1);
        a[(m - 1) * m + i] -= h.powi((m - i) as i32);
    }
    a[(m - 1) * m] += if 2.0 * h - 1.0 > 0.0 {
        (2.0 * h - 1.0).powi(m as i32)
    } else {
        0.0
    };
    for i in 0..m {
        for j in 0..m {
            if i + 1 >= j {
                let f = i + 1 - j;
                for g in 1..=f {
                    a[i * m + j] /= g as f64;
                }
            }
        }
    }
    let (q, exponent) = matrix_power(&a, m, n);
    let mut s = q[(k - 1) * m + (k - 1)];
    let mut e = exponent;
    for i in 1..=n {
        s *= i as f64 / nf;
        if s < 1e-140 {
            s *= 1e140;
            e -= 140;
        }
    }
    s * 10f64.powi(e)
}

fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..m {
                c[i * m + j] += aik * b[k * m + j];
            }
        }
    }
    c
}

/// `a`^`n` as (matrix, decimal exponent): the true power is matrix * 10^exponent.
fn matrix_power(a: &[f64], m: usize, n: u64) -> (Vec<f64>, i32) {
    if n == 1 {
        return (a.to_vec(), 0);
    }
    let (half, e) = matrix_power(a, m, n / 2);
    let mut b = matmul(&half, &half, m);
    let mut eb = 2 * e;
    if n % 2 == 1 {
        b = matmul(a, &b, m);
    }
    if b[(m / 2) * m + m / 2] > 1e140 {
        b.iter_mut().for_each(|v| *v *= 1e-140);
        eb += 140;
    }
    (b, eb)
}

/// The Pelz–Good (1976) approximation of P(D_n <= x), as SciPy evaluates it.
pub fn pelz_good_cdf(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (z2, z3, z4, z6) = (z * z, z.powi(3), z.powi(4), z.powi(6));
    let pi2 = PI * PI;
    let (pi4, pi6) = (pi2 * pi2, pi2 * pi2 * pi2);
    let qlog = -pi2 / 8.0 / z2;
    if qlog < -708.0 {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -z2;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * z6 + 2.0 * z4;
    let k2b = (2.0 * z4 - 5.0 * z2) * pi2 / 4.0;
    let k2c = pi4 * (1.0 - 2.0 * z2) / 16.0;
    let k3d = pi6 * (5.0 - 30.0 * z2) / 64.0;
    let k3c = pi4 * (-60.0 * z2 + 212.0 * z4) / 16.0;
    let k3b = pi2 * (135.0 * z4 - 96.0 * z6) / 4.0;
    let k3a = -30.0 * z6 - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (m2, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        ];
        for i in 0..4 {
            k[i] = k[i] * qpower + coeffs[i];
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let denoms = [z, 6.0 * z4, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for i in 0..4 {
        k[i] *= q * sqrt2pi / denoms[i];
    }
    let q2 = (-pi2 / 2.0 / z2).exp();
    let (mut k2extra, mut k3extra) = (0.0, 0.0);
    let sqrt3z = 3f64.sqrt() * z;
    for kk in (1..=maxk).rev() {
        let kf = kk as f64;
        let qp = q2.powf(kf * kf);
        k2extra += kf * kf * qp;
        let kspi = PI * kf;
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * kf * kf * qp;
    }
    k[2] += k2extra * pi2 * sqrt2pi / (-36.0 * z3);
    k[3] += k3extra * pi2 * sqrt2pi / (216.0 * z6);
    (0..4).map(|i| k[i] / nf.powf(i as f64 / 2.0)).sum()
}
