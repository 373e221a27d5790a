//! `diffusion-state`: the diffusion model's scenarios as of each date, as `generate --as-of`
//! draws them. The regime in force picks the prior's chain, the days up to the close pick its
//! volatility level (`generate::LevelSets`: one set of paths per regime and starting level,
//! mixed in each date's proportions), and every day of the paths is mapped onto the covariance
//! of the assets' GARCH variance forecasts from the close (FHS's fits) and the close's EWMA
//! correlation: the state's covariance, the diffusion model's joint paths.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Ensemble, Forecaster, History};
use crate::baselines::GarchPanel;
use crate::diffusion::SamplerKind;
use crate::error::{Error, Result};
use crate::generate::{
    default_guidance, market_levels, CovarianceTarget, LevelSets, PathDraw, CORRELATION_LAMBDA,
};
use crate::io::{format_date, parse_date};
use crate::model::{load_model, Engine, LoadedModel, ModelCard};

/// The generator's name.
pub const DIFFUSION_STATE: &str = "diffusion-state";

pub struct DiffusionState {
    card: ModelCard,
    returns: Vec<Vec<f64>>,
    dates: Vec<i32>,
    /// Per regime label, its paths per starting level.
    regimes: BTreeMap<String, LevelSets>,
    /// FHS's GARCH fits, whose variance forecasts the paths are mapped onto.
    garch: GarchPanel,
    /// The correlation of the GARCH residuals of the days before the test period.
    long_run: Vec<f64>,
    paths: usize,
    seed: u64,
}

/// The model in `dir` for forecasts from the close before `from` on, `longest` days ahead:
/// refused, naming the folder, when it was trained on days from `from` on (it would look ahead)
/// or its paths are shorter than `longest`.
pub fn load_model_before(dir: &Path, from: i32, longest: usize) -> Result<LoadedModel> {
    let model = load_model(dir, &candle_core::Device::Cpu)?;
    let cut_off = parse_date("model", &model.card.training.test_from)?;
    if cut_off > from {
        return Err(Error::option(
            "model",
            dir.display(),
            format!(
                "was trained on days up to {}, after the first forecast date {}: it would look ahead",
                model.card.training.test_from,
                format_date(from)
            ),
        ));
    }
    if longest > model.card.window {
        return Err(Error::option(
            "horizons",
            longest,
            format!(
                "longer than the {}-day paths of {}",
                model.card.window,
                dir.display()
            ),
        ));
    }
    Ok(model)
}

impl DiffusionState {
    /// Draws `paths` paths per regime and starting level from `model` with `sampler` and
    /// `seed`; `dates` are the history's return days, `garch` FHS's fits on them.
    pub fn draw(
        mut model: LoadedModel,
        history: &History,
        dates: &[i32],
        garch: GarchPanel,
        (paths, seed, sampler): (usize, u64, SamplerKind),
    ) -> Result<Self> {
        let guidance = default_guidance(&model.card);
        let mut regimes = BTreeMap::new();
        for (regime, label) in model.card.labels.clone().into_iter().enumerate() {
            let draw = PathDraw {
                regime,
                sampler,
                guidance,
                seed,
            };
            let bar = indicatif::ProgressBar::hidden();
            let sets = LevelSets::draw(&mut model, Engine::Auto, &draw, paths, &bar)?;
            regimes.insert(label, sets);
        }
        Ok(Self {
            card: model.card,
            returns: history.returns.to_vec(),
            dates: dates.to_vec(),
            regimes,
            long_run: garch.long_run_correlation(history.first_test_day),
            garch,
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
        let sets = &self.regimes[regime];
        let mut paths = sets.mixed(&levels, self.paths, horizon, self.seed, t as u64);
        let garch = &self.garch;
        let variances = garch.variance_forecasts(t, horizon);
        let correlation = garch.correlation_at(t, &self.long_run, CORRELATION_LAMBDA);
        CovarianceTarget::new(&self.card, class, &levels, &variances, &correlation)
            .apply(&mut paths);
        Ok(Ensemble::Own(paths))
    }
}
