//! Filtered historical simulation: the trailing return days as they happened, each asset's day
//! rescaled from its own EWMA (RiskMetrics) volatility forecast to the forecast for the day
//! after the close (Hull and White's volatility updating). As of a close, a path is a stretch
//! of consecutive trailing days of all assets together, so it keeps their joint moves and their
//! clustering; the forecast backtest scores the same stretches' h-day outcomes.

use super::garch::{backcast, log_likelihood, Garch11};
use super::PathGenerator;
use crate::error::{Error, Result};
use crate::rng::SeededRng;

/// RiskMetrics' decay for daily volatility.
pub const RISKMETRICS_LAMBDA: f64 = 0.94;

/// Each asset's returns and EWMA volatility forecasts.
#[derive(Debug, Clone)]
pub struct FilteredHistory {
    /// Per asset, its log return on each return day.
    returns: Vec<Vec<f64>>,
    /// Per asset, the volatility forecast for every return day (made at the close before it)
    /// and for the day after the last.
    volatility: Vec<Vec<f64>>,
}

impl FilteredHistory {
    /// The EWMA volatility of decay `lambda` of every asset's `returns`, started from arch's
    /// backcast over the first `fit_days` days.
    pub fn new(returns: &[Vec<f64>], fit_days: usize, lambda: f64) -> Self {
        let ewma = Garch11::riskmetrics(lambda);
        let volatility = returns
            .iter()
            .map(|r| {
                let (_, mut var) = log_likelihood(r, &ewma, backcast(&r[..fit_days]));
                let last = *var.last().expect("return days");
                var.push(ewma.next_variance(*r.last().expect("return days"), last));
                var.into_iter().map(f64::sqrt).collect()
            })
            .collect();
        Self {
            returns: returns.to_vec(),
            volatility,
        }
    }

    /// Asset a's return on day s, rescaled to the volatility forecast made at the close of day
    /// t for the day after it.
    pub fn rescaled(&self, a: usize, s: usize, t: usize) -> f64 {
        self.returns[a][s] * self.volatility[a][t + 1] / self.volatility[a][s]
    }
}

/// Historical simulation over `lookback` days needs 20 outcomes of the longest of `horizons`
/// (checked non-empty), and an EWMA decay lies strictly between 0 and 1.
pub fn check_history(horizons: &[usize], lookback: usize, ewma_lambda: Option<f64>) -> Result<()> {
    let longest = *horizons.iter().max().expect("checked: not empty");
    if lookback < longest + 19 {
        return Err(Error::option(
            "lookback",
            lookback,
            format!(
                "leaves historical simulation fewer than 20 {longest}-day outcomes; give at least {}",
                longest + 19
            ),
        ));
    }
    if let Some(lambda) = ewma_lambda {
        if !(lambda > 0.0 && lambda < 1.0) {
            return Err(Error::option(
                "ewma_lambda",
                lambda,
                "must lie strictly between 0 and 1",
            ));
        }
    }
    Ok(())
}

/// Paths as of the close of return day `t`: each a stretch of consecutive days among the
/// `lookback` up to the close, drawn uniformly, every day rescaled to the close's forecast.
pub(super) struct FilteredHsAsOf {
    pub history: FilteredHistory,
    pub t: usize,
    pub lookback: usize,
    pub lambda: f64,
}

impl PathGenerator for FilteredHsAsOf {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        let first = self.t + 1 - self.lookback;
        let start = first + rng.below(self.t + 2 - len - first);
        for s in start..start + len {
            for a in 0..self.history.returns.len() {
                out.push(self.history.rescaled(a, s, self.t));
            }
        }
    }

    fn parameters(&self) -> String {
        let volatility: Vec<f64> = self
            .history
            .volatility
            .iter()
            .map(|v| v[self.t + 1])
            .collect();
        serde_json::json!({
            "lookback": self.lookback,
            "ewma_lambda": self.lambda,
            "volatility_forecasts": volatility,
        })
        .to_string()
    }
}
