//! Regime sets whose paths start from the regime's own train days, as FHS's do: each path
//! draws a day on whose close the regime was in force next (the day before one of the
//! regime's train windows), and starts from the market's state there as `generate --as-of`
//! would (the chain's filtered level, each asset's GARCH variances, the EWMA correlation). The set is then a mixture
//! over the regime's real starting states instead of the chain's fitted first-day levels.

use std::path::Path;

use crate::baselines::GarchPanel;
use crate::data::{DailyPanel, SplitChoice, WindowSet};
use crate::error::{Error, Result};
use crate::model::{Denoiser, Engine, LoadedModel, ModelCard};
use crate::rng::SeededRng;

use super::as_of::{market_levels, pick, CovarianceTarget, CORRELATION_LAMBDA};
use super::{sample_path_ids, PathDraw};

/// Stream offset of the draws of a path's starting day and level, apart from its noise's.
const START_STREAM: u64 = 1 << 40;

/// The regime's starting days and what a path needs from them.
pub struct TrainStarts {
    /// Per asset, the train days' log returns (the windows' days, in order).
    returns: Vec<Vec<f64>>,
    dates: Vec<i32>,
    garch: GarchPanel,
    /// The correlation of the GARCH residuals of every train day.
    long_run: Vec<f64>,
    /// Indices of the starting days among `dates`.
    starts: Vec<usize>,
    regime: usize,
}

impl TrainStarts {
    /// Reads the windows file the model was trained on and fits each asset's GARCH(1,1) on its
    /// train days.
    pub fn fit(card: &ModelCard, windows: &Path, regime: usize) -> Result<Self> {
        let set = WindowSet::read(windows)?;
        if set.assets != card.assets || set.window != card.window {
            return Err(Error::option(
                "data",
                windows.display(),
                "holds other assets or windows than the model was trained on",
            ));
        }
        let test_from = crate::io::parse_date("model", &card.training.test_from)?;
        let days = DailyPanel::from_windows(&set, None, SplitChoice::Train, test_from);
        let returns: Vec<Vec<f64>> = (0..days.assets).map(|a| days.column(a)).collect();
        let garch = GarchPanel::fit(&returns, days.len(), &card.assets)?;
        let label = set.rule.index_of(&card.labels[regime])?;
        let mut starts: Vec<usize> = set
            .select(Some(label), SplitChoice::Train, test_from)
            .iter()
            .filter_map(|&w| {
                let first = days.dates.binary_search(&set.windows[w].start_date).ok()?;
                (first >= card.window).then_some(first - 1)
            })
            .collect();
        starts.sort_unstable();
        starts.dedup();
        if starts.is_empty() {
            return Err(Error::option(
                "regime",
                &card.labels[regime],
                format!("has no train window in {} to start from", windows.display()),
            ));
        }
        Ok(Self {
            returns,
            long_run: garch.long_run_correlation(days.len()),
            dates: days.dates,
            garch,
            starts,
            regime,
        })
    }

    /// Path p's starting level and the map onto its day's covariance.
    fn start(&self, card: &ModelCard, seed: u64, path: usize) -> Result<(usize, CovarianceTarget)> {
        let mut rng = SeededRng::new(seed, START_STREAM + path as u64);
        let t = self.starts[rng.below(self.starts.len())];
        let levels = market_levels(card, self.regime, &self.returns, &self.dates, t)?;
        let level = pick(&mut rng, &levels);
        let variances = self.garch.variance_forecasts(t, card.window);
        let correlation = self
            .garch
            .correlation_at(t, &self.long_run, CORRELATION_LAMBDA);
        let target = CovarianceTarget::new(card, self.regime, &levels, &variances, &correlation);
        Ok((level, target))
    }

    /// Draws the paths `ids` (path, day, asset), each from its own starting day.
    pub fn draw(
        &self,
        model: &mut LoadedModel,
        engine: Engine,
        draw: &PathDraw,
        ids: &[usize],
        bar: &indicatif::ProgressBar,
    ) -> Result<Vec<f64>> {
        let card = model.card.clone();
        let size = card.window * card.assets.len();
        let starts: Vec<(usize, CovarianceTarget)> = ids
            .iter()
            .map(|&p| self.start(&card, draw.seed, p))
            .collect::<Result<_>>()?;
        let mut out = vec![0.0; ids.len() * size];
        let Some(prior) = card.prior.as_ref() else {
            return Err(Error::option(
                "starts",
                "train-days",
                "needs a model with the prior's volatility chain",
            ));
        };
        let levels = prior.chains.get(self.regime).map_or(1, |c| c.levels());
        for level in 0..levels {
            let members: Vec<usize> = (0..ids.len()).filter(|&i| starts[i].0 == level).collect();
            if members.is_empty() {
                continue;
            }
            let mut start = vec![0.0; levels];
            start[level] = 1.0;
            model.use_prior(&prior.starting_at(self.regime, &start));
            let group: Vec<usize> = members.iter().map(|&i| ids[i]).collect();
            let net: &dyn Denoiser = model.denoiser(engine)?;
            let values = sample_path_ids(model, net, draw, &group, bar)?;
            for (&i, path) in members.iter().zip(values.chunks_exact(size)) {
                let slot = &mut out[i * size..(i + 1) * size];
                slot.copy_from_slice(path);
                starts[i].1.apply(slot);
            }
        }
        model.use_prior(prior);
        Ok(out)
    }
}
