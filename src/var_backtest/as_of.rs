//! The VaR models as of each morning: with a model folder, the diffusion model's scenarios
//! started from the market's state at the previous close (`diffusion-state`) and FHS-GARCH
//! started from each asset's GARCH variance at that close (`fhs`), drawn afresh every morning
//! from data up to that close only ([`crate::forecasters`]). Their VaR needs no EWMA scaling:
//! the state they start from is the day's.

use std::collections::BTreeMap;

use super::models::VarModel;
use crate::error::Result;
use crate::forecasters::{
    DiffusionState, Ensemble, FhsAsOf, Forecaster, History, DIFFUSION_STATE, FHS,
};
use crate::model::LoadedModel;
use crate::risk::horizon_pnl;
use crate::stats::var_cvar;

/// The generators as of each morning, by name.
#[derive(Default)]
pub(super) struct AsOfModels {
    forecasters: BTreeMap<String, Box<dyn Forecaster>>,
    /// Assets per day of a path.
    assets: usize,
}

impl AsOfModels {
    /// The generators drawn as of each morning.
    pub const METHODS: [&str; 2] = [DIFFUSION_STATE, FHS];

    /// FHS fitted on the return days before `first_test_day` and the diffusion model's level
    /// sets (`paths` per regime and starting level), both with `seed`; `returns[a]` is asset
    /// a's log returns on `dates`, in the model's asset order.
    pub fn build(
        model: LoadedModel,
        history: &History,
        dates: &[i32],
        (paths, seed): (usize, u64),
    ) -> Result<Self> {
        let fhs = FhsAsOf::fit(history, paths, seed)?;
        let sampler = crate::generate::model_sampler(&model.card);
        let garch = fhs.garch.clone();
        let state = DiffusionState::draw(model, history, dates, garch, (paths, seed, sampler))?;
        let forecasters: [Box<dyn Forecaster>; 2] = [Box::new(state), Box::new(fhs)];
        Ok(Self {
            forecasters: forecasters
                .into_iter()
                .map(|f| (f.name().to_string(), f))
                .collect(),
            assets: history.assets.len(),
        })
    }

    /// The models, as the backtest lists them.
    pub fn models(&self) -> Vec<VarModel> {
        self.forecasters
            .keys()
            .map(|name| VarModel {
                name: name.clone(),
                method: name.clone(),
                ewma_scaled: false,
                as_of: true,
                files: BTreeMap::new(),
            })
            .collect()
    }

    /// Per level, the VaR of `method` for holding `exposures` over `horizon` days from the
    /// close of return day `close`, with `regime` in force the morning after.
    pub fn var(
        &self,
        method: &str,
        (close, regime, horizon): (usize, &str, usize),
        exposures: &[(usize, f64)],
        levels: &[f64],
    ) -> Result<Vec<f64>> {
        let forecaster = &self.forecasters[method];
        let n = self.assets;
        let pnl = match forecaster.ensemble(close, regime, horizon)? {
            Ensemble::Own(paths) => horizon_pnl(&paths, horizon, n, exposures, horizon),
            Ensemble::Shared { paths, window, .. } => {
                horizon_pnl(paths, window, n, exposures, horizon)
            }
            Ensemble::Outcomes(_) => unreachable!("the as-of models draw paths"),
        }
        .total;
        Ok(levels.iter().map(|&l| var_cvar(&pnl, l).0).collect())
    }
}
