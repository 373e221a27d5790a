//! The hidden Markov chain of a regime's volatility states and its forward-backward recursion.
//!
//! A state is a pair (level i, shock j), numbered `i * shocks + j`: the level follows a Markov
//! chain from day to day, the shock is drawn afresh every day, so
//!
//!   P[(i, j) → (i', j')] = A[i, i'] q[j'],   P[first day in (i, j)] = π[i] q[j].
//!
//! The recursion uses that structure: the forward step needs only the previous day's level
//! marginals, and the backward variable depends on the level alone, so a day costs
//! O(levels² + states) rather than O(states²). A chain of K levels and one shock is the general
//! K-state Markov chain: models that stored their chain as one full transition matrix load as
//! one.

use serde::{Deserialize, Serialize};

/// One regime's chain of volatility states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolatilityChain {
    /// π: probability of a window's first day being at each level.
    pub level_initial: Vec<f64>,
    /// A: levels x levels day-to-day level transitions, row-major, row-stochastic.
    pub level_transitions: Vec<f64>,
    /// q: probability of each day shock.
    pub shock_probabilities: Vec<f64>,
}

impl VolatilityChain {
    /// The starting point of EM: uniform initial levels and shocks, and persistent levels
    /// (staying probability 0.9), so that EM finds slow volatility before fast noise.
    pub fn persistent(levels: usize, shocks: usize) -> Self {
        let stay = if levels == 1 { 1.0 } else { 0.9 };
        let level_transitions = (0..levels * levels)
            .map(|ij| {
                if ij / levels == ij % levels {
                    stay
                } else {
                    (1.0 - stay) / (levels - 1) as f64
                }
            })
            .collect();
        Self {
            level_initial: vec![1.0 / levels as f64; levels],
            level_transitions,
            shock_probabilities: vec![1.0 / shocks as f64; shocks],
        }
    }

    /// The general `states`-state Markov chain (`initial`, row-major `transitions`) as a chain of
    /// that many levels and a single shock.
    pub fn from_states(initial: Vec<f64>, transitions: Vec<f64>) -> Self {
        Self {
            level_initial: initial,
            level_transitions: transitions,
            shock_probabilities: vec![1.0],
        }
    }

    pub fn levels(&self) -> usize {
        self.level_initial.len()
    }

    pub fn shocks(&self) -> usize {
        self.shock_probabilities.len()
    }

    pub fn states(&self) -> usize {
        self.levels() * self.shocks()
    }

    /// π over the states.
    pub fn initial(&self) -> Vec<f64> {
        let q = &self.shock_probabilities;
        self.level_initial
            .iter()
            .flat_map(|p| q.iter().map(move |s| p * s))
            .collect()
    }

    /// P over the states, states x states, row-major.
    pub fn transitions(&self) -> Vec<f64> {
        let (l, s) = (self.levels(), self.shocks());
        let k = l * s;
        (0..k * k)
            .map(|ij| {
                let (from, to) = (ij / k, ij % k);
                self.level_transitions[(from / s) * l + to / s] * self.shock_probabilities[to % s]
            })
            .collect()
    }

    /// Checks the parts' sizes against `states` and that every probability is one; the message
    /// says which part does not.
    pub fn check(&self, states: usize) -> std::result::Result<(), String> {
        let (l, s) = (self.levels(), self.shocks());
        if l * s != states || self.level_transitions.len() != l * l {
            return Err(format!(
                "its volatility chain of {l} levels x {s} shocks does not have {states} states \
                 and {l} x {l} level transitions"
            ));
        }
        let is_distribution = |p: &[f64]| {
            p.iter().all(|v| v.is_finite() && *v >= 0.0)
                && (p.iter().sum::<f64>() - 1.0).abs() < 1e-6
        };
        if !is_distribution(&self.level_initial)
            || !is_distribution(&self.shock_probabilities)
            || !self.level_transitions.chunks(l).all(is_distribution)
        {
            return Err("its volatility chain has probabilities that do not sum to one".into());
        }
        Ok(())
    }

    /// The level marginals of each of a window's first `days` days.
    pub fn level_marginals(&self, days: usize) -> Vec<Vec<f64>> {
        let l = self.levels();
        let mut p = self.level_initial.clone();
        (0..days)
            .map(|_| {
                let today = p.clone();
                p = (0..l)
                    .map(|j| {
                        (0..l)
                            .map(|i| today[i] * self.level_transitions[i * l + j])
                            .sum()
                    })
                    .collect();
                today
            })
            .collect()
    }

    /// Posterior state probabilities of a sequence of `days` days given the log emission
    /// densities `log_emission` (days x states). Writes `gamma` (days x states); adds the
    /// expected level transitions to `level_counts` (levels x levels) when given; returns the
    /// log-likelihood. Scaled forward-backward (Rabiner 1989): each day's forward vector is
    /// normalised, so nothing under- or overflows over any window length.
    pub fn forward_backward(
        &self,
        log_emission: &[f64],
        days: usize,
        gamma: &mut [f64],
        mut level_counts: Option<&mut [f64]>,
    ) -> f64 {
        let (l, s) = (self.levels(), self.shocks());
        let k = l * s;
        let (a, q) = (&self.level_transitions, &self.shock_probabilities);
        let mut emission = vec![0.0; days * k];
        let mut alpha = vec![0.0; days * k];
        let mut scale = vec![0.0; days];
        // The level marginals of the previous day's α, and the level prior of today.
        let mut marginal = vec![0.0; l];
        let mut level_prior = vec![0.0; l];
        let mut log_likelihood = 0.0;
        for d in 0..days {
            let row = &log_emission[d * k..(d + 1) * k];
            let peak = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if d == 0 {
                level_prior.copy_from_slice(&self.level_initial);
            } else {
                for (to, p) in level_prior.iter_mut().enumerate() {
                    *p = (0..l).map(|from| marginal[from] * a[from * l + to]).sum();
                }
            }
            let mut total = 0.0;
            for i in 0..l {
                for j in 0..s {
                    let state = d * k + i * s + j;
                    emission[state] = (row[i * s + j] - peak).exp();
                    alpha[state] = level_prior[i] * q[j] * emission[state];
                    total += alpha[state];
                }
            }
            let total = f64::max(total, f64::MIN_POSITIVE);
            // One division a day rather than one a state.
            let inverse = 1.0 / total;
            for (i, m) in marginal.iter_mut().enumerate() {
                let today = &mut alpha[d * k + i * s..d * k + (i + 1) * s];
                today.iter_mut().for_each(|v| *v *= inverse);
                *m = today.iter().sum();
            }
            scale[d] = total;
            log_likelihood += total.ln() + peak;
        }
        // β_d depends on the level only; h(i') = Σ_j' q_j' b_d(i', j') β_d(i') / c_d, and
        // β_{d-1}(i) = Σ_i' A[i, i'] h(i').
        let mut beta = vec![1.0; l];
        let mut h = vec![0.0; l];
        for d in (0..days).rev() {
            let g = &mut gamma[d * k..(d + 1) * k];
            let mut norm = 0.0;
            for (state, v) in g.iter_mut().enumerate() {
                *v = alpha[d * k + state] * beta[state / s];
                norm += *v;
            }
            let inverse = 1.0 / norm.max(f64::MIN_POSITIVE);
            g.iter_mut().for_each(|v| *v *= inverse);
            if d == 0 {
                break;
            }
            for (i, hi) in h.iter_mut().enumerate() {
                let b = &emission[d * k + i * s..d * k + (i + 1) * s];
                *hi = b.iter().zip(q).map(|(b, q)| b * q).sum::<f64>() * beta[i] / scale[d];
            }
            if let Some(counts) = level_counts.as_deref_mut() {
                let before = &alpha[(d - 1) * k..d * k];
                for from in 0..l {
                    let m: f64 = before[from * s..(from + 1) * s].iter().sum();
                    for to in 0..l {
                        counts[from * l + to] += m * a[from * l + to] * h[to];
                    }
                }
            }
            for (i, b) in beta.iter_mut().enumerate() {
                *b = (0..l).map(|to| a[i * l + to] * h[to]).sum();
            }
        }
        log_likelihood
    }

    /// The M-step from the expected first-day states, expected level transitions and expected
    /// states summed over all days, with `pseudo_count` added to every level transition (so that
    /// none becomes impossible: a zero would make a later window that needs it infinitely
    /// unlikely).
    pub(super) fn update(
        &mut self,
        first: &[f64],
        level_counts: &[f64],
        occupancy: &[f64],
        pseudo_count: f64,
    ) {
        let (l, s) = (self.levels(), self.shocks());
        let normalise = |v: &mut [f64]| {
            let total: f64 = v.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            v.iter_mut().for_each(|x| *x /= total);
        };
        self.level_initial = first.chunks(s).map(|level| level.iter().sum()).collect();
        normalise(&mut self.level_initial);
        // A shock is drawn on every day, the first included.
        self.shock_probabilities = (0..s)
            .map(|j| (0..l).map(|i| occupancy[i * s + j]).sum())
            .collect();
        normalise(&mut self.shock_probabilities);
        self.level_transitions = level_counts.iter().map(|c| c + pseudo_count).collect();
        for row in self.level_transitions.chunks_mut(l) {
            normalise(row);
        }
    }
}
