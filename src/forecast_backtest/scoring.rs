//! One forecast scored against what happened: the h-day outcomes of an ensemble (each asset's
//! log return, the equal-weight portfolio's simple return, the book's P&L), and every score of
//! them at the realised outcome.

use crate::stats::{
    crps_ensemble, energy_score_with_spread, energy_spread, var_cvar, variogram_means,
    variogram_score_with_means, Estimator,
};

/// The estimator every kernel score uses: fair, so that ensembles of different sizes (1,000
/// paths against a few hundred historical outcomes) are compared on the expected score of the
/// law they are drawn from, not on their sample size.
pub const ESTIMATOR: Estimator = Estimator::Fair;

/// The variogram score's order.
pub const VARIOGRAM_P: f64 = 0.5;

/// What an ensemble says about h days ahead, with the parts of its scores that do not depend on
/// the outcome.
pub struct Outcomes {
    /// Members x assets h-day log returns.
    pub vectors: Vec<f64>,
    pub assets: usize,
    /// Per asset, the members' h-day log returns, sorted.
    columns: Vec<Vec<f64>>,
    /// The members' equal-weight portfolio simple returns.
    pub equal_weight: Vec<f64>,
    /// The members' P&L of the book, per level the VaR (a loss, positive).
    pub var: Vec<f64>,
    energy_spread: f64,
    variogram_means: Vec<f64>,
}

impl Outcomes {
    /// From `vectors` (members x assets h-day log returns), with `exposures` (asset, market
    /// value) of the book and its VaR `levels`.
    pub fn new(
        vectors: Vec<f64>,
        assets: usize,
        exposures: &[(usize, f64)],
        levels: &[f64],
    ) -> Self {
        let columns = (0..assets)
            .map(|a| {
                let mut c: Vec<f64> = vectors.iter().skip(a).step_by(assets).copied().collect();
                c.sort_by(f64::total_cmp);
                c
            })
            .collect();
        let equal_weight = vectors
            .chunks_exact(assets)
            .map(equal_weight_return)
            .collect();
        let pnl: Vec<f64> = vectors
            .chunks_exact(assets)
            .map(|v| book_pnl(v, exposures))
            .collect();
        let var = levels.iter().map(|&l| var_cvar(&pnl, l).0).collect();
        Self {
            energy_spread: energy_spread(&vectors, assets),
            variogram_means: variogram_means(&vectors, assets, VARIOGRAM_P),
            columns,
            equal_weight,
            var,
            vectors,
            assets,
        }
    }

    /// Every score at the realised h-day log returns `y`.
    pub fn score(&self, y: &[f64], exposures: &[(usize, f64)]) -> DateScores {
        let realised_ew = equal_weight_return(y);
        let per_asset: Vec<f64> = self
            .columns
            .iter()
            .zip(y)
            .map(|(c, &obs)| crps_ensemble(c, obs, ESTIMATOR))
            .collect();
        let below = self
            .equal_weight
            .iter()
            .filter(|&&x| x < realised_ew)
            .count();
        let ties = self
            .equal_weight
            .iter()
            .filter(|&&x| x == realised_ew)
            .count();
        let realised_pnl = book_pnl(y, exposures);
        DateScores {
            energy: energy_score_with_spread(
                &self.vectors,
                self.assets,
                y,
                self.energy_spread,
                ESTIMATOR,
            ),
            crps_ew: crps_ensemble(&self.equal_weight, realised_ew, ESTIMATOR),
            crps_assets: per_asset.iter().sum::<f64>() / per_asset.len() as f64,
            variogram: variogram_score_with_means(y, &self.variogram_means, VARIOGRAM_P),
            pit_ew: (below as f64 + 0.5 * ties as f64) / self.equal_weight.len() as f64,
            per_asset,
            exceeded: self.var.iter().map(|v| -realised_pnl > *v).collect(),
        }
    }
}

/// Every score of one forecast at one outcome.
#[derive(Debug, Clone)]
pub struct DateScores {
    pub energy: f64,
    pub crps_ew: f64,
    /// The mean over assets of each asset's CRPS.
    pub crps_assets: f64,
    pub variogram: f64,
    /// Where the realised equal-weight return falls in the forecast's distribution.
    pub pit_ew: f64,
    pub per_asset: Vec<f64>,
    /// Per VaR level, whether the book's loss exceeded the forecast VaR.
    pub exceeded: Vec<bool>,
}

/// The scores every row of the summary compares, by name, in this order.
pub const SCORES: [&str; 4] = ["energy", "crps_ew", "crps_assets", "variogram"];

impl DateScores {
    /// The value of one of [`SCORES`].
    pub fn get(&self, score: &str) -> f64 {
        match score {
            "energy" => self.energy,
            "crps_ew" => self.crps_ew,
            "crps_assets" => self.crps_assets,
            "variogram" => self.variogram,
            other => unreachable!("no score `{other}`"),
        }
    }
}

/// The equal-weight portfolio's simple return from each asset's log return.
pub fn equal_weight_return(log_returns: &[f64]) -> f64 {
    log_returns.iter().map(|r| r.exp_m1()).sum::<f64>() / log_returns.len() as f64
}

/// The P&L of holding `exposures` (asset, market value) over the log returns.
pub fn book_pnl(log_returns: &[f64], exposures: &[(usize, f64)]) -> f64 {
    exposures
        .iter()
        .map(|&(a, v)| v * log_returns[a].exp_m1())
        .sum()
}
