//! Tests of a VaR forecast's exceedances (days whose loss was larger than the forecast VaR):
//! Kupiec's proportion of failures, Christoffersen's independence and their conditional
//! coverage sum, and the Basel traffic-light zone. Likelihood ratios are asymptotically χ²;
//! with a handful of expected exceedances their p-values are indicative.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A likelihood-ratio statistic and its asymptotic χ² p-value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LikelihoodRatio {
    pub statistic: f64,
    pub degrees_of_freedom: u32,
    pub p_value: f64,
}

impl LikelihoodRatio {
    fn chi_squared(statistic: f64, degrees_of_freedom: u32) -> Self {
        // Rounding can leave a true zero a hair below it.
        let statistic = statistic.max(0.0);
        let p_value = ChiSquared::new(degrees_of_freedom as f64)
            .expect("positive degrees of freedom")
            .sf(statistic);
        Self {
            statistic,
            degrees_of_freedom,
            p_value,
        }
    }
}

/// x ln(p), with 0 ln 0 = 0: the log-likelihood term of `x` outcomes of probability `p`.
fn xlogy(x: f64, p: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x * p.ln()
    }
}

/// The Bernoulli log-likelihood of `hits` successes in `n` trials at probability `p`.
fn bernoulli_log_likelihood(hits: f64, n: f64, p: f64) -> f64 {
    xlogy(hits, p) + xlogy(n - hits, 1.0 - p)
}

/// Kupiec's (1995) proportion-of-failures test: are `exceedances` out of `n` days consistent
/// with an exceedance probability `p` (1 − the VaR level)? LR = −2 ln[L(p) / L(x / n)], χ²(1).
pub fn kupiec_pof(n: usize, exceedances: usize, p: f64) -> LikelihoodRatio {
    assert!(exceedances <= n && n > 0, "exceedances within n > 0 days");
    let (n, x) = (n as f64, exceedances as f64);
    let statistic =
        -2.0 * (bernoulli_log_likelihood(x, n, p) - bernoulli_log_likelihood(x, n, x / n));
    LikelihoodRatio::chi_squared(statistic, 1)
}

/// Christoffersen's (1998) independence test: does an exceedance make the next day's more or
/// less likely? The first-order Markov chain of `hits` (transition counts n_ij from state i to
/// j) against independent days of one probability, χ²(1).
pub fn christoffersen_independence(hits: &[bool]) -> LikelihoodRatio {
    let mut n = [[0.0f64; 2]; 2];
    for pair in hits.windows(2) {
        n[pair[0] as usize][pair[1] as usize] += 1.0;
    }
    let from_calm = n[0][0] + n[0][1];
    let from_hit = n[1][0] + n[1][1];
    let pi01 = if from_calm > 0.0 {
        n[0][1] / from_calm
    } else {
        0.0
    };
    let pi11 = if from_hit > 0.0 {
        n[1][1] / from_hit
    } else {
        0.0
    };
    let pi = (n[0][1] + n[1][1]) / (from_calm + from_hit).max(1.0);
    let markov = bernoulli_log_likelihood(n[0][1], from_calm, pi01)
        + bernoulli_log_likelihood(n[1][1], from_hit, pi11);
    let independent = bernoulli_log_likelihood(n[0][1] + n[1][1], from_calm + from_hit, pi);
    LikelihoodRatio::chi_squared(-2.0 * (independent - markov), 1)
}

/// Christoffersen's conditional coverage: the sum of the two statistics above, χ²(2).
pub fn conditional_coverage(
    pof: &LikelihoodRatio,
    independence: &LikelihoodRatio,
) -> LikelihoodRatio {
    LikelihoodRatio::chi_squared(pof.statistic + independence.statistic, 2)
}

/// Days in the Basel backtesting window.
pub const BASEL_DAYS: usize = 250;

/// The Basel Committee's (1996) traffic-light zone of a 1-day 99% VaR model from its
/// exceedances over [`BASEL_DAYS`] days: green up to 4, yellow 5 to 9, red from 10.
pub fn basel_zone(exceedances: usize) -> &'static str {
    match exceedances {
        0..=4 => "green",
        5..=9 => "yellow",
        _ => "red",
    }
}
