//! `scengen ingest`: a Parquet panel to the regime-labelled windows file, with a summary.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::panel::{OnMissing, Panel, ValueKind, DEFAULT_DATE_COLUMN};
use super::regime::{RegimeRule, SignalSource, EMBEDDED_PRICES, TRADING_DAYS};
use super::returns::Returns;
use super::windows::{WindowInfo, WindowSet, DEFAULT_WINDOWS};
use crate::error::{first_repeat, Error, Result};
use crate::io::{format_date, sha256_file};
use crate::stats::{mean, std_dev};

/// Everything `ingest` needs; the CLI fills it from its options.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub input: PathBuf,
    pub date_column: String,
    pub assets: Option<Vec<String>>,
    pub kind: ValueKind,
    pub window: usize,
    pub stride: usize,
    pub signal: SignalSource,
    pub rule: RegimeRule,
    pub on_missing: OnMissing,
    pub winsorize: Option<f64>,
    pub out: PathBuf,
}

/// The defaults: the embedded S&P 500 prices, 30-day windows every day, the regimes of the
/// index's realised volatility (low-vix < 15 ≤ normal < 25 ≤ high-vix), written to
/// [`DEFAULT_WINDOWS`].
impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            input: EMBEDDED_PRICES.into(),
            date_column: DEFAULT_DATE_COLUMN.into(),
            assets: None,
            kind: ValueKind::Prices,
            window: 30,
            stride: 1,
            signal: SignalSource::embedded_index(),
            rule: RegimeRule::default(),
            on_missing: OnMissing::Error,
            winsorize: None,
            out: DEFAULT_WINDOWS.into(),
        }
    }
}

impl IngestConfig {
    /// The defaults, writing to `out`.
    pub fn embedded(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            ..Self::default()
        }
    }
}

/// What `ingest` did, for the terminal and for tests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestSummary {
    pub out: PathBuf,
    pub rows_read: usize,
    pub return_days: usize,
    pub windows_cut: usize,
    pub windows_written: usize,
    pub dropped_no_signal: usize,
    pub per_regime: Vec<(String, usize)>,
    pub first_date: String,
    pub last_date: String,
    /// (asset, annualised mean log return, annualised volatility) over all return days.
    pub per_asset: Vec<(String, f64, f64)>,
}

impl std::fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "wrote {}", self.out.display())?;
        writeln!(
            f,
            "{} rows -> {} return days ({} .. {}) -> {} windows cut, {} without a signal dropped, {} written",
            self.rows_read, self.return_days, self.first_date, self.last_date,
            self.windows_cut, self.dropped_no_signal, self.windows_written
        )?;
        for (label, count) in &self.per_regime {
            writeln!(f, "  {label:<10} {count:>6} windows")?;
        }
        writeln!(f, "  {:<8} {:>10} {:>10}", "asset", "mean %/y", "vol %/y")?;
        for (asset, m, v) in &self.per_asset {
            writeln!(f, "  {asset:<8} {:>10.2} {:>10.2}", m * 100.0, v * 100.0)?;
        }
        Ok(())
    }
}

/// Reads, cleans, labels and writes; nothing is written when any step fails.
pub fn ingest(config: &IngestConfig) -> Result<IngestSummary> {
    if config.window < 2 {
        return Err(Error::option(
            "window",
            config.window,
            "must be at least 2 days",
        ));
    }
    if config.stride == 0 {
        return Err(Error::option("stride", 0, "must be at least 1"));
    }
    let assets = config.assets.as_deref().unwrap_or_default();
    if let Some((first, second)) = first_repeat(assets) {
        return Err(Error::option(
            "assets",
            assets.join(","),
            format!(
                "`{}` is named twice (at positions {} and {})",
                assets[first],
                first + 1,
                second + 1
            ),
        ));
    }
    let panel = Panel::read(&config.input, &config.date_column, config.assets.as_deref())?;
    let rows_read = panel.len();
    let panel = panel.clean(config.kind, config.on_missing)?;
    let needed = config.window + usize::from(config.kind == ValueKind::Prices);
    if panel.len() < needed {
        return Err(Error::TooFewRows {
            path: config.input.clone(),
            rows: panel.len(),
            needed,
        });
    }
    let mut returns = Returns::from_panel(&panel, config.kind);
    let winsor_bounds = config.winsorize.map(|q| returns.winsorize(q)).transpose()?;

    let signal = config
        .signal
        .values_by_date(&config.date_column, config.on_missing)?;
    if !panel.dates.iter().any(|d| signal.contains_key(d)) {
        let (path, column) = match &config.signal {
            SignalSource::RealizedVol { path, column } | SignalSource::Level { path, column } => {
                (path.clone(), column.clone())
            }
        };
        return Err(Error::SignalNoOverlap { path, column });
    }

    let (l, n) = (config.window, returns.assets.len());
    let mut set = WindowSet {
        assets: returns.assets.clone(),
        rule: config.rule.clone(),
        window: l,
        windows: Vec::new(),
        dates: Vec::new(),
        returns: Vec::new(),
        metadata: BTreeMap::new(),
    };
    let mut windows_cut = 0;
    for start in (0..=returns.len() - l).step_by(config.stride) {
        windows_cut += 1;
        // The signal as of the close before the window's first return: no look-ahead.
        let Some(value) = returns.base_dates[start].and_then(|d| signal.get(&d)) else {
            continue;
        };
        set.windows.push(WindowInfo {
            id: set.windows.len() as u32,
            start_date: returns.dates[start],
            end_date: returns.dates[start + l - 1],
            regime: config.rule.classify(*value),
        });
        set.dates
            .extend_from_slice(&returns.dates[start..start + l]);
        for day in start..start + l {
            set.returns.extend(returns.columns.iter().map(|c| c[day]));
        }
    }
    debug_assert_eq!(set.returns.len(), set.len() * l * n);
    if set.is_empty() {
        return Err(Error::bad_file(
            config.signal.path(),
            "the signal is unavailable for every window (too little history before the panel's dates?)",
        ));
    }
    set.metadata = metadata(config, winsor_bounds.as_deref())?;
    set.write(&config.out)?;

    let per_regime = config
        .rule
        .labels
        .iter()
        .enumerate()
        .map(|(i, label)| {
            (
                label.clone(),
                set.windows.iter().filter(|w| w.regime == i).count(),
            )
        })
        .collect();
    let per_asset = returns
        .assets
        .iter()
        .zip(&returns.columns)
        .map(|(a, c)| {
            (
                a.clone(),
                mean(c) * TRADING_DAYS,
                std_dev(c, 1) * TRADING_DAYS.sqrt(),
            )
        })
        .collect();
    Ok(IngestSummary {
        out: config.out.clone(),
        rows_read,
        return_days: returns.len(),
        windows_cut,
        windows_written: set.len(),
        dropped_no_signal: windows_cut - set.len(),
        per_regime,
        first_date: format_date(returns.dates[0]),
        last_date: format_date(*returns.dates.last().expect("non-empty")),
        per_asset,
    })
}

fn metadata(
    config: &IngestConfig,
    winsor: Option<&[(f64, f64)]>,
) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    m.insert(
        crate::io::meta::SOURCE.into(),
        config.input.display().to_string(),
    );
    m.insert(
        crate::io::meta::SOURCE_SHA256.into(),
        sha256_file(&config.input)?,
    );
    m.insert(
        crate::io::meta::SIGNAL_FILE.into(),
        config.signal.path().display().to_string(),
    );
    m.insert(
        crate::io::meta::SIGNAL_SHA256.into(),
        sha256_file(config.signal.path())?,
    );
    m.insert(crate::io::meta::SIGNAL.into(), config.signal.describe());
    m.insert(
        crate::io::meta::KIND.into(),
        format!("{:?}", config.kind).to_lowercase(),
    );
    m.insert(crate::io::meta::STRIDE.into(), config.stride.to_string());
    m.insert(
        crate::io::meta::ON_MISSING.into(),
        format!("{:?}", config.on_missing).to_lowercase(),
    );
    m.insert(
        crate::io::meta::THRESHOLDS.into(),
        serde_json::to_string(&config.rule.thresholds).expect("numbers serialise"),
    );
    m.insert(
        crate::io::meta::WINSORIZE.into(),
        match (config.winsorize, winsor) {
            (Some(q), Some(bounds)) => serde_json::json!({ "q": q, "bounds": bounds }).to_string(),
            _ => "none".into(),
        },
    );
    Ok(m)
}
