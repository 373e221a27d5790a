//! Volatility states of the Gaussian prior: a hidden Markov chain over day scales,
//!
//!   state k_d ~ Markov(π_c, P_c),   x_d | k_d ~ N(μ_c, s²_{k_d} Σ_c),   per day d of a window,
//!
//! so that the prior itself has volatility that persists from day to day and jumps between
//! levels: fat-tailed days, windows of different volatility and clustering of |r|, which a single
//! Gaussian per regime cannot give. The best prediction of the noise stays exact: given x_t, the
//! state posteriors γ_d(k) follow from the forward-backward recursion over the window, and
//! ε̂ = Σ_k γ_d(k) ε_G(x_t; s²_k Σ_c) day by day.
//!
//! A state is a pair (level, shock): a volatility level that follows its own Markov chain, times
//! a shock drawn afresh every day (`volatility_chain.rs`, with the recursion that both the fit
//! and the noise prediction use). Fitted on the embedded data, a single chain of six scales
//! spent its largest ones on single-day spikes; with levels and shocks apart, the spikes go to
//! the shocks and the levels persist. After EM, Σ_c is rescaled so that the chain keeps the
//! class's sample covariance (see `fit_volatility_states`). This file fits (π_c, P_c, Σ_c) by EM
//! (Baum–Welch on fixed scale grids) and measures a fitted prior's log-likelihood, by which the
//! number of states was chosen.

use super::EIGENVALUE_FLOOR;
use super::{GaussianPrior, VolatilityChain};
use crate::stats::symmetric_eigen;

/// Smallest and largest persistent volatility level, relative to the fitted Σ_c.
const LEVEL_RANGE: (f64, f64) = (0.4, 2.5);
/// Smallest and largest day shock, multiplying the level: a quiet day to a crash day.
const SHOCK_RANGE: (f64, f64) = (0.6, 2.5);
/// Pseudo-count added to every expected transition, so that no transition becomes impossible in
/// the fit (a zero would make a later window whose path needs it infinitely unlikely).
const TRANSITION_PSEUDO_COUNT: f64 = 0.5;

/// `count` values log-spaced over `range` (1 for a single value).
fn log_grid(count: usize, range: (f64, f64)) -> Vec<f64> {
    if count == 1 {
        return vec![1.0];
    }
    let (lo, hi) = (range.0.ln(), range.1.ln());
    (0..count)
        .map(|k| (lo + (hi - lo) * k as f64 / (count - 1) as f64).exp())
        .collect()
}

/// The day scales of `levels` x `shocks` states, level-major: state `i * shocks + j` has scale
/// level_i * shock_j.
pub fn scale_grid(levels: usize, shocks: usize) -> Vec<f64> {
    let level = log_grid(levels, LEVEL_RANGE);
    let shock = log_grid(shocks, SHOCK_RANGE);
    level
        .iter()
        .flat_map(|l| shock.iter().map(move |s| l * s))
        .collect()
}

impl GaussianPrior {
    /// Replaces each class's single Gaussian by `levels` persistent volatility levels times
    /// `shocks` day shocks (see [`scale_grid`]), fitted by `iterations` EM steps on the same days
    /// [`GaussianPrior::fit`] saw (standardised windows `values`, `labels.len()` of them,
    /// `assets` x `padded`, the first `window` days data). The means stay; the covariance shapes
    /// are refitted, then scaled so that the chain's days keep the class's sample covariance.
    /// Returns each class's log-likelihood per day after every step (EM never
    /// lowers it).
    #[allow(clippy::too_many_arguments)]
    pub fn fit_volatility_states(
        &mut self,
        values: &[f32],
        labels: &[u32],
        assets: usize,
        padded: usize,
        window: usize,
        (levels, shocks): (usize, usize),
        iterations: usize,
    ) -> Vec<Vec<f64>> {
        let scales = scale_grid(levels, shocks);
        let regimes = self.classes() - 1;
        let fit_class = |class: usize| {
            let members = class_windows(values, labels, class, regimes, assets * padded);
            let mut fit = ClassFit::new(
                &self.means[class],
                &self.covariances[class],
                &scales,
                levels,
                shocks,
            );
            let history: Vec<f64> = (0..iterations)
                .map(|_| fit.step(&members, assets, padded, window))
                .collect();
            // The chain's days have covariance E[s²] Σ; Σ is rescaled so that this equals the
            // class's sample covariance. EM's own Σ does not keep it: one scale for all assets
            // is read mostly off the idiosyncratic directions, and on the embedded high-vix
            // days the fitted chain had 26% more equal-weight variance than the data.
            let mean_square = mean_square_scale(&scales, &fit.chain, window);
            let covariance: Vec<f64> = self.covariances[class]
                .iter()
                .map(|v| v / mean_square)
                .collect();
            (covariance, fit.chain, history)
        };
        // Classes are independent: one thread each (the pooled class is as large as the rest).
        let fit_class = &fit_class;
        let fits: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.classes())
                .map(|class| scope.spawn(move || fit_class(class)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a volatility-state fit panicked"))
                .collect()
        });
        let mut chains = Vec::new();
        let mut histories = Vec::new();
        for (class, (covariance, chain, history)) in fits.into_iter().enumerate() {
            self.covariances[class] = covariance;
            chains.push(chain);
            histories.push(history);
        }
        self.scales = scales;
        self.chains = chains;
        histories
    }

    /// The log-likelihood per day of each class's windows under this prior (standardised
    /// windows `values`, `labels.len()` of them, `assets` x `padded`, the first `window` days
    /// data; the last class sees all): a measure of fit on windows it was not fitted to, to
    /// compare numbers of states with. NaN for a class without windows.
    pub fn log_likelihood_per_day(
        &self,
        values: &[f32],
        labels: &[u32],
        assets: usize,
        padded: usize,
        window: usize,
    ) -> Vec<f64> {
        let single = (
            vec![1.0],
            VolatilityChain::from_states(vec![1.0], vec![1.0]),
        );
        (0..self.classes())
            .map(|class| {
                let (scales, chain) = if self.chains.is_empty() {
                    (&single.0, &single.1)
                } else {
                    (&self.scales, &self.chains[class])
                };
                let density =
                    DayDensity::new(&self.means[class], &self.covariances[class], scales, assets);
                let k = scales.len();
                let mut deviations = vec![0.0; window * assets];
                let mut log_emission = vec![0.0; window * k];
                let mut gamma = vec![0.0; window * k];
                let members =
                    class_windows(values, labels, class, self.classes() - 1, assets * padded);
                let total: f64 = members
                    .iter()
                    .map(|w| {
                        density.log_emission(w, padded, &mut deviations, &mut log_emission);
                        chain.forward_backward(&log_emission, window, &mut gamma, None)
                    })
                    .sum();
                total / (members.len() * window) as f64
            })
            .collect()
    }
}

/// The windows of `class` among `values` (each `size` values, labelled `labels`); class
/// `regimes`, the pooled one, has them all.
fn class_windows<'a>(
    values: &'a [f32],
    labels: &[u32],
    class: usize,
    regimes: usize,
    size: usize,
) -> Vec<&'a [f32]> {
    labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| class == regimes || l as usize == class)
        .map(|(w, _)| &values[w * size..(w + 1) * size])
        .collect()
}

/// Log densities of a day under N(μ, s²_k Σ) for every state k, computed in Σ's eigenbasis.
struct DayDensity<'a> {
    mean: &'a [f64],
    scales: &'a [f64],
    lambda: Vec<f64>,
    /// Eigenvectors in columns, row-major.
    u: Vec<f64>,
    /// −½ (n ln 2π + ln |Σ|).
    constant: f64,
}

impl<'a> DayDensity<'a> {
    fn new(mean: &'a [f64], covariance: &[f64], scales: &'a [f64], assets: usize) -> Self {
        let (lambda, u) = symmetric_eigen(covariance, assets);
        let lambda: Vec<f64> = lambda.iter().map(|l| l.max(EIGENVALUE_FLOOR)).collect();
        let log_det: f64 = lambda.iter().map(|l| l.ln()).sum();
        let constant = -0.5 * (assets as f64 * (2.0 * std::f64::consts::PI).ln() + log_det);
        Self {
            mean,
            scales,
            lambda,
            u,
            constant,
        }
    }

    /// Writes each day's deviation from the mean (days x assets) and log density in each state
    /// (days x states) for the window `w` (assets x `padded`); the days are as many as
    /// `deviations` holds.
    fn log_emission(
        &self,
        w: &[f32],
        padded: usize,
        deviations: &mut [f64],
        log_emission: &mut [f64],
    ) {
        let assets = self.mean.len();
        let k = self.scales.len();
        for (d, dev) in deviations.chunks_mut(assets).enumerate() {
            for (a, v) in dev.iter_mut().enumerate() {
                *v = w[a * padded + d] as f64 - self.mean[a];
            }
            // Mahalanobis distance in the eigenbasis of Σ.
            let q: f64 = (0..assets)
                .map(|i| {
                    let y: f64 = (0..assets).map(|a| self.u[a * assets + i] * dev[a]).sum();
                    y * y / self.lambda[i]
                })
                .sum();
            for (j, s) in self.scales.iter().enumerate() {
                let s2 = s * s;
                log_emission[d * k + j] = self.constant - 0.5 * (assets as f64 * s2.ln() + q / s2);
            }
        }
    }
}

/// E[s²] of a chain's days (state `i * shocks + j` has scale `scales[i * shocks + j]`),
/// averaged over the `window` days of a window.
fn mean_square_scale(scales: &[f64], chain: &VolatilityChain, window: usize) -> f64 {
    let shocks = chain.shocks();
    let total: f64 = chain
        .level_marginals(window)
        .iter()
        .map(|levels| {
            levels
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let q = &chain.shock_probabilities;
                    let s = &scales[i * shocks..(i + 1) * shocks];
                    p * s.iter().zip(q).map(|(s, q)| q * s * s).sum::<f64>()
                })
                .sum::<f64>()
        })
        .sum();
    total / window as f64
}

/// One class's parameters during EM.
struct ClassFit<'a> {
    mean: &'a [f64],
    scales: &'a [f64],
    covariance: Vec<f64>,
    chain: VolatilityChain,
}

impl<'a> ClassFit<'a> {
    fn new(
        mean: &'a [f64],
        covariance: &[f64],
        scales: &'a [f64],
        levels: usize,
        shocks: usize,
    ) -> Self {
        Self {
            mean,
            scales,
            covariance: covariance.to_vec(),
            chain: VolatilityChain::persistent(levels, shocks),
        }
    }

    /// One EM step over the class's windows; returns the log-likelihood per day under the
    /// parameters before the step.
    fn step(&mut self, windows: &[&[f32]], assets: usize, padded: usize, window: usize) -> f64 {
        let k = self.scales.len();
        let levels = self.chain.levels();
        let density = DayDensity::new(self.mean, &self.covariance, self.scales, assets);
        let mut first = vec![0.0; k];
        let mut occupancy = vec![0.0; k];
        let mut level_counts = vec![0.0; levels * levels];
        let mut scatter = vec![0.0; assets * assets];
        let mut day_count = 0.0f64;
        let mut log_likelihood = 0.0;
        let mut deviations = vec![0.0; window * assets];
        let mut log_emission = vec![0.0; window * k];
        let mut gamma = vec![0.0; window * k];
        for w in windows {
            density.log_emission(w, padded, &mut deviations, &mut log_emission);
            log_likelihood += self.chain.forward_backward(
                &log_emission,
                window,
                &mut gamma,
                Some(&mut level_counts),
            );
            for (c, g) in first.iter_mut().zip(&gamma[..k]) {
                *c += g;
            }
            for d in 0..window {
                for j in 0..k {
                    occupancy[j] += gamma[d * k + j];
                }
                // Σ's M-step: each day's outer product divided by its expected s².
                let weight: f64 = (0..k)
                    .map(|j| gamma[d * k + j] / (self.scales[j] * self.scales[j]))
                    .sum();
                let dev = &deviations[d * assets..(d + 1) * assets];
                for i in 0..assets {
                    let wi = weight * dev[i];
                    for j in 0..=i {
                        scatter[i * assets + j] += wi * dev[j];
                    }
                }
                day_count += 1.0;
            }
        }
        let days = day_count.max(1.0);
        for i in 0..assets {
            for j in 0..=i {
                let v = scatter[i * assets + j] / days;
                self.covariance[i * assets + j] = v;
                self.covariance[j * assets + i] = v;
            }
        }
        self.chain
            .update(&first, &level_counts, &occupancy, TRANSITION_PSEUDO_COUNT);
        log_likelihood / days
    }
}
