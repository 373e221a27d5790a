//! The backtest in numbers: each generator's mean score per horizon with the best marked, the
//! Diebold–Mariano tests of its difference from FHS and from the best classical generator, the
//! uniformity of its PIT values, and its VaR coverage of the book.

use serde::Serialize;

use super::scoring::SCORES;
use super::{ForecastBacktest, HorizonScores};
use crate::forecasters::FHS;
use crate::stats::{
    christoffersen_independence, diebold_mariano, kstwo_sf, kupiec_pof, LikelihoodRatio,
};

/// PIT histogram bins.
pub const PIT_BINS: usize = 10;

/// One score at one horizon: every generator's mean, in the report's generator order.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreRow {
    pub horizon: usize,
    pub score: String,
    pub forecasts: usize,
    pub means: Vec<f64>,
    /// The generator with the lowest mean.
    pub best: String,
    /// The classical generator with the lowest mean.
    pub best_classical: String,
}

/// A Diebold–Mariano test of `generator` against `against` on one score and horizon.
#[derive(Debug, Clone, Serialize)]
pub struct TestRow {
    pub horizon: usize,
    pub score: String,
    pub generator: String,
    pub against: String,
    /// Mean of score(generator) − score(against): negative when the generator is better.
    pub mean_difference: f64,
    pub statistic: f64,
    pub p_value: f64,
    /// Newey–West lags: forecasts whose outcomes overlap, ⌈h / every⌉ − 1.
    pub lags: usize,
}

/// How uniform one generator's PIT values of the equal-weight return are at one horizon.
#[derive(Debug, Clone, Serialize)]
pub struct PitRow {
    pub horizon: usize,
    pub generator: String,
    /// One-sample Kolmogorov–Smirnov distance from U(0, 1), and its p-value (indicative:
    /// overlapping outcomes are dependent).
    pub ks_statistic: f64,
    pub p_value: f64,
    /// Share of the PIT values in each of [`PIT_BINS`] equal bins.
    pub histogram: Vec<f64>,
}

/// One generator's VaR coverage of the book at one horizon and level.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageRow {
    pub horizon: usize,
    pub generator: String,
    pub level: f64,
    pub forecasts: usize,
    pub exceedances: usize,
    pub expected: f64,
    pub kupiec: LikelihoodRatio,
    pub independence: LikelihoodRatio,
}

/// Fills the summary, the tests, the PIT rows and the coverage of `b` from its scores.
pub(super) fn summarise(mut b: ForecastBacktest) -> ForecastBacktest {
    let names: Vec<String> = b.generators.iter().map(|g| g.name.clone()).collect();
    let classical: Vec<bool> = b.generators.iter().map(|g| g.classical).collect();
    for h in &b.horizons {
        let lags = h.horizon.div_ceil(b.config.every) - 1;
        for score in SCORES {
            let row = score_row(h, score, &names, &classical);
            b.tests.extend(tests(h, score, &names, &row, lags));
            b.summary.push(row);
        }
        for (g, name) in names.iter().enumerate() {
            b.pit.push(pit_row(h, g, name));
            for (l, &level) in b.config.levels.iter().enumerate() {
                let hits: Vec<bool> = h.scores[g].iter().map(|s| s.exceeded[l]).collect();
                let exceedances = hits.iter().filter(|&&x| x).count();
                b.coverage.push(CoverageRow {
                    horizon: h.horizon,
                    generator: name.clone(),
                    level,
                    forecasts: hits.len(),
                    exceedances,
                    expected: (1.0 - level) * hits.len() as f64,
                    kupiec: kupiec_pof(hits.len(), exceedances, 1.0 - level),
                    independence: christoffersen_independence(&hits),
                });
            }
        }
    }
    b
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n as f64
}

fn score_row(h: &HorizonScores, score: &str, names: &[String], classical: &[bool]) -> ScoreRow {
    let means: Vec<f64> = h
        .scores
        .iter()
        .map(|per_date| mean(per_date.iter().map(|s| s.get(score))))
        .collect();
    let lowest = |keep: &dyn Fn(usize) -> bool| {
        (0..names.len())
            .filter(|&g| keep(g))
            .min_by(|&a, &b| means[a].total_cmp(&means[b]))
            .map_or_else(String::new, |g| names[g].clone())
    };
    ScoreRow {
        horizon: h.horizon,
        score: score.to_string(),
        forecasts: h.dates.len(),
        best: lowest(&|_| true),
        best_classical: lowest(&|g| classical[g]),
        means,
    }
}

/// Each generator against FHS and against the best classical generator (when that is another).
fn tests(
    h: &HorizonScores,
    score: &str,
    names: &[String],
    row: &ScoreRow,
    lags: usize,
) -> Vec<TestRow> {
    let index = |name: &str| names.iter().position(|n| n == name);
    let mut out = Vec::new();
    for (g, name) in names.iter().enumerate() {
        let mut against = vec![FHS.to_string()];
        if row.best_classical != FHS {
            against.push(row.best_classical.clone());
        }
        for other in against.into_iter().filter(|o| o != name) {
            let Some(o) = index(&other) else { continue };
            let d: Vec<f64> = h.scores[g]
                .iter()
                .zip(&h.scores[o])
                .map(|(a, b)| a.get(score) - b.get(score))
                .collect();
            let test = diebold_mariano(&d, lags);
            out.push(TestRow {
                horizon: h.horizon,
                score: score.to_string(),
                generator: name.clone(),
                against: other,
                mean_difference: test.mean_difference,
                statistic: test.statistic,
                p_value: test.p_value,
                lags,
            });
        }
    }
    out
}

fn pit_row(h: &HorizonScores, g: usize, name: &str) -> PitRow {
    let mut pit: Vec<f64> = h.scores[g].iter().map(|s| s.pit_ew).collect();
    pit.sort_by(f64::total_cmp);
    let n = pit.len();
    let ks_statistic = pit
        .iter()
        .enumerate()
        .map(|(i, &u)| (((i + 1) as f64 / n as f64) - u).max(u - i as f64 / n as f64))
        .fold(0.0, f64::max);
    let mut histogram = vec![0.0; PIT_BINS];
    for u in &pit {
        histogram[((u * PIT_BINS as f64) as usize).min(PIT_BINS - 1)] += 1.0 / n as f64;
    }
    PitRow {
        horizon: h.horizon,
        generator: name.to_string(),
        ks_statistic,
        p_value: kstwo_sf(n as u64, ks_statistic),
        histogram,
    }
}
