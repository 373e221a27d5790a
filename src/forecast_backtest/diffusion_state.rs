//! `diffusion-state`: the diffusion model's scenarios as of each date, its windows started from
//! the market's volatility state at the date's close (`generate::LevelSets`): the regime in
//! force picks the chain, the days up to the close pick its level.

use std::collections::BTreeMap;
use std::path::Path;

use super::forecasters::{Ensemble, Forecaster, History};
use crate::error::Result;
use crate::generate::{default_guidance, market_levels, LevelSets, PathDraw, DEFAULT_SAMPLER};
use crate::model::{load_model, Engine, ModelCard};

/// The generator's name.
pub const DIFFUSION_STATE: &str = "diffusion-state";

pub struct DiffusionState {
    card: ModelCard,
    returns: Vec<Vec<f64>>,
    dates: Vec<i32>,
    /// Per regime label, its paths per starting level.
    sets: BTreeMap<String, LevelSets>,
    paths: usize,
    seed: u64,
}

impl DiffusionState {
    /// Draws `paths` paths per regime and starting level from the model in `dir` with the
    /// default sampler; `dates` are the history's return days.
    pub fn draw(
        dir: &Path,
        history: &History,
        dates: &[i32],
        paths: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut model = load_model(dir, &candle_core::Device::Cpu)?;
        let guidance = default_guidance(&model.card);
        let mut sets = BTreeMap::new();
        for (regime, label) in model.card.labels.clone().into_iter().enumerate() {
            let draw = PathDraw {
                regime,
                sampler: DEFAULT_SAMPLER,
                guidance,
                seed,
            };
            let bar = indicatif::ProgressBar::hidden();
            sets.insert(
                label,
                LevelSets::draw(&mut model, Engine::Auto, &draw, paths, &bar)?,
            );
        }
        Ok(Self {
            card: model.card,
            returns: history.returns.to_vec(),
            dates: dates.to_vec(),
            sets,
            paths,
            seed,
        })
    }
}

impl Forecaster for DiffusionState {
    fn name(&self) -> &str {
        DIFFUSION_STATE
    }

    fn classical(&self) -> bool {
        false
    }

    fn ensemble(&self, t: usize, regime: &str, horizon: usize) -> Result<Ensemble<'_>> {
        let class = self.card.regime_index(regime)?;
        let levels = market_levels(&self.card, class, &self.returns, &self.dates, t)?;
        let sets = &self.sets[regime];
        Ok(Ensemble::Own(
            sets.mixed(&levels, self.paths, horizon, self.seed, t as u64),
        ))
    }
}
