//! The VaR backtest's files: `var_backtest.json`, `forecasts.parquet` (one row per model,
//! horizon, level and forecast: the VaR, the real P&L and whether it was exceeded) and
//! `report.html` (the tables and the 1-day losses against each model's VaR), all or nothing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, StringArray, UInt16Array};
use arrow::datatypes::{DataType, Field, Schema};

use super::models::ScenarioFile;
use super::{Coverage, HorizonForecasts, VarBacktest, VarBacktestConfig};
use crate::error::Result;
use crate::io::{self, decimal_year, format_date, AtomicDir, AtomicFile};
use crate::report::{escape, fmt, line_chart, sets_table, Series, StageReport, STYLE};

const NOTE: &str = "Each forecast is made on the morning of a test day from the scenario file of the regime in force (the regime rule applied to the signal at the previous close) or, for historical, from the trailing return days; diffusion-state and fhs (with a model folder) draw their scenarios afresh every morning from the market's state at the previous close and are not scaled; the positions are held without trading over the horizon, and an exceedance is a real loss larger than the VaR. Longer horizons use non-overlapping holding periods. A model named with +ewma is scaled to the portfolio's volatility of the day: its VaR is multiplied by the portfolio's exponentially weighted (RiskMetrics) volatility at the previous close over the root mean square of the scenario file's 1-day P&L or, for historical, each past outcome by today's volatility over that of its own first day (Hull and White's volatility updating). Kupiec tests the exceedance rate (chi-squared, 1 degree of freedom), Christoffersen's independence test whether an exceedance follows another more often than the rate says (1 degree), conditional coverage is their sum (2 degrees); with few expected exceedances their p-values are indicative. The Basel zones count 1-day 99% exceedances in every stretch of 250 forecasts: green up to 4, yellow 5 to 9, red 10 or more.";

impl StageReport for VarBacktest {
    const FILES: &'static [&'static str] =
        &["var_backtest.json", "forecasts.parquet", "report.html"];

    fn write(&self, out: &Path) -> Result<PathBuf> {
        write_var_backtest(self, out)
    }

    fn summary(&self) -> String {
        var_backtest_text(self)
    }
}

/// Writes `var_backtest.json`, `forecasts.parquet` and `report.html` into `out`.
fn write_var_backtest(b: &VarBacktest, out: &Path) -> Result<PathBuf> {
    let config = &b.config;
    let dir = AtomicDir::new(out)?;
    let periods: Vec<_> = b
        .forecasts
        .iter()
        .map(|f| {
            serde_json::json!({
                "horizon": f.horizon,
                "forecasts": f.dates.len(),
                "first": format_date(f.dates[0]),
                "last": format_date(*f.dates.last().expect("a forecast")),
                "per_regime": regime_counts(&f.regimes),
            })
        })
        .collect();
    let json = serde_json::json!({
        "portfolio": b.portfolio,
        "gross": b.portfolio.gross(),
        "net": b.portfolio.net(),
        "prices": config.prices.display().to_string(),
        "signal": config.signal.describe(),
        "lookback": config.lookback,
        "ewma_lambda": config.ewma_lambda,
        "horizons": config.horizons,
        "levels": config.levels,
        "periods": periods,
        "models": b.models,
        "coverage": b.coverage,
        "next": b.next,
        "note": NOTE,
    });
    dir.write_text(
        "var_backtest.json",
        &serde_json::to_string_pretty(&json).expect("json"),
    )?;
    write_forecasts(dir.file("forecasts.parquet")?, config, b)?;
    dir.write_text("report.html", &html(b))?;
    dir.commit()
}

fn regime_counts(regimes: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for r in regimes {
        *counts.entry(r.as_str()).or_insert(0) += 1;
    }
    counts
}

/// The forecasts at `horizon`, one of the backtest's.
fn forecasts_at(b: &VarBacktest, horizon: usize) -> &HorizonForecasts {
    b.forecasts
        .iter()
        .find(|f| f.horizon == horizon)
        .expect("every horizon has its forecasts")
}

fn write_forecasts(out: AtomicFile, config: &VarBacktestConfig, b: &VarBacktest) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("horizon", DataType::UInt16, false),
        Field::new("level", DataType::Float64, false),
        Field::new("date", DataType::Date32, false),
        Field::new("regime", DataType::Utf8, false),
        Field::new("var", DataType::Float64, false),
        Field::new("pnl", DataType::Float64, false),
        Field::new("exceeded", DataType::Boolean, false),
    ]));
    let rows = || {
        b.coverage.iter().flat_map(|c| {
            let f = forecasts_at(b, c.horizon);
            (0..c.var.len()).map(move |k| (c, f, k))
        })
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows().map(|(c, _, _)| c.model.as_str()),
        )),
        Arc::new(UInt16Array::from_iter_values(
            rows().map(|(c, _, _)| c.horizon as u16),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(c, _, _)| c.level),
        )),
        Arc::new(Date32Array::from_iter_values(
            rows().map(|(_, f, k)| f.dates[k]),
        )),
        Arc::new(StringArray::from_iter_values(
            rows().map(|(_, f, k)| f.regimes[k].as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(c, _, k)| c.var[k]),
        )),
        Arc::new(Float64Array::from_iter_values(
            rows().map(|(_, f, k)| f.pnl[k]),
        )),
        Arc::new(BooleanArray::from(
            rows()
                .map(|(c, f, k)| -f.pnl[k] > c.var[k])
                .collect::<Vec<bool>>(),
        )),
    ];
    let mut metadata = BTreeMap::new();
    metadata.insert(
        crate::io::meta::PORTFOLIO.into(),
        config.portfolio.display().to_string(),
    );
    metadata.insert(
        crate::io::meta::PRICES.into(),
        config.prices.display().to_string(),
    );
    let batch = arrow::record_batch::RecordBatch::try_new(schema.clone(), columns)
        .expect("columns match the schema");
    io::write_batches(out, schema, &metadata, std::iter::once(Ok(batch)))?;
    Ok(())
}

/// The Basel zones of a 1-day 99% record, as `worst (exceedances) / last (exceedances)`; empty
/// for the others.
fn basel_text(c: &Coverage) -> String {
    c.basel.as_ref().map_or(String::new(), |z| {
        format!(
            "{} ({}) / {} ({})",
            z.worst_zone, z.most_exceedances, z.last_zone, z.last_exceedances
        )
    })
}

/// What the next-day forecast was made from, in one line.
fn next_heading(b: &VarBacktest) -> String {
    let n = &b.next;
    format!(
        "VaR for {} (after the close of {}, regime {}{})",
        n.date.as_deref().unwrap_or("the next trading day"),
        n.after,
        n.regime,
        n.ewma_volatility.map_or(String::new(), |v| format!(
            ", daily EWMA volatility {v:.0} {}",
            b.portfolio.currency.as_deref().unwrap_or("")
        ))
    )
}

/// The next-day forecast as rows of a model and its VaR at each (horizon, level), in the
/// order of [`next_columns`].
fn next_rows(b: &VarBacktest) -> Vec<(&str, Vec<f64>)> {
    b.models
        .iter()
        .map(|m| {
            let var = b.next.var.iter().filter(|v| v.model == m.name);
            (m.name.as_str(), var.map(|v| v.var).collect())
        })
        .collect()
}

/// The (horizon, level) columns of the next-day forecast, as `1-day 99%`.
fn next_columns(b: &VarBacktest) -> Vec<String> {
    let first = &b.models[0].name;
    b.next
        .var
        .iter()
        .filter(|v| &v.model == first)
        .map(|v| format!("{}-day {}%", v.horizon, v.level * 100.0))
        .collect()
}

/// The coverage table and the next-day forecast for the terminal.
pub fn var_backtest_text(b: &VarBacktest) -> String {
    let mut t = String::new();
    for f in &b.forecasts {
        let _ = writeln!(
            t,
            "{}-day VaR: {} forecasts from {} to {} ({})",
            f.horizon,
            f.dates.len(),
            format_date(f.dates[0]),
            format_date(*f.dates.last().expect("a forecast")),
            regime_counts(&f.regimes)
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        t,
        "{:<16} {:>4} {:>6} {:>7} {:>8} {:>13} {:>8} {:>8} {:>8}  basel (worst / last)",
        "model", "days", "level", "hits", "expected", "mean VaR", "Kupiec p", "indep. p", "cc p"
    );
    for c in &b.coverage {
        let basel = basel_text(c);
        let _ = writeln!(
            t,
            "{:<16} {:>4} {:>6} {:>7} {:>8.1} {:>13.0} {:>8.3} {:>8.3} {:>8.3}  {}",
            c.model,
            c.horizon,
            c.level,
            c.exceedances,
            c.expected,
            c.mean_var,
            c.kupiec.p_value,
            c.independence.p_value,
            c.conditional_coverage.p_value,
            basel
        );
    }
    let _ = writeln!(t, "{}:", next_heading(b));
    let _ = write!(t, "{:<16}", "model");
    for column in next_columns(b) {
        let _ = write!(t, " {column:>14}");
    }
    let _ = writeln!(t);
    for (model, var) in next_rows(b) {
        let _ = write!(t, "{model:<16}");
        for v in var {
            let _ = write!(t, " {v:>14.0}");
        }
        let _ = writeln!(t);
    }
    t
}

fn html(b: &VarBacktest) -> String {
    let config = &b.config;
    let currency = b.portfolio.currency.as_deref().unwrap_or("");
    let mut h = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>scengen VaR backtest</title>\
         <style>{STYLE}</style></head><body><h1>VaR backtest: {}</h1><p>Prices <code>{}</code>, \
         regimes from {}, historical simulation over {} days. Gross {} {currency}, net {} \
         {currency}.</p>",
        escape(&config.portfolio.display().to_string()),
        escape(&config.prices.display().to_string()),
        escape(&config.signal.describe()),
        config.lookback,
        fmt(b.portfolio.gross()),
        fmt(b.portfolio.net()),
    );
    // The table leaves the regime out (a report of one regime's sets names it once); here each
    // generator has a file per regime. A scaled model reads its generator's files.
    let sets: Vec<(String, &ScenarioFile)> = b
        .models
        .iter()
        .filter(|m| !m.ewma_scaled)
        .flat_map(|m| {
            m.files
                .iter()
                .map(move |(regime, f)| (format!("{} ({regime})", m.name), f))
        })
        .collect();
    h.push_str(&sets_table(
        sets.iter()
            .map(|(label, f)| (label.as_str(), f.file.as_str(), &f.generator)),
    ));
    let _ = write!(
        h,
        "<h2>{}</h2><table><tr><th>model</th>",
        escape(&next_heading(b))
    );
    for column in next_columns(b) {
        let _ = write!(h, "<th>{}</th>", escape(&column));
    }
    h.push_str("</tr>");
    for (model, var) in next_rows(b) {
        let _ = write!(h, "<tr><td>{}</td>", escape(model));
        for v in var {
            let _ = write!(h, "<td>{}</td>", fmt(v));
        }
        h.push_str("</tr>");
    }
    h.push_str(
        "</table><h2>Coverage</h2><table><tr><th>model</th><th>days</th><th>level</th><th>forecasts</th>\
         <th>exceedances</th><th>expected</th><th>mean VaR</th><th>mean loss beyond VaR</th>\
         <th>Kupiec p</th><th>independence p</th><th>conditional coverage p</th>\
         <th>Basel worst / last 250</th></tr>",
    );
    for c in &b.coverage {
        let basel = basel_text(c);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{}</td>\
             <td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
            escape(&c.model),
            c.horizon,
            c.level,
            c.forecasts,
            c.exceedances,
            c.expected,
            fmt(c.mean_var),
            fmt(c.mean_excess_loss),
            c.kupiec.p_value,
            c.independence.p_value,
            c.conditional_coverage.p_value,
            basel
        );
    }
    h.push_str(
        "</table><h2>Exceedances by regime</h2><table><tr><th>model</th><th>days</th>\
         <th>level</th><th>regime</th><th>forecasts</th><th>exceedances</th><th>expected</th>\
         <th>Kupiec p</th></tr>",
    );
    for c in &b.coverage {
        for r in &c.by_regime {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{:.1}</td><td>{:.3}</td></tr>",
                escape(&c.model),
                c.horizon,
                c.level,
                escape(&r.regime),
                r.forecasts,
                r.exceedances,
                (1.0 - c.level) * r.forecasts as f64,
                r.kupiec.p_value
            );
        }
    }
    h.push_str("</table><h2>Losses against the VaR</h2><div class=\"plots\">");
    let level = config.levels.iter().copied().fold(f64::NAN, f64::max);
    let scaled = |c: &Coverage| b.models.iter().any(|m| m.name == c.model && m.ewma_scaled);
    for &horizon in &config.horizons {
        let f = forecasts_at(b, horizon);
        let at = |values: &[f64]| -> Vec<(f64, f64)> {
            f.dates
                .iter()
                .zip(values)
                .map(|(d, v)| (decimal_year(*d), *v))
                .collect()
        };
        let losses: Vec<f64> = f.pnl.iter().map(|p| -p).collect();
        // The models as they are, then scaled to the EWMA volatility: one chart each.
        for (ewma, title) in [(false, ""), (true, ", scaled to EWMA volatility")] {
            let curves: Vec<Series> = b
                .coverage
                .iter()
                .filter(|c| c.horizon == horizon && c.level == level && scaled(c) == ewma)
                .map(|c| Series {
                    name: format!("{} VaR", c.model),
                    points: at(&c.var),
                })
                .collect();
            if curves.is_empty() {
                continue;
            }
            let mut series = vec![Series {
                name: "real loss".into(),
                points: at(&losses),
            }];
            series.extend(curves);
            h.push_str(&line_chart(
                &format!("{horizon}-day loss and {}% VaR{title}", level * 100.0),
                "year",
                currency,
                &series,
                false,
                false,
            ));
        }
    }
    let _ = write!(
        h,
        "</div><p class=\"note\">{}</p></body></html>",
        escape(NOTE)
    );
    h
}
