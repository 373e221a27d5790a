//! The generators as of a date, each behind [`Forecaster`]: scenario paths for the days after
//! a close from data up to that close only, as the forecast backtest scores them and the VaR
//! backtest turns them into each morning's VaR.
//! - A regime's scenario set (the diffusion model's, the bootstrap's, the Gaussian's): the same
//!   paths on every date the regime is in force.
//! - `fhs`: FHS-GARCH started from each asset's GARCH conditional variance at the date.
//! - `historical`: the trailing days' overlapping h-day outcomes; `historical+ewma` the same
//!   with every day rescaled to the date's EWMA volatility, asset by asset (filtered historical
//!   simulation).
//! - `diffusion-state` (`diffusion_state.rs`): the diffusion model's paths started from the
//!   market's state at the close.

mod diffusion_state;

pub use diffusion_state::{load_model_before, DiffusionState, DIFFUSION_STATE};

use std::collections::BTreeMap;

use crate::baselines::{FhsModel, FilteredHistory, GarchPanel};
use crate::error::{Error, Result};
use crate::rng::SeededRng;

/// The classical generators' names.
pub const FHS: &str = "fhs";
pub const HISTORICAL: &str = "historical";
pub const HISTORICAL_EWMA: &str = "historical+ewma";

/// Paths (row-major: path, day, asset) of log returns.
pub enum Ensemble<'a> {
    /// The same paths on every date of a regime: what is computed from them can be kept.
    Shared {
        regime: String,
        paths: &'a [f64],
        window: usize,
    },
    /// Paths drawn for this date.
    Own(Vec<f64>),
    /// Ready-made h-day outcomes (member, asset), for historical simulation.
    Outcomes(Vec<f64>),
}

/// A generator of scenario paths as of a date.
pub trait Forecaster: Sync {
    fn name(&self) -> &str;
    /// Whether it is one of the classical generators a risk desk runs today.
    fn classical(&self) -> bool;
    /// The scenarios for `horizon` days after the close of return day `t`, with `regime` in
    /// force the morning after; an [`Ensemble::Outcomes`] holds h-day outcomes directly.
    fn ensemble(&self, t: usize, regime: &str, horizon: usize) -> Result<Ensemble<'_>>;
}

/// A generator whose paths depend on the regime alone: one scenario set per regime.
pub struct RegimeSets {
    pub name: String,
    pub classical: bool,
    /// Days per path.
    pub window: usize,
    /// Per regime, `paths x window x assets` log returns.
    pub sets: BTreeMap<String, Vec<f64>>,
}

impl Forecaster for RegimeSets {
    fn name(&self) -> &str {
        &self.name
    }

    fn classical(&self) -> bool {
        self.classical
    }

    fn ensemble(&self, _t: usize, regime: &str, _horizon: usize) -> Result<Ensemble<'_>> {
        let paths = self.sets.get(regime).ok_or_else(|| {
            Error::option(
                "scenarios",
                "",
                format!("no `{}` scenario file for regime `{regime}`", self.name),
            )
        })?;
        Ok(Ensemble::Shared {
            regime: regime.to_string(),
            paths,
            window: self.window,
        })
    }
}

/// The return history every as-of generator reads: `returns[a][t]` is asset a's log return on
/// return day t.
pub struct History<'a> {
    pub assets: &'a [String],
    pub returns: &'a [Vec<f64>],
    /// The first return day of the test period: every fit uses days before it only.
    pub first_test_day: usize,
}

/// FHS-GARCH as of each date: per asset a GARCH(1,1) fitted on the days before the test
/// period, its conditional variance carried through the real returns up to the date, and whole
/// days of the fit's standardised residuals resampled jointly.
pub struct FhsAsOf {
    pub(crate) garch: GarchPanel,
    model: FhsModel,
    paths: usize,
    seed: u64,
}

impl FhsAsOf {
    pub fn fit(history: &History, paths: usize, seed: u64) -> Result<Self> {
        let fit_days = history.first_test_day;
        let garch = GarchPanel::fit(history.returns, fit_days, history.assets)?;
        Ok(Self {
            model: FhsModel::from_panel(&garch, fit_days),
            garch,
            paths,
            seed,
        })
    }
}

impl Forecaster for FhsAsOf {
    fn name(&self) -> &str {
        FHS
    }

    fn classical(&self) -> bool {
        true
    }

    fn ensemble(&self, t: usize, _regime: &str, horizon: usize) -> Result<Ensemble<'_>> {
        let start = self.garch.next_variances(t);
        let mut out = Vec::with_capacity(self.paths * horizon * start.len());
        for path in 0..self.paths {
            // Stream per (date, path): the same paths whatever else is scored.
            let mut rng = SeededRng::new(self.seed, ((t as u64) << 24) | path as u64);
            self.model.path(&start, horizon, &mut rng, &mut out);
        }
        Ok(Ensemble::Own(out))
    }
}

/// Historical simulation over the trailing `lookback` return days, as they are or (with an
/// EWMA decay) each day rescaled asset by asset from its own volatility forecast to the
/// forecast for the day after the date ([`FilteredHistory`]).
pub struct Historical {
    name: &'static str,
    returns: Vec<Vec<f64>>,
    lookback: usize,
    filtered: Option<FilteredHistory>,
}

impl Historical {
    pub fn plain(history: &History, lookback: usize) -> Self {
        Self {
            name: HISTORICAL,
            returns: history.returns.to_vec(),
            lookback,
            filtered: None,
        }
    }

    /// With RiskMetrics volatility of decay `lambda`, started from arch's backcast over the days
    /// before the test period.
    pub fn filtered(history: &History, lookback: usize, lambda: f64) -> Self {
        let filtered = FilteredHistory::new(history.returns, history.first_test_day, lambda);
        Self {
            name: HISTORICAL_EWMA,
            returns: history.returns.to_vec(),
            lookback,
            filtered: Some(filtered),
        }
    }
}

impl Forecaster for Historical {
    fn name(&self) -> &str {
        self.name
    }

    fn classical(&self) -> bool {
        true
    }

    fn ensemble(&self, t: usize, _regime: &str, horizon: usize) -> Result<Ensemble<'_>> {
        let n = self.returns.len();
        // Windows of `horizon` days that end on or before day t, starting at most `lookback`
        // days back.
        let first = t + 1 - self.lookback;
        let mut out = Vec::with_capacity((self.lookback - horizon + 1) * n);
        for s in first..=t + 1 - horizon {
            for a in 0..n {
                let total: f64 = match &self.filtered {
                    None => self.returns[a][s..s + horizon].iter().sum(),
                    Some(f) => (s..s + horizon).map(|d| f.rescaled(a, d, t)).sum(),
                };
                out.push(total);
            }
        }
        Ok(Ensemble::Outcomes(out))
    }
}
