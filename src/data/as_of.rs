//! The market data of a run as of a close: a panel (as ingest reads it) and the regime signal,
//! read up to the last trading day on or before a date, and never after it.

use std::path::PathBuf;

use super::{OnMissing, Panel, RegimeCalendar, RegimeRule, Returns, SignalSource, ValueKind};
use crate::error::{Error, Result};
use crate::io::format_date;

/// Where and as of when: the close the paths start after, the panel and the regime signal.
#[derive(Debug, Clone)]
pub struct AsOf {
    /// The close is the last trading day on or before it; `None` is the panel's last return
    /// day, the latest close (what a nightly job wants).
    pub date: Option<i32>,
    pub prices: PathBuf,
    pub date_column: String,
    pub kind: ValueKind,
    pub signal: SignalSource,
    pub rule: RegimeRule,
}

/// How the latest close of a panel is asked for.
pub const LATEST: &str = "latest";

/// The panel's log returns and where the close falls among them.
pub struct MarketDays {
    pub returns: Returns,
    /// The close's index among `returns.dates`.
    pub t: usize,
    /// The regime in force after the close.
    pub regime_in_force: String,
}

impl AsOf {
    /// Reads `assets` from the panel and the regime in force after the close, which must have
    /// at least `history` return days up to it. Errors name the date when it is outside the
    /// panel's return days, too early for `history`, or without a signal value.
    pub fn read(&self, assets: &[String], history: usize) -> Result<MarketDays> {
        let panel = Panel::read(&self.prices, &self.date_column, Some(assets))?
            .clean(self.kind, OnMissing::Error)?;
        let returns = Returns::from_panel(&panel, self.kind);
        let dates = &returns.dates;
        let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
            return Err(Error::option(
                "prices",
                self.prices.display(),
                "has no return days",
            ));
        };
        let date = self.date.unwrap_or(last);
        if date < first || date > last {
            return Err(Error::option(
                "as-of",
                format_date(date),
                format!(
                    "is outside the return days of {} ({} to {})",
                    self.prices.display(),
                    format_date(first),
                    format_date(last)
                ),
            ));
        }
        let t = dates.partition_point(|&d| d <= date) - 1;
        require_history(dates, t, history)?;
        let calendar = RegimeCalendar::load(&self.signal, &self.rule, &self.date_column)?;
        let regime_in_force = calendar
            .label(dates[t], dates[t], "scenarios as of this date")?
            .to_string();
        Ok(MarketDays {
            returns,
            t,
            regime_in_force,
        })
    }

    /// The close as given: its date, or `latest`.
    pub fn date_text(&self) -> String {
        self.date.map_or_else(|| LATEST.to_string(), format_date)
    }

    /// The number of return days before `test_from`, or up to the close when that is earlier:
    /// the days a model of the close may be fitted on.
    pub fn fit_days(days: &MarketDays, test_from: i32) -> usize {
        let dates = &days.returns.dates;
        dates.partition_point(|&d| d < test_from).min(days.t + 1)
    }
}

/// An error naming return day `t` (of `dates`) when fewer than `days` return days lead up to
/// it.
pub fn require_history(dates: &[i32], t: usize, days: usize) -> Result<()> {
    if t + 1 >= days {
        return Ok(());
    }
    Err(Error::option(
        "as-of",
        format_date(dates[t]),
        format!(
            "has {} return days up to it; the market's state needs the {days} before",
            t + 1
        ),
    ))
}
