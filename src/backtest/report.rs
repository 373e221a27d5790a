//! The backtest's files: `weights.parquet` (one row per rebalance and strategy, one column per
//! asset), `returns.parquet` (one row per day, one column per strategy), `summary.json`, and
//! `report.html` with the table and the cumulative-return and rolling-volatility plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::run::{cumulative_wealth, Backtest, Strategy, EQUAL_WEIGHT};
use crate::data::TRADING_DAYS;
use crate::error::Result;
use crate::io::{self, decimal_year, format_date, AtomicDir, AtomicFile};
use crate::report::{escape, fmt, line_chart, Series, StageReport, STYLE};
use crate::stats::std_dev;

/// Trading days in the rolling-volatility plot.
const ROLLING_DAYS: usize = 63;
/// Points per plotted series: every k-th day, so the inline SVG stays small.
const PLOT_POINTS: usize = 400;

/// Every k-th point, k chosen to leave about `PLOT_POINTS`, the last one always kept.
fn thin(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    let k = points.len().div_ceil(PLOT_POINTS).max(1);
    let last = points.len().saturating_sub(1);
    points
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % k == 0 || *i == last)
        .map(|(_, p)| p)
        .collect()
}

/// A strategy's column name in `returns.parquet`: `portfolio:method`, or `equal-weight`.
pub fn strategy_name(s: &Strategy) -> String {
    if s.method == EQUAL_WEIGHT {
        EQUAL_WEIGHT.to_string()
    } else {
        format!("{}:{}", s.portfolio, s.method)
    }
}

/// The summary table for the terminal.
pub fn summary_text(b: &Backtest) -> String {
    let mut t = format!(
        "{} .. {}: {} days, {} rebalances ({})\n{:<12} {:<19} {:>9} {:>9} {:>9} {:>9} {:>10}\n",
        format_date(b.dates[0]),
        format_date(*b.dates.last().expect("a test day")),
        b.dates.len(),
        b.rebalance_dates.len(),
        regime_counts(b)
            .iter()
            .map(|(r, c)| format!("{r} {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        "portfolio",
        "method",
        "vol %/y",
        "ret %/y",
        "max DD %",
        "turnover",
        "cond. no."
    );
    for s in &b.summary {
        t.push_str(&format!(
            "{:<12} {:<19} {:>9.2} {:>9.2} {:>9.1} {:>9.3} {:>10.1}\n",
            s.portfolio,
            s.method,
            s.annualised_volatility * 100.0,
            s.annualised_return * 100.0,
            s.max_drawdown * 100.0,
            s.turnover_per_rebalance,
            s.mean_condition_number
        ));
    }
    t
}

impl StageReport for Backtest {
    const FILES: &'static [&'static str] = &[
        "weights.parquet",
        "returns.parquet",
        "summary.json",
        "report.html",
    ];

    fn write(&self, out: &Path) -> Result<PathBuf> {
        write_backtest(self, out)
    }

    fn summary(&self) -> String {
        summary_text(self)
    }
}

/// Writes the four files into `out`, all or nothing.
fn write_backtest(b: &Backtest, out: &Path) -> Result<PathBuf> {
    let config = &b.config;
    let dir = AtomicDir::new(out)?;
    let mut metadata = BTreeMap::new();
    metadata.insert(
        crate::io::meta::PRICES.into(),
        config.prices.display().to_string(),
    );
    metadata.insert(
        crate::io::meta::LOOKBACK.into(),
        config.lookback.to_string(),
    );
    metadata.insert(
        crate::io::meta::VARIANCE_DAYS.into(),
        config.variance_days.to_string(),
    );
    metadata.insert(
        crate::io::meta::REBALANCE.into(),
        serde_json::to_string(&config.rebalance).expect("json"),
    );
    write_weights(dir.file("weights.parquet")?, b, &metadata)?;
    write_returns(dir.file("returns.parquet")?, b, &metadata)?;
    let json = serde_json::json!({
        "prices": config.prices.display().to_string(),
        "from": format_date(b.dates[0]),
        "to": format_date(*b.dates.last().expect("a test day")),
        "days": b.dates.len(),
        "lookback": config.lookback,
        "variance_days": config.variance_days,
        "rebalance": config.rebalance,
        "rebalances": b.rebalance_dates.len(),
        "rebalances_per_regime": regime_counts(b),
        "signal": config.signal.describe(),
        "scenario_files": b.scenario_files,
        "strategies": b.summary,
    });
    dir.write_text(
        "summary.json",
        &serde_json::to_string_pretty(&json).expect("json"),
    )?;
    dir.write_text("report.html", &html(b))?;
    dir.commit()
}

fn regime_counts(b: &Backtest) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in &b.regimes {
        *counts.entry(r.clone()).or_insert(0) += 1;
    }
    counts
}

fn write_weights(out: AtomicFile, b: &Backtest, metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut fields = vec![
        Field::new("date", DataType::Date32, false),
        Field::new("regime", DataType::Utf8, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("portfolio", DataType::Utf8, false),
        Field::new("condition_number", DataType::Float64, true),
    ];
    fields.extend(
        b.assets
            .iter()
            .map(|a| Field::new(a, DataType::Float64, false)),
    );
    let schema = Arc::new(Schema::new(fields));
    // Rows: rebalance-major, then strategy.
    let rows: Vec<(usize, &Strategy)> = (0..b.rebalance_dates.len())
        .flat_map(|k| b.strategies.iter().map(move |s| (k, s)))
        .collect();
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(
            rows.iter().map(|(k, _)| b.rebalance_dates[*k]),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(k, _)| b.regimes[*k].as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, s)| s.method.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, s)| s.portfolio.as_str()),
        )),
        Arc::new(Float64Array::from_iter(rows.iter().map(|(k, s)| {
            Some(s.condition_numbers[*k]).filter(|v| v.is_finite())
        }))),
    ];
    for a in 0..b.assets.len() {
        columns.push(Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(k, s)| s.weights[*k][a]),
        )));
    }
    let batch = io::batch(schema.clone(), columns)?;
    io::write_batches(out, schema, metadata, [Ok(batch)])?;
    Ok(())
}

fn write_returns(out: AtomicFile, b: &Backtest, metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut fields = vec![Field::new("date", DataType::Date32, false)];
    fields.extend(
        b.strategies
            .iter()
            .map(|s| Field::new(strategy_name(s), DataType::Float64, false)),
    );
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(b.dates.clone()))];
    for s in &b.strategies {
        columns.push(Arc::new(Float64Array::from(s.daily_returns.clone())));
    }
    let batch = io::batch(schema.clone(), columns)?;
    io::write_batches(out, schema, metadata, [Ok(batch)])?;
    Ok(())
}

/// Annualised volatility of the trailing `ROLLING_DAYS` returns, from the first full window.
fn rolling_vol(dates: &[i32], returns: &[f64]) -> Vec<(f64, f64)> {
    (ROLLING_DAYS..=returns.len())
        .map(|end| {
            (
                decimal_year(dates[end - 1]),
                std_dev(&returns[end - ROLLING_DAYS..end], 1) * TRADING_DAYS.sqrt(),
            )
        })
        .collect()
}

fn html(b: &Backtest) -> String {
    let config = &b.config;
    let mut h = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>scengen backtest</title>\
         <style>{STYLE}</style></head><body><h1>Minimum-variance backtest</h1>\
         <p class=\"note\">{} from {} to {} ({} days), {} rebalances ({}), estimators on the \
         trailing {} return days; the diffusion estimators use the scenario set of the regime in \
         force on each rebalance date with the trailing {}-day real variances. Regimes at \
         rebalance: {}. Weights are held and drift with prices between rebalances; turnover is \
         Σ|target − drifted weight| per rebalance.</p>",
        escape(&config.prices.display().to_string()),
        format_date(b.dates[0]),
        format_date(*b.dates.last().expect("a test day")),
        b.dates.len(),
        b.rebalance_dates.len(),
        escape(&serde_json::to_string(&config.rebalance).expect("json")),
        config.lookback,
        config.variance_days,
        regime_counts(b)
            .iter()
            .map(|(r, c)| format!("{} {c}", escape(r)))
            .collect::<Vec<_>>()
            .join(", "),
    );
    h.push_str(
        "<table><tr><th>portfolio</th><th>method</th><th>ann. volatility</th>\
         <th>ann. return</th><th>max drawdown</th><th>turnover / rebalance</th>\
         <th>mean condition number</th></tr>",
    );
    for portfolio in super::PORTFOLIOS.iter().chain([&EQUAL_WEIGHT]) {
        let rows: Vec<_> = b
            .summary
            .iter()
            .filter(|s| s.portfolio == *portfolio)
            .collect();
        let best = rows
            .iter()
            .map(|s| s.annualised_volatility)
            .fold(f64::INFINITY, f64::min);
        for s in rows {
            let class = if s.annualised_volatility == best && *portfolio != EQUAL_WEIGHT {
                " class=\"best\""
            } else {
                ""
            };
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td{class}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.portfolio),
                escape(&s.method),
                fmt(s.annualised_volatility),
                fmt(s.annualised_return),
                fmt(s.max_drawdown),
                fmt(s.turnover_per_rebalance),
                fmt(s.mean_condition_number),
            ));
        }
    }
    h.push_str("</table><div class=\"plots\">");
    let reference = b
        .strategies
        .iter()
        .find(|s| s.method == EQUAL_WEIGHT)
        .expect("equal weight is always run");
    for portfolio in super::PORTFOLIOS {
        let members: Vec<&Strategy> = std::iter::once(reference)
            .chain(b.strategies.iter().filter(|s| s.portfolio == portfolio))
            .collect();
        let wealth: Vec<Series> = members
            .iter()
            .map(|s| Series {
                name: strategy_name(s),
                points: thin(
                    b.dates
                        .iter()
                        .zip(cumulative_wealth(&s.daily_returns))
                        .map(|(d, w)| (decimal_year(*d), w))
                        .collect(),
                ),
            })
            .collect();
        h.push_str(&line_chart(
            &format!("Cumulative value: {portfolio}"),
            "year",
            "value of 1 invested",
            &wealth,
            false,
            false,
        ));
        let vol: Vec<Series> = members
            .iter()
            .map(|s| Series {
                name: strategy_name(s),
                points: thin(rolling_vol(&b.dates, &s.daily_returns)),
            })
            .collect();
        h.push_str(&line_chart(
            &format!("Rolling {ROLLING_DAYS}-day volatility: {portfolio}"),
            "year",
            "annualised volatility",
            &vol,
            false,
            false,
        ));
    }
    h.push_str("</div></body></html>");
    h
}
