//! Daily log returns from a cleaned panel, and the optional winsorisation of extreme days.

use std::ops::Range;
use std::path::Path;

use super::panel::{Panel, ValueKind};
use crate::error::{Error, Result};
use crate::io::format_date;
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
                "winsorize",
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

/// The held-out days of a backtest on the return days `days` of `prices`: the indices from the
/// first day on or after `from` to the last on or before `to` (the end of the data when
/// `None`). There must be at least `min_days` of them and `lookback` return days before them;
/// the errors name the `from` and `lookback` settings.
pub fn held_out_days(
    days: &[i32],
    prices: &Path,
    (from, to): (i32, Option<i32>),
    min_days: usize,
    lookback: usize,
) -> Result<Range<usize>> {
    let first = days.partition_point(|d| *d < from);
    let end = to.map_or(days.len(), |to| days.partition_point(|d| *d <= to));
    let held_out = end.saturating_sub(first);
    if held_out < min_days.max(1) {
        return Err(Error::option(
            "from",
            format_date(from),
            format!(
                "{} holds {held_out} return days from then{} (data end {}); {} needed",
                prices.display(),
                to.map_or(String::new(), |to| format!(" to {}", format_date(to))),
                format_date(*days.last().unwrap_or(&0)),
                min_days.max(1)
            ),
        ));
    }
    if first < lookback {
        return Err(Error::option(
            "lookback",
            lookback,
            format!(
                "only {first} return days of {} precede {}",
                prices.display(),
                format_date(from)
            ),
        ));
    }
    Ok(first..end)
}
