//! Scenarios as of a market state. The prior's volatility chain is a state-space model of the
//! regime's days, so the state the market is in at a close is the chain's filter run over the
//! days up to it (`GaussianPrior::next_day_levels`): windows drawn from the prior started
//! there carry today's volatility level forward and revert as the chain's transitions say,
//! the way GARCH carries its conditional variance. The network's correction is the same.
//!
//! The filter needs only the level's distribution, so a set of paths per starting level
//! covers every date: the paths as of a date are the levels' sets mixed in its proportions
//! ([`LevelSets`]), exact under the model, and a backtest of hundreds of dates draws
//! `levels x paths` paths per regime instead of `dates x paths`.

use crate::baselines::GarchPanel;
use crate::data::AsOf;
use crate::error::{Error, Result};
use crate::io::format_date;
use crate::model::{Engine, LoadedModel, ModelCard};
use crate::rng::SeededRng;

use super::{sample_paths, PathDraw};

/// The model's standardised returns of the `window` return days up to and including day `t`
/// (day-major, one row of the model's assets per day), from `returns[a][t]`, asset a's daily
/// log return on day t, and the days' dates for the messages.
pub fn standardised_days(
    card: &ModelCard,
    returns: &[Vec<f64>],
    dates: &[i32],
    t: usize,
) -> Result<Vec<f32>> {
    let days = card.window;
    if t + 1 < days {
        return Err(Error::option(
            "as-of",
            format_date(dates[t]),
            format!(
                "has {} return days up to it; the market's state needs the {days} before",
                t + 1
            ),
        ));
    }
    let norm = &card.normalisation;
    Ok((t + 1 - days..=t)
        .flat_map(|d| {
            returns
                .iter()
                .enumerate()
                .map(move |(a, r)| ((r[d] - norm.mean[a]) / norm.std[a]) as f32)
        })
        .collect())
}

/// The distribution of regime `regime`'s volatility level on the day after day `t`.
pub fn market_levels(
    card: &ModelCard,
    regime: usize,
    returns: &[Vec<f64>],
    dates: &[i32],
    t: usize,
) -> Result<Vec<f64>> {
    let days = standardised_days(card, returns, dates, t)?;
    Ok(match &card.prior {
        Some(prior) => prior.next_day_levels(regime, &days),
        None => vec![1.0],
    })
}

/// Factors (day-major, one per asset) that rescale paths of regime `regime` started from
/// `levels` so that asset a's variance on day d is `target[d * assets + a]` (daily log
/// returns², e.g. GARCH's forecasts): the model's own variance there is its prior's
/// ([`crate::model::GaussianPrior::day_variances`]), in return units. The network's correction
/// moves it by a few percent, which the factors leave.
pub fn variance_factors(
    card: &ModelCard,
    regime: usize,
    levels: &[f64],
    target: &[f64],
) -> Vec<f64> {
    let assets = card.assets.len();
    let days = target.len() / assets;
    let std = &card.normalisation.std;
    let model = match &card.prior {
        Some(prior) => prior.day_variances(regime, levels, days),
        None => vec![1.0; days * assets],
    };
    model
        .iter()
        .zip(target)
        .enumerate()
        .map(|(k, (v, t))| (t / (v * std[k % assets] * std[k % assets])).sqrt())
        .collect()
}

/// Multiplies each path (path, day, asset) by the day's and asset's factor.
pub fn rescale(paths: &mut [f64], factors: &[f64]) {
    for path in paths.chunks_exact_mut(factors.len()) {
        path.iter_mut().zip(factors).for_each(|(x, f)| *x *= f);
    }
}

/// The market at an as-of close, for one model: the regime in force after it and the chain's
/// level distribution for the next day.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketState {
    /// The last trading day on or before the as-of date.
    pub close: i32,
    pub regime_in_force: String,
    pub levels: Vec<f64>,
    /// Each asset's GARCH(1,1) variance forecast for the window's days after the close
    /// (day-major, one value per asset), from a fit on the days before the model's test
    /// period (or, for an earlier close, the days up to it).
    pub variances: Vec<f64>,
}

/// The model's side of [`AsOf`], here because it needs the model.
impl AsOf {
    /// Reads the model's assets from the panel and the signal, up to the as-of close; `regime`
    /// (the one in force when `None`) picks the chain whose level is filtered. Data after the
    /// close is never used.
    pub fn state(&self, card: &ModelCard, regime: Option<&str>) -> Result<MarketState> {
        let days = self.read(&card.assets, card.window)?;
        let label = regime.unwrap_or(&days.regime_in_force);
        let class = card.regime_index(label)?;
        let test_from = crate::io::parse_date("model", &card.training.test_from)?;
        let (returns, t) = (&days.returns, days.t);
        let fit_days = AsOf::fit_days(&days, test_from);
        let garch = GarchPanel::fit(&returns.columns, fit_days, &card.assets)?;
        Ok(MarketState {
            close: returns.dates[t],
            regime_in_force: days.regime_in_force.clone(),
            levels: market_levels(card, class, &returns.columns, &returns.dates, t)?,
            variances: garch.variance_forecasts(t, card.window),
        })
    }
}

/// Paths of one regime per starting volatility level: `sets[i]` holds `per_level` paths
/// (path, day, asset) whose windows start in level i.
pub struct LevelSets {
    pub regime: usize,
    pub window: usize,
    pub assets: usize,
    pub per_level: usize,
    pub sets: Vec<Vec<f64>>,
}

/// Path ids of one level's set: each level draws from its own block of the seed's streams.
const PATHS_PER_LEVEL_BLOCK: usize = 1 << 24;

impl LevelSets {
    /// Draws `per_level` paths from every starting level of `draw.regime`'s chain (one set
    /// for a model without one). The model's prior is restored afterwards.
    pub fn draw(
        model: &mut LoadedModel,
        engine: Engine,
        draw: &PathDraw,
        per_level: usize,
        bar: &indicatif::ProgressBar,
    ) -> Result<Self> {
        let card_prior = model.card.prior.clone();
        let levels = card_prior
            .as_ref()
            .and_then(|p| p.chains.get(draw.regime))
            .map_or(1, |c| c.levels());
        let mut sets = Vec::with_capacity(levels);
        for level in 0..levels {
            if let Some(prior) = &card_prior {
                let mut start = vec![0.0; levels];
                start[level] = 1.0;
                model.use_prior(&prior.starting_at(draw.regime, &start));
            }
            let first = level * PATHS_PER_LEVEL_BLOCK;
            let net = model.denoiser(engine)?;
            let paths = sample_paths(model, net, draw, first..first + per_level, bar);
            sets.push(paths.map_err(|e| e.in_stage(Error::Generation))?);
        }
        if let Some(prior) = &card_prior {
            model.use_prior(prior);
        }
        Ok(Self {
            regime: draw.regime,
            window: model.card.window,
            assets: model.card.assets.len(),
            per_level,
            sets,
        })
    }

    /// `paths` paths (path, day, asset) of the first `days` days, as of a state whose level
    /// distribution is `levels`: each path's starting level drawn from it with the stream
    /// `stream` of `seed`, and the paths taken from the levels' sets in turn.
    pub fn mixed(
        &self,
        levels: &[f64],
        paths: usize,
        days: usize,
        seed: u64,
        stream: u64,
    ) -> Vec<f64> {
        let mut rng = SeededRng::new(seed, stream);
        let mut used = vec![0usize; self.sets.len()];
        let size = self.window * self.assets;
        let mut out = Vec::with_capacity(paths * days * self.assets);
        for _ in 0..paths {
            let level = pick(&mut rng, levels).min(self.sets.len() - 1);
            let p = used[level] % self.per_level;
            used[level] += 1;
            out.extend_from_slice(&self.sets[level][p * size..p * size + days * self.assets]);
        }
        out
    }
}

/// An index drawn with probabilities `p` (which sum to one up to rounding).
pub(super) fn pick(rng: &mut SeededRng, p: &[f64]) -> usize {
    let mut u = rng.uniform() * p.iter().sum::<f64>();
    for (i, v) in p.iter().enumerate() {
        if u < *v {
            return i;
        }
        u -= v;
    }
    p.len() - 1
}
