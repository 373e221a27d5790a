//! Market regimes: a volatility signal known at the close before a window starts, cut by
//! thresholds into labelled regimes (low-vix < 15 <= normal < 25 <= high-vix by default).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::panel::{OnMissing, Panel, ValueKind};
use super::returns::Returns;
use crate::error::{first_repeat, Error, Result};
use crate::io::format_date;
use crate::stats::std_dev;

/// Trading days in the trailing realised-volatility signal.
pub const REALIZED_VOL_DAYS: usize = 21;
/// Trading days per year, for annualising.
pub const TRADING_DAYS: f64 = 252.0;

/// Thresholds and labels: value v gets label i where i is the number of thresholds <= v.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegimeRule {
    pub thresholds: Vec<f64>,
    pub labels: Vec<String>,
}

impl Default for RegimeRule {
    fn default() -> Self {
        Self {
            thresholds: vec![15.0, 25.0],
            labels: vec!["low-vix".into(), "normal".into(), "high-vix".into()],
        }
    }
}

impl RegimeRule {
    /// Checks that thresholds increase and that there is one label more than thresholds.
    pub fn new(thresholds: Vec<f64>, labels: Vec<String>) -> Result<Self> {
        let text = thresholds
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if thresholds.is_empty() || thresholds.iter().any(|t| !t.is_finite()) {
            return Err(Error::option(
                "thresholds",
                &text,
                "need one or more finite numbers",
            ));
        }
        if thresholds.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::option(
                "thresholds",
                &text,
                "must be strictly increasing",
            ));
        }
        if labels.len() != thresholds.len() + 1 {
            return Err(Error::option(
                "labels",
                labels.join(","),
                format!(
                    "{} thresholds need {} labels, got {}",
                    thresholds.len(),
                    thresholds.len() + 1,
                    labels.len()
                ),
            ));
        }
        let repeated = first_repeat(&labels).map(|(first, _)| &labels[first]);
        if let Some(dup) = labels.iter().find(|l| l.is_empty()).or(repeated) {
            return Err(Error::option(
                "labels",
                labels.join(","),
                format!("label `{dup}` is empty or repeated"),
            ));
        }
        if let Some((label, reason)) = labels
            .iter()
            .find_map(|l| check_label(l).err().map(|r| (l, r)))
        {
            return Err(Error::option(
                "labels",
                labels.join(","),
                format!("label `{label}` {reason}"),
            ));
        }
        Ok(Self { thresholds, labels })
    }

    /// The regime index of a signal value.
    pub fn classify(&self, value: f64) -> usize {
        self.thresholds.iter().filter(|t| value >= **t).count()
    }

    /// The index of a label, or an error listing the known labels.
    pub fn index_of(&self, label: &str) -> Result<usize> {
        label_index(&self.labels, label)
    }
}

/// Whether a regime label is safe as a file name (`scenarios/<label>.parquet`,
/// `reports/<label>/`): 1 to 64 ASCII letters, digits, `-`, `_` and `.`, starting with a letter
/// or digit, so that no label can reach outside its folder. The reason when it is not.
pub fn check_label(label: &str) -> std::result::Result<(), &'static str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match label.chars().next() {
        _ if label.len() > 64 => Err("is longer than 64 characters"),
        Some(first) if first.is_ascii_alphanumeric() && label.chars().all(safe) => Ok(()),
        _ => Err("must start with a letter or digit and hold only letters, digits, '-', '_' and '.' (it names files)"),
    }
}

/// The position of `label` in `labels`, or an error listing the known labels.
pub fn label_index(labels: &[String], label: &str) -> Result<usize> {
    labels
        .iter()
        .position(|l| l == label)
        .ok_or_else(|| Error::UnknownRegime {
            regime: label.to_string(),
            known: labels.join(", "),
        })
}

/// Where the volatility signal comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalSource {
    /// Trailing 21-day annualised realised volatility, in percent, of an index's log returns.
    RealizedVol { path: PathBuf, column: String },
    /// A level read as it is (VIX, say), joined on date.
    Level { path: PathBuf, column: String },
}

/// The embedded daily prices of 20 S&P 500 stocks.
pub const EMBEDDED_PRICES: &str = "data/sp500_20_prices.parquet";

impl SignalSource {
    /// The default signal: realised volatility of the embedded S&P 500 index.
    pub fn embedded_index() -> Self {
        SignalSource::RealizedVol {
            path: "data/sp500_index.parquet".into(),
            column: "SPX".into(),
        }
    }

    /// Parses `FILE:COLUMN` for `option`.
    pub fn parse_spec(option: &str, spec: &str) -> Result<(PathBuf, String)> {
        match spec.rsplit_once(':') {
            Some((file, column)) if !file.is_empty() && !column.is_empty() => {
                Ok((PathBuf::from(file), column.to_string()))
            }
            _ => Err(Error::option(option, spec, "expected FILE:COLUMN")),
        }
    }

    /// A short description for metadata and summaries.
    pub fn describe(&self) -> String {
        match self {
            SignalSource::RealizedVol { path, column } => format!(
                "realized-vol-{REALIZED_VOL_DAYS}d({}:{column})",
                path.display()
            ),
            SignalSource::Level { path, column } => format!("level({}:{column})", path.display()),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            SignalSource::RealizedVol { path, .. } | SignalSource::Level { path, .. } => path,
        }
    }

    /// The signal as of each date's close, keyed by date. Dates where it cannot be computed are
    /// absent.
    pub fn values_by_date(
        &self,
        date_col: &str,
        on_missing: OnMissing,
    ) -> Result<HashMap<i32, f64>> {
        match self {
            SignalSource::RealizedVol { path, column } => {
                let panel = Panel::read(path, date_col, Some(std::slice::from_ref(column)))?
                    .clean(ValueKind::Prices, on_missing)?;
                let returns = Returns::from_panel(&panel, ValueKind::Prices);
                Ok(realized_vol(&returns.dates, &returns.columns[0]))
            }
            SignalSource::Level { path, column } => {
                let panel = Panel::read(path, date_col, Some(std::slice::from_ref(column)))?;
                Ok(panel
                    .dates
                    .iter()
                    .zip(&panel.columns[0])
                    .filter(|(_, v)| v.is_finite())
                    .map(|(d, v)| (*d, *v))
                    .collect())
            }
        }
    }
}

/// The regime in force on each trading day: the rule applied to the signal at the previous
/// close, as ingest labels a window that starts on that day.
pub struct RegimeCalendar {
    source: SignalSource,
    rule: RegimeRule,
    values: HashMap<i32, f64>,
}

impl RegimeCalendar {
    /// Reads the signal (dated by `date_col`); a gap in its prices is an error.
    pub fn load(source: &SignalSource, rule: &RegimeRule, date_col: &str) -> Result<Self> {
        Ok(Self {
            values: source.values_by_date(date_col, OnMissing::Error)?,
            source: source.clone(),
            rule: rule.clone(),
        })
    }

    /// The label in force on `date`, from the signal at the close of `before`, the trading day
    /// before it; `purpose` says what needs it, for the error when the signal has no value then.
    pub fn label(&self, before: i32, date: i32, purpose: &str) -> Result<&str> {
        let option = match self.source {
            SignalSource::RealizedVol { .. } => "index",
            SignalSource::Level { .. } => "signal",
        };
        let value = self.values.get(&before).ok_or_else(|| {
            Error::option(
                option,
                self.source.describe(),
                format!(
                    "no signal value on {}, needed for {purpose} on {}",
                    format_date(before),
                    format_date(date)
                ),
            )
        })?;
        Ok(&self.rule.labels[self.rule.classify(*value)])
    }
}

/// Annualised realised volatility in percent, sqrt(252) * sample std (ddof 1) * 100, of the 21
/// returns ending on each date (inclusive).
pub fn realized_vol(dates: &[i32], returns: &[f64]) -> HashMap<i32, f64> {
    (REALIZED_VOL_DAYS..=returns.len())
        .map(|end| {
            let vol = std_dev(&returns[end - REALIZED_VOL_DAYS..end], 1);
            (dates[end - 1], vol * TRADING_DAYS.sqrt() * 100.0)
        })
        .collect()
}
