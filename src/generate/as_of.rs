//! Scenarios as of a market state. The prior's volatility chain is a state-space model of the
//! regime's days, so the state the market is in at a close is the chain's filter run over the
//! days up to it (`GaussianPrior::next_day_levels`): windows drawn from the prior started
//! there carry today's volatility level forward and revert as the chain's transitions say,
//! the way GARCH carries its conditional variance. The network's correction is the same. Every
//! day is then mapped onto the state's covariance ([`CovarianceTarget`]: each asset's GARCH
//! variance forecast and the close's EWMA correlation), which the chain's common level and
//! daily market shocks cannot hold.
//!
//! The filter needs only the level's distribution, so a set of paths per starting level
//! covers every date: the paths as of a date are the levels' sets mixed in its proportions
//! ([`LevelSets`]), exact under the model, and a backtest of hundreds of dates draws
//! `levels x paths` paths per regime instead of `dates x paths`.

use crate::baselines::GarchPanel;
use crate::data::{require_history, AsOf};
use crate::error::{Error, Result};
use crate::model::{Engine, Layout, LoadedModel, ModelCard};
use crate::rng::SeededRng;
use crate::stats::{product_into, symmetric_power, Strided};

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
    require_history(dates, t, days)?;
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
    let mut days = standardised_days(card, returns, dates, t)?;
    // The chain was fitted on days without their idiosyncratic jumps: a stock's earnings day
    // is not a higher level of the whole market.
    if let Some(jumps) = &card.jumps {
        let layout = Layout::day_major(card.assets.len(), card.window);
        jumps.regimes[regime].remove(&mut days, layout);
    }
    Ok(match &card.prior {
        Some(prior) => prior.next_day_levels(regime, &days),
        None => vec![1.0],
    })
}

/// Each asset's jump variance per day in regime `regime` at the regime's mean level, and the
/// mean over `days` days of the prior's common day scale E[s²] from the chain's first-day
/// levels, the level that variance is stated at: a day of common scale c has jumps of `c /
/// reference` times that variance. `None` without jumps.
fn jump_variances(card: &ModelCard, regime: usize, days: usize) -> Option<(Vec<f64>, f64)> {
    let jumps = card.jumps.as_ref()?.regimes[regime].day_variances();
    let reference = match &card.prior {
        Some(prior) if !prior.chains.is_empty() => {
            let levels = &prior.chains[regime].level_initial;
            let moments = prior.day_scale_moments(regime, levels, days);
            moments.iter().map(|(common, _)| common).sum::<f64>() / days as f64
        }
        _ => 1.0,
    };
    Some((jumps, reference))
}

/// A map of each day of a regime's paths started from given levels onto a target covariance
/// diag(σ_d) R diag(σ_d): each asset's variance on day d (e.g. its GARCH forecast) and one
/// correlation (e.g. the close's EWMA correlation). Day d of every path is whitened by the
/// prior's covariance of that day, which is diagonal in Σ's eigenbasis
/// ([`crate::model::GaussianPrior::day_scale_moments`]), plus the jumps' variance when the
/// model has them, then coloured by R^½ and σ_d: the
/// same linear map for every path, so paths keep their shape (tails, volatility moves within
/// the path) and shards agree. The network's correction moves the covariance a little, which
/// the map leaves.
pub struct CovarianceTarget {
    n: usize,
    /// Per day, the whole map as one `n x n` matrix (row-major; output asset by input asset):
    /// diag(σ_d) R^½ C_d^-½ diag(1 / std), C_d the model's covariance of day d: the prior's,
    /// V diag(its variance of each eigen-direction that day) Vᵀ with V Σ's eigenvectors, plus
    /// the diagonal of each asset's jumps when the model has them.
    maps: Vec<f64>,
}

impl CovarianceTarget {
    /// For regime `regime` of `card` started from `levels`, onto the variances `variances`
    /// (day-major, one per asset; as many days as the paths will have) and the correlation
    /// `correlation` (assets x assets).
    pub fn new(
        card: &ModelCard,
        regime: usize,
        levels: &[f64],
        variances: &[f64],
        correlation: &[f64],
    ) -> Self {
        let n = card.assets.len();
        let days = variances.len() / n;
        let (lambda, vectors, market, moments) = match &card.prior {
            Some(prior) => {
                let basis = prior.basis(regime);
                let moments = prior.day_scale_moments(regime, levels, days);
                (basis.lambda, basis.vectors, Some(basis.market), moments)
            }
            None => {
                let identity = (0..n * n).map(|k| f64::from(k / n == k % n)).collect();
                (vec![1.0; n], identity, None, vec![(1.0, 0.0); days])
            }
        };
        let root = symmetric_power(correlation, n, 0.5, 0.0);
        let std = &card.normalisation.std;
        let jumps = jump_variances(card, regime, days);
        let mut maps = Vec::with_capacity(days * n * n);
        for (d, &(common, extra)) in moments.iter().enumerate() {
            let prior_variances: Vec<f64> = (0..n)
                .map(|j| {
                    let market_extra = if Some(j) == market { extra } else { 0.0 };
                    (common + market_extra) * lambda[j]
                })
                .collect();
            // W = V diag(prior_variances)^-½ Vᵀ, the day's covariance to the power −½; with
            // jumps, (V diag(prior_variances) Vᵀ + diag(jumps))^-½. Then R^½ W, each row i
            // scaled by σ_d,i and column k by 1 / std_k.
            let w = match &jumps {
                Some((jumps, reference)) => {
                    let mut day = crate::stats::compose_eigen(&vectors, &prior_variances, n);
                    for (a, jump) in jumps.iter().enumerate() {
                        day[a * n + a] += jump * common / reference;
                    }
                    symmetric_power(&day, n, -0.5, 0.0)
                }
                None => {
                    let whiten: Vec<f64> = prior_variances.iter().map(|v| 1.0 / v.sqrt()).collect();
                    crate::stats::compose_eigen(&vectors, &whiten, n)
                }
            };
            let sd = &variances[d * n..(d + 1) * n];
            maps.extend((0..n * n).map(|ik| {
                let (i, k) = (ik / n, ik % n);
                let coloured: f64 = (0..n).map(|j| root[i * n + j] * w[j * n + k]).sum();
                coloured * sd[i].sqrt() / std[k]
            }));
        }
        Self { n, maps }
    }

    /// Maps every path (path, day, asset) in place: for each day, one matrix product over all
    /// the paths' rows of that day.
    pub fn apply(&self, paths: &mut [f64]) {
        let n = self.n;
        let days = self.maps.len() / (n * n);
        let count = paths.len() / (days * n);
        if count == 0 {
            return;
        }
        let mut mapped = vec![0.0; count * n];
        for d in 0..days {
            // Day d of every path (rows `days * n` apart) times the map read transposed.
            let rows = Strided {
                data: &paths[d * n..],
                rows: count,
                cols: n,
                row_stride: days * n,
                col_stride: 1,
            };
            let map = Strided {
                data: &self.maps[d * n * n..(d + 1) * n * n],
                rows: n,
                cols: n,
                row_stride: 1,
                col_stride: n,
            };
            product_into(&mut mapped, rows, map);
            for (p, row) in mapped.chunks_exact(n).enumerate() {
                let start = (p * days + d) * n;
                paths[start..start + n].copy_from_slice(row);
            }
        }
    }
}

/// The market at an as-of close, for one model: the regime in force after it, the chain's
/// level distribution for the next day, and the covariance the paths are mapped onto.
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
    /// The cross-asset correlation at the close: the EWMA (decay [`CORRELATION_LAMBDA`]) of
    /// the GARCH-standardised returns.
    pub correlation: Vec<f64>,
}

/// RiskMetrics' decay for correlations.
pub const CORRELATION_LAMBDA: f64 = 0.97;

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
            correlation: garch.correlation_at(
                t,
                &garch.long_run_correlation(fit_days),
                CORRELATION_LAMBDA,
            ),
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
