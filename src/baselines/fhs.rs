//! Filtered historical simulation: per-asset GARCH(1,1) fitted on all train returns; whole days
//! of standardised residuals resampled jointly (keeping the cross-asset dependence); each path
//! starts from the conditional variances of a random train day of the regime.

use super::garch::{fit_asset_garch, Garch11, GarchPanel};
use super::PathGenerator;
use crate::data::DailyPanel;
use crate::error::Result;
use crate::rng::SeededRng;

/// Per-asset GARCH(1,1) and its fit's standardised residuals: FHS's paths from any starting
/// variances.
pub struct FhsModel {
    pub params: Vec<Garch11>,
    /// Standardised residuals, one row of all assets per fitting day.
    pub residuals: Vec<Vec<f64>>,
}

impl FhsModel {
    /// A panel's fits with the residuals of its first `fit_days` days.
    pub fn from_panel(garch: &GarchPanel, fit_days: usize) -> Self {
        let residuals = (0..fit_days)
            .map(|d| {
                garch
                    .params
                    .iter()
                    .enumerate()
                    .map(|(a, p)| (garch.returns[a][d] - p.mu) / garch.variances[a][d].sqrt())
                    .collect()
            })
            .collect();
        Self {
            params: garch.params.clone(),
            residuals,
        }
    }

    /// Appends a path of `len` days (day-major) started from the conditional variances
    /// `start`: each day a whole residual day drawn, scaled by each asset's variance, which the
    /// GARCH recursion then carries on.
    pub fn path(&self, start: &[f64], len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        let mut var = start.to_vec();
        for _ in 0..len {
            let z = &self.residuals[rng.below(self.residuals.len())];
            for (a, p) in self.params.iter().enumerate() {
                let e = var[a].sqrt() * z[a];
                out.push(p.mu + e);
                var[a] = p.next_variance(e, var[a]);
            }
        }
    }
}

pub(super) struct Fhs {
    model: FhsModel,
    log_likelihoods: Vec<f64>,
    /// Conditional variances for the day after each of the regime's train days.
    start_variances: Vec<Vec<f64>>,
}

impl Fhs {
    /// `all_train`: every train day (the GARCH series); `regime_days`: the regime's train days.
    pub(super) fn fit(
        all_train: &DailyPanel,
        regime_days: &DailyPanel,
        assets: &[String],
    ) -> Result<Self> {
        let n = all_train.assets;
        let mut params = Vec::with_capacity(n);
        let mut log_likelihoods = Vec::with_capacity(n);
        let mut variances = Vec::with_capacity(n);
        for (a, asset) in assets.iter().enumerate() {
            let fit = fit_asset_garch(&all_train.column(a), &[], asset)?;
            params.push(fit.params);
            log_likelihoods.push(fit.log_likelihood);
            variances.push(fit.variances);
        }
        let residuals = (0..all_train.len())
            .map(|d| {
                let day = all_train.day(d);
                (0..n)
                    .map(|a| (day[a] - params[a].mu) / variances[a][d].sqrt())
                    .collect()
            })
            .collect();
        let index_of: std::collections::HashMap<i32, usize> = all_train
            .dates
            .iter()
            .enumerate()
            .map(|(i, d)| (*d, i))
            .collect();
        let start_variances = regime_days
            .dates
            .iter()
            .map(|date| {
                let d = index_of[date];
                let day = all_train.day(d);
                (0..n)
                    .map(|a| params[a].next_variance(day[a] - params[a].mu, variances[a][d]))
                    .collect()
            })
            .collect();
        Ok(Self {
            model: FhsModel { params, residuals },
            log_likelihoods,
            start_variances,
        })
    }
}

impl PathGenerator for Fhs {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        let start = &self.start_variances[rng.below(self.start_variances.len())];
        self.model.path(start, len, rng, out);
    }

    fn parameters(&self) -> String {
        serde_json::json!({
            "garch11": self.model.params,
            "log_likelihood_percent": self.log_likelihoods,
            "residual_days": self.model.residuals.len(),
            "start_days": self.start_variances.len(),
        })
        .to_string()
    }
}

/// FHS as of a close: every path from the close's own conditional variances.
pub(super) struct FhsAsOf {
    pub model: FhsModel,
    pub start: Vec<f64>,
}

impl PathGenerator for FhsAsOf {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        self.model.path(&self.start, len, rng, out);
    }

    fn parameters(&self) -> String {
        serde_json::json!({
            "garch11": self.model.params,
            "residual_days": self.model.residuals.len(),
            "start_variances": self.start,
        })
        .to_string()
    }
}
