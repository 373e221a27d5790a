//! Daily log returns from a cleaned panel, and the optional winsorisation of extreme days.

use super::panel::{Panel, ValueKind};
use crate::error::{Error, Result};
use crate::stats::quantile;

/// Daily log returns, one column per asset. `base_dates[i]` is the panel date whose close the
/// return `i` starts from (`None` for the first row of a returns panel): a signal known at that
/// close is known before the return happens.
#[derive(Debug, Clone)]
pub struct Returns {
    pub dates: Vec<i32>,
    pub base_dates: Vec<Option<i32>>,
    pub assets: Vec<String>,
    pub columns: Vec<Vec<f64>>,
}

impl Returns {
    /// Log returns of `panel`: ln(P_t / P_{t-1}) for prices, ln(1 + r) for simple returns, the
    /// values themselves for log returns.
    pub fn from_panel(panel: &Panel, kind: ValueKind) -> Returns {
        match kind {
            ValueKind::Prices => Returns {
                dates: panel.dates[1..].to_vec(),
                base_dates: panel.dates[..panel.len().saturating_sub(1)]
                    .iter()
                    .map(|d| Some(*d))
                    .collect(),
                assets: panel.assets.clone(),
                columns: panel
                    .columns
                    .iter()
                    .map(|p| p.windows(2).map(|w| (w[1] / w[0]).ln()).collect())
                    .collect(),
            },
            ValueKind::LogReturns | ValueKind::SimpleReturns => Returns {
                dates: panel.dates.clone(),
                base_dates: std::iter::once(None)
                    .chain(
                        panel.dates[..panel.len().saturating_sub(1)]
                            .iter()
                            .map(|d| Some(*d)),
                    )
                    .collect(),
                assets: panel.assets.clone(),
                columns: panel
                    .columns
                    .iter()
                    .map(|c| {
                        if kind == ValueKind::SimpleReturns {
                            c.iter().map(|r| r.ln_1p()).collect()
                        } else {
                            c.clone()
                        }
                    })
                    .collect(),
            },
        }
    }

    /// Number of return days.
    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Clips each asset's returns to its [q, 1 - q] quantiles over the whole history and returns
    /// the bounds used, per asset.
    pub fn winsorize(&mut self, q: f64) -> Result<Vec<(f64, f64)>> {
        if !(q > 0.0 && q < 0.5) {
            return Err(Error::option(
                "--winsorize",
                q,
                "must lie strictly between 0 and 0.5",
            ));
        }
        Ok(self
            .columns
            .iter_mut()
            .map(|col| {
                let mut sorted = col.clone();
                sorted.sort_by(f64::total_cmp);
                let (lo, hi) = (quantile(&sorted, q), quantile(&sorted, 1.0 - q));
                col.iter_mut().for_each(|r| *r = r.clamp(lo, hi));
                (lo, hi)
            })
            .collect())
    }
}
