//! A synthetic panel whose truth is known, for scaling benches and for trying the pipeline on
//! any width: daily log returns of `assets` assets driven by `factors` Gaussian factors (the
//! first a market factor every asset loads on) and fat-tailed idiosyncratic noise, in a market
//! that switches between a calm and a stressed volatility state (a two-state Markov chain); and
//! an equal-weight index of them, whose realised volatility labels the regimes at ingest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Panel;
use crate::error::{Error, Result};
use crate::rng::{SeededRng, DEFAULT_SEED};

/// Daily volatility of the market factor in the calm and the stressed state (about 11% and
/// 32% a year); the other factors move half as much.
const FACTOR_VOL: [f64; 2] = [0.007, 0.020];
/// Daily idiosyncratic volatility in each state: it rises less than the factors', so
/// correlations rise in stress, as in real markets.
const IDIOSYNCRATIC_VOL: [f64; 2] = [0.010, 0.015];
/// Probability of staying in each state from one day to the next (mean stays of 100 and 33 days).
const STAY: [f64; 2] = [0.99, 0.97];
/// Degrees of freedom of the idiosyncratic Student-t days.
const DOF: usize = 5;
/// Day number of 1990-01-01, a Monday: the first date.
const FIRST_DAY: i32 = 7305;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    pub assets: usize,
    /// Factors including the market (at least 1).
    pub factors: usize,
    /// Trading days (weekdays from 1990-01-01).
    pub days: usize,
    pub seed: u64,
    /// The panel of log returns.
    pub out: PathBuf,
    /// The index's levels, in a column `index`, for `ingest --index FILE:index`.
    pub index_out: PathBuf,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            assets: 50,
            factors: 4,
            days: 5040,
            seed: DEFAULT_SEED,
            out: "data/synthetic.parquet".into(),
            index_out: "data/synthetic_index.parquet".into(),
        }
    }
}

/// The panel's truth: loadings and each state's daily covariance.
#[derive(Debug, Clone)]
pub struct SyntheticTruth {
    /// `assets × factors`, row-major.
    pub loadings: Vec<f64>,
    /// Each day's state: 0 calm, 1 stressed.
    pub states: Vec<u8>,
}

impl SyntheticConfig {
    fn check(&self) -> Result<()> {
        let bad =
            |option: &str, value: usize, reason: &str| Err(Error::option(option, value, reason));
        if !(2..=5000).contains(&self.assets) {
            return bad("assets", self.assets, "must be 2 to 5,000");
        }
        if self.factors == 0 || self.factors > self.assets {
            return bad("factors", self.factors, "must be 1 to the number of assets");
        }
        if !(100..=100_000).contains(&self.days) {
            return bad("days", self.days, "must be 100 to 100,000");
        }
        Ok(())
    }

    /// The daily covariance of state `state` (0 calm, 1 stressed) given `loadings`,
    /// `assets × assets` row-major.
    pub fn covariance(&self, loadings: &[f64], state: usize) -> Vec<f64> {
        let (n, k) = (self.assets, self.factors);
        let factor_var = |f: usize| (FACTOR_VOL[state] * if f == 0 { 1.0 } else { 0.5 }).powi(2);
        let mut cov = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                cov[i * n + j] = (0..k)
                    .map(|f| loadings[i * k + f] * loadings[j * k + f] * factor_var(f))
                    .sum();
            }
            cov[i * n + i] += IDIOSYNCRATIC_VOL[state].powi(2);
        }
        cov
    }
}

/// Generates the panel and its index and writes both; returns the truth.
pub fn write_synthetic_panel(config: &SyntheticConfig) -> Result<SyntheticTruth> {
    config.check()?;
    let (n, k) = (config.assets, config.factors);
    let mut rng = SeededRng::new(config.seed, 0);
    let loadings: Vec<f64> = (0..n * k)
        .map(|i| match i % k {
            0 => 0.8 + 0.4 * rng.uniform(),
            _ => 0.5 * rng.normal(),
        })
        .collect();
    let mut states = Vec::with_capacity(config.days);
    let mut state = 0usize;
    let mut columns = vec![Vec::with_capacity(config.days); n];
    let (mut level, mut index) = (100.0, Vec::with_capacity(config.days));
    for _ in 0..config.days {
        if rng.uniform() > STAY[state] {
            state = 1 - state;
        }
        states.push(state as u8);
        let factors: Vec<f64> = (0..k)
            .map(|f| FACTOR_VOL[state] * if f == 0 { 1.0 } else { 0.5 } * rng.normal())
            .collect();
        let mut mean = 0.0;
        for (i, column) in columns.iter_mut().enumerate() {
            let common: f64 = (0..k).map(|f| loadings[i * k + f] * factors[f]).sum();
            let r = common + IDIOSYNCRATIC_VOL[state] * student_t(&mut rng);
            mean += r / n as f64;
            column.push(r);
        }
        level *= mean.exp();
        index.push(level);
    }
    let dates = weekdays(config.days);
    let metadata = BTreeMap::from([(
        "scengen.synthetic".to_string(),
        format!(
            "assets={n} factors={k} days={} seed={}",
            config.days, config.seed
        ),
    )]);
    let assets = (1..=n).map(|i| format!("A{i:04}")).collect();
    write(&config.out, &dates, assets, columns, &metadata)?;
    write(
        &config.index_out,
        &dates,
        vec!["index".into()],
        vec![index],
        &metadata,
    )?;
    Ok(SyntheticTruth { loadings, states })
}

fn write(
    out: &Path,
    dates: &[i32],
    assets: Vec<String>,
    columns: Vec<Vec<f64>>,
    metadata: &BTreeMap<String, String>,
) -> Result<PathBuf> {
    let panel = Panel {
        path: out.to_path_buf(),
        dates: dates.to_vec(),
        assets,
        columns,
    };
    panel.write(out, metadata)
}

/// A Student-t draw with [`DOF`] degrees of freedom, scaled to unit variance.
fn student_t(rng: &mut SeededRng) -> f64 {
    let chi2: f64 = (0..DOF).map(|_| rng.normal().powi(2)).sum();
    let dof = DOF as f64;
    rng.normal() * ((dof - 2.0) / chi2).sqrt()
}

/// The first `count` weekdays from [`FIRST_DAY`].
fn weekdays(count: usize) -> Vec<i32> {
    (0..)
        .map(|i| FIRST_DAY + i)
        // 1970-01-01 was a Thursday: day d is a weekday unless (d + 3) % 7 is 5 or 6.
        .filter(|d| (d + 3) % 7 < 5)
        .take(count)
        .collect()
}
