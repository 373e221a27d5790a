//! Filtered historical simulation: per-asset GARCH(1,1) fitted on all train returns; whole days
//! of standardised residuals resampled jointly (keeping the cross-asset dependence); each path
//! starts from the conditional variances of a random train day of the regime.

use super::garch::{fit_asset_garch, Garch11};
use super::PathGenerator;
use crate::data::DailyPanel;
use crate::error::Result;
use crate::rng::SeededRng;

pub(super) struct Fhs {
    params: Vec<Garch11>,
    log_likelihoods: Vec<f64>,
    /// Standardised residuals, one row of all assets per train day.
    residuals: Vec<Vec<f64>>,
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
            params,
            log_likelihoods,
            residuals,
            start_variances,
        })
    }
}

impl PathGenerator for Fhs {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        let mut var = self.start_variances[rng.below(self.start_variances.len())].clone();
        for _ in 0..len {
            let z = &self.residuals[rng.below(self.residuals.len())];
            for (a, p) in self.params.iter().enumerate() {
                let e = var[a].sqrt() * z[a];
                out.push(p.mu + e);
                var[a] = p.next_variance(e, var[a]);
            }
        }
    }

    fn parameters(&self) -> String {
        serde_json::json!({
            "garch11": self.params,
            "log_likelihood_percent": self.log_likelihoods,
            "residual_days": self.residuals.len(),
            "start_days": self.start_variances.len(),
        })
        .to_string()
    }
}
