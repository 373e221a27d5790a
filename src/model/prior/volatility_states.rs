//! Volatility states of the Gaussian prior: a hidden Markov chain over day scales,
//!
//!   state k_d ~ Markov(π_c, P_c),   x_d | k_d ~ N(μ_c, s²_{k_d} Σ_c(m_{k_d})),   per day d,
//!
//! where Σ_c(m) is Σ_c with the variance of its market direction u_c (the top eigenvector of the
//! class's sample covariance) multiplied by m²,
//! so that the prior itself has volatility that persists from day to day and jumps between
//! levels: fat-tailed days, windows of different volatility and clustering of |r|, which a single
//! Gaussian per regime cannot give. The best prediction of the noise stays exact: given x_t, the
//! state posteriors γ_d(k) follow from the forward-backward recursion over the window, and
//! ε̂ = Σ_k γ_d(k) ε_G(x_t; s²_k Σ_c) day by day.
//!
//! A state is a level, a shock and a market shock: a volatility level that follows its own Markov
//! chain, times a shock of every direction and a shock of the market direction, both drawn
//! afresh every day (`volatility_chain.rs`, with the recursion that both the fit and the noise
//! prediction use; to the chain the pair of shocks is one shock). Fitted on the embedded data, a
//! single chain of six scales spent its largest ones on single-day spikes; with levels and shocks
//! apart, the spikes go to the shocks and the levels persist. A shock of every direction cannot
//! give a market crash: with 49 industries, a day on which all fall 17% together (19 October
//! 1987) is 24 standard deviations on the market direction but ordinary on the other 48, so the
//! likelihood reads it as a day of scale 3.5, and the scenarios' daily kurtosis came out at a
//! seventh of the data's; the market shock carries such days.
//!
//! Σ_c is kept diagonal in the eigenbasis of the class's sample covariance, so that u_c stays
//! one of its eigenvectors and every state's covariance is diagonal in one basis. After EM, each
//! eigenvalue is rescaled so that the chain's days keep the class's sample covariance exactly
//! (see `fit_volatility_states`). This file fits (π_c, P_c, λ_c) by EM (Baum–Welch on fixed
//! scale grids) and measures a fitted prior's log-likelihood, by which the number of states was
//! chosen.

use super::{ClassBasis, GaussianPrior, VolatilityChain, EIGENVALUE_FLOOR};

/// Smallest and largest persistent volatility level, relative to the fitted Σ_c.
const LEVEL_RANGE: (f64, f64) = (0.4, 2.5);
/// Smallest and largest day shock, multiplying the level: a quiet day to a crash day.
const SHOCK_RANGE: (f64, f64) = (0.6, 2.5);
/// Smallest and largest market shock, multiplying the market direction's scale on top of the
/// level and the shock: a day the market barely moves to a crash of the whole market.
const MARKET_SHOCK_RANGE: (f64, f64) = (0.5, 8.0);
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

/// The states of `levels` x `shocks` x `market_shocks`, as (day scale, market shock) per state:
/// state `(i * shocks + j) * market_shocks + m` has day scale level_i * shock_j and market shock
/// m. To the chain, the pair (j, m) is one of `shocks * market_shocks` shocks.
pub fn state_grid(levels: usize, shocks: usize, market_shocks: usize) -> (Vec<f64>, Vec<f64>) {
    let market = log_grid(market_shocks, MARKET_SHOCK_RANGE);
    let scales = scale_grid(levels, shocks)
        .into_iter()
        .flat_map(|s| std::iter::repeat_n(s, market_shocks))
        .collect();
    let markets = (0..levels * shocks)
        .flat_map(|_| market.iter().copied())
        .collect();
    (scales, markets)
}

impl GaussianPrior {
    /// Replaces each class's single Gaussian by `levels` persistent volatility levels times
    /// `shocks` day shocks times `market_shocks` market shocks (see [`state_grid`]), fitted by
    /// `iterations` EM steps on the same days [`GaussianPrior::fit`] saw (standardised windows
    /// `values`, `labels.len()` of them, `assets` x `padded`, the first `window` days data). The
    /// means stay; the covariances keep their eigenvectors, whose eigenvalues are refitted, then
    /// scaled so that the chain's days keep the class's sample covariance. Returns each class's
    /// log-likelihood per day after every step (EM never lowers it).
    #[allow(clippy::too_many_arguments)]
    pub fn fit_volatility_states(
        &mut self,
        values: &[f32],
        labels: &[u32],
        assets: usize,
        padded: usize,
        window: usize,
        (levels, shocks, market_shocks): (usize, usize, usize),
        iterations: usize,
    ) -> Vec<Vec<f64>> {
        let (scales, markets) = state_grid(levels, shocks, market_shocks);
        let regimes = self.classes() - 1;
        let fit_class = |class: usize| {
            let members = class_windows(values, labels, class, regimes, assets * padded);
            let sample = ClassBasis::new(&self.covariances[class], None);
            let states = StateScales {
                scales: &scales,
                markets: &markets,
            };
            let mut fit = ClassFit::new(
                &self.means[class],
                typical_variances(&members, &self.means[class], &sample, padded, window),
                &sample,
                states,
                levels,
                shocks * market_shocks,
            );
            let history: Vec<f64> = (0..iterations)
                .map(|_| fit.step(&members, padded, window))
                .collect();
            // The chain's days have variance E[s²] λ_j on every direction j but the market's,
            // which has E[s² m²] λ_j; λ is rescaled so that these equal the sample covariance's
            // eigenvalues. EM's own λ does not keep them: one scale for all directions is read
            // mostly off the idiosyncratic ones, and on the embedded high-vix days a fitted
            // chain had 26% more equal-weight variance than the data.
            let (common, market) = states.mean_squares(&fit.chain, window);
            let lambda: Vec<f64> = (0..assets)
                .map(|j| {
                    let mean_square = if j == sample.market { market } else { common };
                    sample.lambda[j] / mean_square
                })
                .collect();
            let direction: Vec<f64> = (0..assets)
                .map(|i| sample.vectors[i * assets + sample.market])
                .collect();
            let covariance = crate::stats::compose_eigen(&sample.vectors, &lambda, assets);
            (covariance, direction, fit.chain, history)
        };
        // Classes are independent: one thread each (the pooled class is as large as the rest).
        let fits = crate::model::one_thread_each(self.classes(), fit_class);
        let mut chains = Vec::new();
        let mut directions = Vec::new();
        let mut histories = Vec::new();
        for (class, (covariance, direction, chain, history)) in fits.into_iter().enumerate() {
            self.covariances[class] = covariance;
            directions.push(direction);
            chains.push(chain);
            histories.push(history);
        }
        self.scales = scales;
        self.chains = chains;
        if market_shocks > 1 {
            self.market_scales = markets;
            self.market_directions = directions;
        } else {
            self.market_scales.clear();
            self.market_directions.clear();
        }
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
        let single = VolatilityChain::from_states(vec![1.0], vec![1.0]);
        let (scales, markets) = if self.chains.is_empty() {
            (vec![1.0], vec![1.0])
        } else {
            (self.scales.clone(), self.market_multipliers())
        };
        let states = StateScales {
            scales: &scales,
            markets: &markets,
        };
        (0..self.classes())
            .map(|class| {
                let chain = self.chains.get(class).unwrap_or(&single);
                let basis = self.basis(class);
                let density = DayDensity::new(&self.means[class], &basis, states);
                let k = scales.len();
                let mut coords = vec![0.0; window * assets];
                let mut log_emission = vec![0.0; window * k];
                let mut gamma = vec![0.0; window * k];
                let members =
                    class_windows(values, labels, class, self.classes() - 1, assets * padded);
                let total: f64 = members
                    .iter()
                    .map(|w| {
                        density.log_emission(w, padded, &mut coords, &mut log_emission);
                        chain.forward_backward(&log_emission, window, &mut gamma, None)
                    })
                    .sum();
                total / (members.len() * window) as f64
            })
            .collect()
    }
}

impl GaussianPrior {
    /// The distribution of class `class`'s volatility level on the day after `days` days of
    /// standardised returns (`days` x assets, day-major): the chain's filter run over those days
    /// from its first-day levels, then one step of its level transitions. This is the state
    /// the market is in, as far as the chain can tell, at the close of the last day; windows
    /// drawn from it start there ([`GaussianPrior::starting_at`]). `[1]` without a chain.
    pub fn next_day_levels(&self, class: usize, days: &[f32]) -> Vec<f64> {
        let Some(chain) = self.chains.get(class) else {
            return vec![1.0];
        };
        let assets = self.means[class].len();
        let n = days.len() / assets;
        let markets = self.market_multipliers();
        let states = StateScales {
            scales: &self.scales,
            markets: &markets,
        };
        let basis = self.basis(class);
        let density = DayDensity::new(&self.means[class], &basis, states);
        // The days as one window of `n` days (assets x n), which is how the density reads them.
        let window: Vec<f32> = (0..assets * n)
            .map(|k| days[(k % n) * assets + k / n])
            .collect();
        let k = self.scales.len();
        let mut coords = vec![0.0; n * assets];
        let mut log_emission = vec![0.0; n * k];
        let mut gamma = vec![0.0; n * k];
        density.log_emission(&window, n, &mut coords, &mut log_emission);
        chain.forward_backward(&log_emission, n, &mut gamma, None);
        // The last day's posterior is the filter's: nothing after it was seen.
        let shocks = chain.shocks();
        let levels = chain.levels();
        let last: Vec<f64> = gamma[(n - 1) * k..]
            .chunks_exact(shocks)
            .map(|s| s.iter().sum())
            .collect();
        (0..levels)
            .map(|to| {
                (0..levels)
                    .map(|from| last[from] * chain.level_transitions[from * levels + to])
                    .sum()
            })
            .collect()
    }
}

impl GaussianPrior {
    /// E[s²] and E[s² (m² − 1)] on each of the first `days` days of class `class`'s windows
    /// when they start from level distribution `levels`: the day's covariance is then
    /// E[s²] Σ + E[s² (m² − 1)] λ u uᵀ (λ, u the market direction's variance and vector), which
    /// is diagonal in Σ's eigenbasis. (1, 0) on every day without a chain.
    pub fn day_scale_moments(&self, class: usize, levels: &[f64], days: usize) -> Vec<(f64, f64)> {
        let Some(chain) = self.chains.get(class) else {
            return vec![(1.0, 0.0); days];
        };
        let markets = self.market_multipliers();
        let mut started = chain.clone();
        started.level_initial = levels.to_vec();
        let shocks = chain.shocks();
        started
            .level_marginals(days)
            .iter()
            .map(|p| {
                let (mut common, mut extra) = (0.0, 0.0);
                for (i, p) in p.iter().enumerate() {
                    for (j, q) in chain.shock_probabilities.iter().enumerate() {
                        let k = i * shocks + j;
                        let s2 = self.scales[k] * self.scales[k];
                        common += p * q * s2;
                        extra += p * q * s2 * (markets[k] * markets[k] - 1.0);
                    }
                }
                (common, extra)
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

/// The median of χ² with one degree of freedom: the median of y² for y ~ N(0, 1).
const CHI_SQUARE_1_MEDIAN: f64 = 0.454_936_423_119_572_7;

/// EM's starting λ: each eigen-coordinate's variance on a typical day, from the median of its
/// squares over the class's days. The sample variance, which the crash days inflate, started EM
/// with every day calm on the market direction, a local optimum that put typical days on the
/// smallest market shock (on a simulated chain: 87% of the days there, where 20% are).
fn typical_variances(
    windows: &[&[f32]],
    mean: &[f64],
    basis: &ClassBasis,
    padded: usize,
    window: usize,
) -> Vec<f64> {
    let n = mean.len();
    let mut squares = vec![Vec::with_capacity(windows.len() * window); n];
    let mut deviation = vec![0.0; n];
    for w in windows {
        for d in 0..window {
            for (a, v) in deviation.iter_mut().enumerate() {
                *v = w[a * padded + d] as f64 - mean[a];
            }
            for (j, column) in squares.iter_mut().enumerate() {
                let y: f64 = (0..n)
                    .map(|a| basis.vectors[a * n + j] * deviation[a])
                    .sum();
                column.push(y * y);
            }
        }
    }
    squares
        .iter_mut()
        .zip(&basis.lambda)
        .map(|(column, sample)| {
            if column.is_empty() {
                return *sample;
            }
            let middle = column.len() / 2;
            let (_, median, _) = column.select_nth_unstable_by(middle, f64::total_cmp);
            (*median / CHI_SQUARE_1_MEDIAN).max(EIGENVALUE_FLOOR)
        })
        .collect()
}

/// Per state, the day scale s and the market shock m.
#[derive(Clone, Copy)]
struct StateScales<'a> {
    scales: &'a [f64],
    markets: &'a [f64],
}

impl StateScales<'_> {
    /// E[s²] and E[s² m²] of a chain's days, averaged over the `window` days of a window.
    fn mean_squares(&self, chain: &VolatilityChain, window: usize) -> (f64, f64) {
        let shocks = chain.shocks();
        let q = &chain.shock_probabilities;
        let (mut common, mut market) = (0.0, 0.0);
        for levels in chain.level_marginals(window) {
            for (i, p) in levels.iter().enumerate() {
                for (j, q) in q.iter().enumerate() {
                    let k = i * shocks + j;
                    let s2 = self.scales[k] * self.scales[k];
                    common += p * q * s2;
                    market += p * q * s2 * self.markets[k] * self.markets[k];
                }
            }
        }
        (common / window as f64, market / window as f64)
    }
}

/// Log densities of a day under every state's N(μ, s²_k Σ(m_k)), computed in Σ's eigenbasis.
struct DayDensity<'a> {
    mean: &'a [f64],
    basis: &'a ClassBasis,
    states: StateScales<'a>,
    /// −½ (n ln 2π + ln |Σ|).
    constant: f64,
}

impl<'a> DayDensity<'a> {
    fn new(mean: &'a [f64], basis: &'a ClassBasis, states: StateScales<'a>) -> Self {
        let log_det: f64 = basis.lambda.iter().map(|l| l.ln()).sum();
        let constant = -0.5 * (mean.len() as f64 * (2.0 * std::f64::consts::PI).ln() + log_det);
        Self {
            mean,
            basis,
            states,
            constant,
        }
    }

    /// Writes each day's eigen-coordinates y = Uᵀ(x − μ) (days x assets) and log density in
    /// each state (days x states) for the window `w` (assets x `padded`); the days are as many
    /// as `coords` holds.
    fn log_emission(&self, w: &[f32], padded: usize, coords: &mut [f64], log_emission: &mut [f64]) {
        let assets = self.mean.len();
        let (u, lambda, market) = (&self.basis.vectors, &self.basis.lambda, self.basis.market);
        let k = self.states.scales.len();
        let mut deviation = vec![0.0; assets];
        for (d, y) in coords.chunks_mut(assets).enumerate() {
            for (a, v) in deviation.iter_mut().enumerate() {
                *v = w[a * padded + d] as f64 - self.mean[a];
            }
            for (i, yi) in y.iter_mut().enumerate() {
                *yi = (0..assets).map(|a| u[a * assets + i] * deviation[a]).sum();
            }
            // Mahalanobis distance of the market direction and of the others, apart.
            let on_market = y[market] * y[market] / lambda[market];
            let rest: f64 = y.iter().zip(lambda).map(|(y, l)| y * y / l).sum::<f64>() - on_market;
            for j in 0..k {
                let (s2, m2) = (
                    self.states.scales[j] * self.states.scales[j],
                    self.states.markets[j] * self.states.markets[j],
                );
                log_emission[d * k + j] = self.constant
                    - 0.5 * (assets as f64 * s2.ln() + m2.ln() + (rest + on_market / m2) / s2);
            }
        }
    }
}

/// One class's parameters during EM: the eigenvalues λ of Σ in the fixed eigenbasis of the
/// class's sample covariance, and the chain.
struct ClassFit<'a> {
    mean: &'a [f64],
    basis: ClassBasis,
    states: StateScales<'a>,
    chain: VolatilityChain,
}

impl<'a> ClassFit<'a> {
    fn new(
        mean: &'a [f64],
        lambda: Vec<f64>,
        sample: &ClassBasis,
        states: StateScales<'a>,
        levels: usize,
        shocks: usize,
    ) -> Self {
        Self {
            mean,
            basis: ClassBasis {
                lambda,
                vectors: sample.vectors.clone(),
                market: sample.market,
            },
            states,
            chain: VolatilityChain::persistent(levels, shocks),
        }
    }

    /// One EM step over the class's windows; returns the log-likelihood per day under the
    /// parameters before the step.
    fn step(&mut self, windows: &[&[f32]], padded: usize, window: usize) -> f64 {
        let assets = self.mean.len();
        let k = self.states.scales.len();
        let levels = self.chain.levels();
        let density = DayDensity::new(self.mean, &self.basis, self.states);
        let mut first = vec![0.0; k];
        let mut occupancy = vec![0.0; k];
        let mut level_counts = vec![0.0; levels * levels];
        let mut scatter = vec![0.0; assets];
        let mut day_count = 0.0f64;
        let mut log_likelihood = 0.0;
        let mut coords = vec![0.0; window * assets];
        let mut log_emission = vec![0.0; window * k];
        let mut gamma = vec![0.0; window * k];
        let market = self.basis.market;
        for w in windows {
            density.log_emission(w, padded, &mut coords, &mut log_emission);
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
                // λ's M-step: each day's squared coordinates divided by their expected scale.
                let (mut weight, mut market_weight) = (0.0, 0.0);
                for j in 0..k {
                    let g = gamma[d * k + j];
                    occupancy[j] += g;
                    let s2 = self.states.scales[j] * self.states.scales[j];
                    weight += g / s2;
                    market_weight += g / (s2 * self.states.markets[j] * self.states.markets[j]);
                }
                let y = &coords[d * assets..(d + 1) * assets];
                for (i, (acc, yi)) in scatter.iter_mut().zip(y).enumerate() {
                    let w = if i == market { market_weight } else { weight };
                    *acc += w * yi * yi;
                }
                day_count += 1.0;
            }
        }
        let days = day_count.max(1.0);
        for (l, acc) in self.basis.lambda.iter_mut().zip(&scatter) {
            *l = (acc / days).max(EIGENVALUE_FLOOR);
        }
        self.chain
            .update(&first, &level_counts, &occupancy, TRANSITION_PSEUDO_COUNT);
        log_likelihood / days
    }
}
