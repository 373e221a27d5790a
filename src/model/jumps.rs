//! Idiosyncratic jumps: each asset's own fat tails, drawn beside the diffusion model.
//!
//! The prior's volatility states move every asset at once (a common level, a day shock and a
//! market shock), so a day on which one name jumps (an earnings day, a downgrade) is what they
//! cannot draw, and the network added little of it: on the embedded data the scenarios' daily
//! kurtosis per stock was 40% short of their own train windows' in every regime. Here a day's
//! conditional residual of asset a, its standardised return less its regression on the other
//! assets under the regime's covariance Σ,
//!
//!   e_a = (P (z − μ))_a / P_aa,   P = Σ⁻¹,   variance 1 / P_aa under Σ,
//!
//! scaled by √P_aa and by the window's level L (the median |z| of the window over the normal's
//! 0.6745, which a few jumps do not move), is a scale mixture of two normals per asset and
//! regime,
//!
//!   (1 − π_a) N(0, τ_a²) + π_a N(0, τ_a² (1 + v_a)),
//!
//! fitted by EM. Training takes each day's expected jump, ρ_a v_a / (1 + v_a) e_a (ρ_a the
//! posterior probability of the jump component), out of the windows that the prior and the
//! network learn from; generation adds jumps back to every path after the sampler, with
//! probability π_a a normal jump of variance v_a τ_a² L² / P_aa, L the path's own level. A
//! jump moves only its asset and only its day, so the correlation, the clustering of the
//! common level and the market's crashes stay the model's.

use serde::{Deserialize, Serialize};

use crate::rng::SeededRng;
use crate::stats::symmetric_power;

/// The most days a jump may take per asset. Uncapped, EM gave 10–28% of the embedded stocks'
/// days to the wider component, a second scale rather than jumps; taking that out removed 30–40%
/// of the variance, and the correlation of the generated paths then missed the train windows'
/// by +0.05 in low-vix and −0.14 in high-vix.
const RATE_CAP: f64 = 0.05;
/// The smallest jump variance, relative to the ordinary days': a jump's standard deviation is
/// at least twice theirs. Below that the wider component is a second scale of ordinary days,
/// which EM fits to the noise of normal days: with a floor of 0.5 it took 3.6% of the variance
/// out of a panel of normal days. The fitted sizes on the embedded data and the 49 industries
/// are 3.3 to 38.
const SIZE_FLOOR: f64 = 3.0;
/// EM's starting point: 2% of days, jumps three times the ordinary days' standard deviation.
const START: (f64, f64) = (0.02, 8.0);
/// EM stops when no parameter moves by more than this, or after `MAX_ITERATIONS` steps.
const TOLERANCE: f64 = 1e-6;
const MAX_ITERATIONS: usize = 500;
/// The median of |y| for y ~ N(0, 1): the window's level L is its median |z| over this.
const NORMAL_MEDIAN_ABS: f64 = 0.674_489_750_196_081_7;
/// Floor of a window's level, so that a window of zeros has no infinite residuals.
const LEVEL_FLOOR: f64 = 1e-6;
/// Floor on the eigenvalues of a regime's covariance before it is inverted (standardised
/// units), for regimes with fewer days than assets.
const EIGENVALUE_FLOOR: f64 = 1e-4;

/// One regime's jumps, in standardised units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegimeJumps {
    /// The regime's mean day, `assets` values.
    pub mean: Vec<f64>,
    /// P = Σ⁻¹ of the regime's days, `assets * assets` values, row-major.
    pub precision: Vec<f64>,
    /// Per asset: π, the probability of a jump on a day.
    pub rate: Vec<f64>,
    /// Per asset: v, a jump's variance relative to the ordinary days' residual variance.
    pub size: Vec<f64>,
    /// Per asset: τ, the ordinary days' residual standard deviation (in units of L / √P_aa).
    pub base: Vec<f64>,
    /// The mean of L² over the regime's train windows once the jumps are out: the level at
    /// which the jumps' variance is stated (`day_variances`).
    pub mean_square_level: f64,
}

/// Per regime (in the model's label order), the jumps of each asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdiosyncraticJumps {
    pub regimes: Vec<RegimeJumps>,
}

/// Where value (asset, day) of a window lies in its buffer: `asset * asset_stride + day *
/// day_stride`.
#[derive(Clone, Copy)]
pub struct Layout {
    pub assets: usize,
    pub days: usize,
    pub asset_stride: usize,
    pub day_stride: usize,
}

impl Layout {
    /// Windows as the network sees them: asset-major rows of `padded` days, the first `days`
    /// data.
    pub fn windows(assets: usize, days: usize, padded: usize) -> Self {
        Self {
            assets,
            days,
            asset_stride: padded,
            day_stride: 1,
        }
    }

    /// Days in rows of `assets` values.
    pub fn day_major(assets: usize, days: usize) -> Self {
        Self {
            assets,
            days,
            asset_stride: 1,
            day_stride: assets,
        }
    }

    fn at(&self, asset: usize, day: usize) -> usize {
        asset * self.asset_stride + day * self.day_stride
    }

    /// The window's level L: its median |z| over the normal's median |y|.
    fn level(&self, window: &[f32]) -> f64 {
        let mut abs: Vec<f64> = (0..self.assets)
            .flat_map(|a| (0..self.days).map(move |d| (a, d)))
            .map(|(a, d)| f64::from(window[self.at(a, d)]).abs())
            .collect();
        let middle = abs.len() / 2;
        let (_, median, _) = abs.select_nth_unstable_by(middle, f64::total_cmp);
        (*median / NORMAL_MEDIAN_ABS).max(LEVEL_FLOOR)
    }
}

impl RegimeJumps {
    /// Each day's conditional residuals e (days x assets) of `window`.
    fn residuals(&self, window: &[f32], layout: Layout) -> Vec<f64> {
        let n = layout.assets;
        let mut out = Vec::with_capacity(layout.days * n);
        let mut centred = vec![0.0; n];
        for d in 0..layout.days {
            for (a, c) in centred.iter_mut().enumerate() {
                *c = f64::from(window[layout.at(a, d)]) - self.mean[a];
            }
            out.extend((0..n).map(|a| {
                let row = &self.precision[a * n..(a + 1) * n];
                let p: f64 = row.iter().zip(&centred).map(|(p, c)| p * c).sum();
                p / row[a]
            }));
        }
        out
    }

    /// The expected jump of every (day, asset) of `window` given its residuals `e`, at level
    /// `level`: ρ v / (1 + v) e, ρ the posterior probability of the jump component.
    fn expected_jumps(&self, e: &[f64], level: f64, n: usize) -> Vec<f64> {
        let mixtures: Vec<Mixture> = (0..n)
            .map(|a| Mixture::new(self.rate[a], self.size[a], self.base[a]))
            .collect();
        e.iter()
            .enumerate()
            .map(|(k, e)| {
                let a = k % n;
                let s = e * self.precision[a * n + a].sqrt() / level;
                mixtures[a].posterior(s) * self.size[a] / (1.0 + self.size[a]) * e
            })
            .collect()
    }

    /// The level of `window` (with residuals `e`) once its expected jumps at its own level are
    /// out: the level at which generation adds jumps to a path that has none.
    fn smoothed_level(&self, window: &[f32], e: &[f64], layout: Layout) -> f64 {
        let first = self.expected_jumps(e, layout.level(window), layout.assets);
        let mut smoothed = window.to_vec();
        subtract(&mut smoothed, &first, layout);
        layout.level(&smoothed)
    }

    /// Takes the expected jumps out of `window`, at its level without them
    /// ([`RegimeJumps::smoothed_level`]).
    pub fn remove(&self, window: &mut [f32], layout: Layout) {
        let e = self.residuals(window, layout);
        let level = self.smoothed_level(window, &e, layout);
        let jumps = self.expected_jumps(&e, level, layout.assets);
        subtract(window, &jumps, layout);
    }

    /// Adds jumps to a generated `window` from `rng`: for each asset and day, with probability
    /// π a normal jump of variance v τ² L² / P_aa, L the window's level. Two draws per value
    /// whether it jumps or not, so a path's stream does not depend on its values.
    pub fn add(&self, window: &mut [f32], layout: Layout, rng: &mut SeededRng) {
        let n = layout.assets;
        let level = layout.level(window);
        for d in 0..layout.days {
            for a in 0..n {
                let (u, z) = (rng.uniform(), rng.normal());
                if u < self.rate[a] {
                    let sd = self.size[a].sqrt() * self.base[a] * level
                        / self.precision[a * n + a].sqrt();
                    window[layout.at(a, d)] += (sd * z) as f32;
                }
            }
        }
    }

    /// Each asset's jump variance per day at the regime's mean level: π v τ² E[L²] / P_aa.
    pub fn day_variances(&self) -> Vec<f64> {
        let n = self.rate.len();
        (0..n)
            .map(|a| {
                self.rate[a] * self.size[a] * self.base[a] * self.base[a] * self.mean_square_level
                    / self.precision[a * n + a]
            })
            .collect()
    }
}

/// (1 − π) N(0, τ²) + π N(0, τ² (1 + v)) ready to give P(jump | s) for scaled residuals s.
struct Mixture {
    /// ½ (1/τ² − 1/(τ² (1 + v))): the log odds' slope in s².
    slope: f64,
    /// ln π − ln(1 − π) − ½ ln(1 + v): the log odds at s = 0.
    intercept: f64,
}

impl Mixture {
    fn new(rate: f64, size: f64, base: f64) -> Self {
        let (v0, v1) = (base * base, base * base * (1.0 + size));
        Self {
            slope: 0.5 * (1.0 / v0 - 1.0 / v1),
            intercept: rate.ln() - (1.0 - rate).ln() - 0.5 * (1.0 + size).ln(),
        }
    }

    /// P(jump | s), from the log odds (no density underflows however many τ s is).
    fn posterior(&self, s: f64) -> f64 {
        1.0 / (1.0 + (-(self.intercept + self.slope * s * s)).exp())
    }
}

fn subtract(window: &mut [f32], jumps: &[f64], layout: Layout) {
    let n = layout.assets;
    for (k, j) in jumps.iter().enumerate() {
        let i = layout.at(k % n, k / n);
        window[i] = (f64::from(window[i]) - j) as f32;
    }
}

impl IdiosyncraticJumps {
    /// Fits each regime's jumps on its windows among `windows` (labelled `labels`, regimes
    /// `0..regimes`, each `layout.assets * padded` values in `layout`): the mean and precision
    /// of its days, then the mixture by EM on the residuals at each window's level, twice (the
    /// second time at the level without the first fit's jumps). A regime without windows gets
    /// no jumps.
    pub fn fit(windows: &[f32], labels: &[u32], regimes: usize, layout: Layout) -> Self {
        let size = windows.len() / labels.len().max(1);
        let fit_regime = |regime: usize| {
            let members: Vec<&[f32]> = labels
                .iter()
                .enumerate()
                .filter(|(_, &l)| l as usize == regime)
                .map(|(w, _)| &windows[w * size..(w + 1) * size])
                .collect();
            fit_regime(&members, layout)
        };
        Self {
            regimes: super::one_thread_each(regimes, fit_regime),
        }
    }

    /// Whether these are jumps of `regimes` regimes of `assets` assets that can be drawn: a
    /// message naming the first field that is not.
    pub fn check(&self, regimes: usize, assets: usize) -> std::result::Result<(), String> {
        if self.regimes.len() != regimes {
            return Err(format!(
                "jumps of {} regimes for a model of {regimes}",
                self.regimes.len()
            ));
        }
        for (r, jumps) in self.regimes.iter().enumerate() {
            let fields = [
                ("mean", &jumps.mean, assets),
                ("precision", &jumps.precision, assets * assets),
                ("rate", &jumps.rate, assets),
                ("size", &jumps.size, assets),
                ("base", &jumps.base, assets),
            ];
            for (name, values, len) in fields {
                if values.len() != len || values.iter().any(|v| !v.is_finite()) {
                    return Err(format!(
                        "jumps of regime {r}: `{name}` must hold {len} finite values"
                    ));
                }
            }
            let positive = |v: &f64| *v > 0.0;
            let drawable = (0..assets).all(|a| positive(&jumps.precision[a * assets + a]))
                && jumps.size.iter().all(positive)
                && jumps.base.iter().all(positive)
                && jumps.rate.iter().all(|p| (0.0..1.0).contains(p))
                && jumps.mean_square_level.is_finite()
                && jumps.mean_square_level > 0.0;
            if !drawable {
                return Err(format!(
                    "jumps of regime {r}: rates must lie in [0, 1), and sizes, bases, the \
                     precision's diagonal and mean_square_level must be positive"
                ));
            }
        }
        Ok(())
    }

    /// Takes each window's expected jumps out of `windows` (as [`IdiosyncraticJumps::fit`]
    /// reads them).
    pub fn remove(&self, windows: &mut [f32], labels: &[u32], layout: Layout) {
        let size = windows.len() / labels.len().max(1);
        for (window, &label) in windows.chunks_exact_mut(size.max(1)).zip(labels) {
            self.regimes[label as usize].remove(window, layout);
        }
    }
}

/// One regime's fit on its windows `members`.
fn fit_regime(members: &[&[f32]], layout: Layout) -> RegimeJumps {
    let n = layout.assets;
    let days: Vec<f64> = members
        .iter()
        .flat_map(|w| {
            (0..layout.days).flat_map(move |d| (0..n).map(move |a| f64::from(w[layout.at(a, d)])))
        })
        .collect();
    let count = (days.len() / n).max(1);
    let mean: Vec<f64> = (0..n)
        .map(|a| days.iter().skip(a).step_by(n).sum::<f64>() / count as f64)
        .collect();
    let covariance = crate::stats::covariance_matrix(&days, n, 1);
    let mut jumps = RegimeJumps {
        mean,
        precision: symmetric_power(&covariance, n, -1.0, EIGENVALUE_FLOOR),
        rate: vec![0.0; n],
        size: vec![SIZE_FLOOR; n],
        base: vec![1.0; n],
        mean_square_level: 1.0,
    };
    if members.is_empty() {
        return jumps;
    }
    let residuals: Vec<Vec<f64>> = members.iter().map(|w| jumps.residuals(w, layout)).collect();
    let smoothed_levels = |jumps: &RegimeJumps| -> Vec<f64> {
        members
            .iter()
            .zip(&residuals)
            .map(|(w, e)| jumps.smoothed_level(w, e, layout))
            .collect()
    };
    // First at each window's own level, then at its level without the jumps so found, the
    // level `remove` and generation read.
    let levels: Vec<f64> = members.iter().map(|w| layout.level(w)).collect();
    fit_mixtures(&mut jumps, &residuals, &levels, n);
    let levels = smoothed_levels(&jumps);
    fit_mixtures(&mut jumps, &residuals, &levels, n);
    let levels = smoothed_levels(&jumps);
    jumps.mean_square_level = levels.iter().map(|l| l * l).sum::<f64>() / levels.len() as f64;
    jumps
}

/// Each asset's (π, v, τ) by EM on its scaled residuals e √P_aa / L.
fn fit_mixtures(jumps: &mut RegimeJumps, residuals: &[Vec<f64>], levels: &[f64], n: usize) {
    for a in 0..n {
        let root = jumps.precision[a * n + a].sqrt();
        let scaled: Vec<f64> = residuals
            .iter()
            .zip(levels)
            .flat_map(|(e, level)| e.iter().skip(a).step_by(n).map(move |e| e * root / level))
            .collect();
        let (rate, size, base) = fit_mixture(&scaled);
        jumps.rate[a] = rate;
        jumps.size[a] = size;
        jumps.base[a] = base;
    }
}

/// (π, v, τ) of (1 − π) N(0, τ²) + π N(0, τ² (1 + v)) fitted to `s` by EM, π at most
/// [`RATE_CAP`] and v at least [`SIZE_FLOOR`].
fn fit_mixture(s: &[f64]) -> (f64, f64, f64) {
    let (mut rate, mut size) = START;
    let mut base = (s.iter().map(|x| x * x).sum::<f64>() / s.len().max(1) as f64)
        .sqrt()
        .max(LEVEL_FLOOR);
    for _ in 0..MAX_ITERATIONS {
        let (mut jump_weight, mut jump_square, mut plain_square) = (0.0, 0.0, 0.0);
        let mixture = Mixture::new(rate, size, base);
        for x in s {
            let rho = mixture.posterior(*x);
            jump_weight += rho;
            jump_square += rho * x * x;
            plain_square += (1.0 - rho) * x * x;
        }
        let total = s.len() as f64;
        let plain_weight = (total - jump_weight).max(f64::MIN_POSITIVE);
        let new_rate = (jump_weight / total).min(RATE_CAP);
        let new_base = (plain_square / plain_weight).sqrt().max(LEVEL_FLOOR);
        let new_size = if jump_weight > 0.0 {
            (jump_square / jump_weight / (new_base * new_base) - 1.0).max(SIZE_FLOOR)
        } else {
            SIZE_FLOOR
        };
        let moved = (new_rate - rate)
            .abs()
            .max((new_size - size).abs())
            .max((new_base - base).abs());
        (rate, size, base) = (new_rate, new_size, new_base);
        if moved < TOLERANCE {
            break;
        }
    }
    (rate, size, base)
}
