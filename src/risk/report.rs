//! The risk run's files: `risk.json`, `pnl.parquet` (one row per set, path and horizon) and
//! `report.html` (the tables and a VaR curve), written together or not at all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt16Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};

use super::{RiskReport, SetRisk};
use crate::error::Result;
use crate::io::{self, AtomicDir, AtomicFile};
use crate::report::{escape, fmt, line_chart, sets_table, Series, StageReport, STYLE};
use crate::stats::var_cvar;

/// Confidence levels of the VaR curve in the HTML report.
const CURVE_LEVELS: [f64; 9] = [0.9, 0.925, 0.95, 0.96, 0.97, 0.975, 0.98, 0.99, 0.995];

impl StageReport for RiskReport {
    const FILES: &'static [&'static str] = &["risk.json", "pnl.parquet", "report.html"];

    /// Writes `risk.json`, `pnl.parquet` and `report.html` into `out`, all or nothing.
    fn write(&self, out: &Path) -> Result<PathBuf> {
        let dir = AtomicDir::new(out)?;
        dir.write_text(
            "risk.json",
            &serde_json::to_string_pretty(self).expect("json"),
        )?;
        write_pnl(dir.file("pnl.parquet")?, self)?;
        dir.write_text("report.html", &html(self))?;
        dir.commit()
    }

    fn summary(&self) -> String {
        summary_text(self)
    }
}

fn write_pnl(out: AtomicFile, report: &RiskReport) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("set", DataType::Utf8, false),
        Field::new("path", DataType::UInt32, false),
        Field::new("horizon", DataType::UInt16, false),
        Field::new("pnl", DataType::Float64, false),
    ]));
    let rows = || {
        report.sets.iter().flat_map(|s| {
            report
                .horizons
                .iter()
                .enumerate()
                .flat_map(move |(h, &days)| {
                    s.ids
                        .iter()
                        .zip(&s.pnl[h])
                        .map(move |(&id, &pnl)| (s.label.as_str(), id, days as u16, pnl))
                })
        })
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows().map(|r| r.0))),
        Arc::new(UInt32Array::from_iter_values(rows().map(|r| r.1))),
        Arc::new(UInt16Array::from_iter_values(rows().map(|r| r.2))),
        Arc::new(Float64Array::from_iter_values(rows().map(|r| r.3))),
    ];
    let mut metadata = BTreeMap::new();
    metadata.insert(
        crate::io::meta::PORTFOLIO.into(),
        report.portfolio.file.display().to_string(),
    );
    metadata.insert(crate::io::meta::REGIME.into(), report.regime.clone());
    let batch = io::batch(schema.clone(), columns)?;
    io::write_batches(out, schema, &metadata, [Ok(batch)])?;
    Ok(())
}

/// An amount for tables: whole units with thousands separators from 1,000 on, else 4
/// significant figures (a portfolio given in weights).
fn amount(v: f64) -> String {
    if v.abs() < 1000.0 {
        return fmt(v);
    }
    let digits = format!("{:.0}", v.abs());
    let mut grouped = if v < 0.0 {
        "-".to_string()
    } else {
        String::new()
    };
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

fn interval(i: Option<[f64; 2]>) -> String {
    i.map_or_else(String::new, |[lo, hi]| {
        format!("[{} – {}]", amount(lo), amount(hi))
    })
}

fn heading(r: &RiskReport) -> String {
    let p = &r.portfolio;
    let file = p.file.display();
    let currency = p
        .currency
        .as_ref()
        .map_or(String::new(), |c| format!(" {c}"));
    format!(
        "{}: {} position{}, gross {}{currency}, net {}{currency}; regime {}, {}-day paths",
        p.name
            .as_ref()
            .map_or(file.to_string(), |n| format!("{n} ({file})")),
        p.positions.len(),
        if p.positions.len() == 1 { "" } else { "s" },
        amount(r.gross),
        amount(r.net),
        r.regime,
        r.window,
    )
}

/// The table for the terminal: VaR and CVaR of every set, horizon and level.
pub fn summary_text(r: &RiskReport) -> String {
    let width = r
        .sets
        .iter()
        .map(|s| s.label.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let mut t = format!(
        "{}\n{:<width$} {:>7} {:>6} {:>7} {:>13} {:>31} {:>13} {:>31}\n",
        heading(r),
        "set",
        "paths",
        "days",
        "level",
        "VaR",
        "interval",
        "CVaR",
        "interval"
    );
    for s in &r.sets {
        for h in &s.horizons {
            for tail in &h.tails {
                t.push_str(&format!(
                    "{:<width$} {:>7} {:>6} {:>7} {:>13} {:>31} {:>13} {:>31}\n",
                    s.label,
                    s.paths,
                    h.days,
                    tail.level,
                    amount(tail.var),
                    interval(tail.var_interval),
                    amount(tail.cvar),
                    interval(tail.cvar_interval),
                ));
            }
        }
    }
    t
}

fn html(r: &RiskReport) -> String {
    let mut h = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>scengen risk: {}</title>\
         <style>{STYLE}</style></head><body><h1>Portfolio risk: {}</h1><p>{}</p>\
         <p class=\"note\">{}</p>",
        escape(&r.regime),
        escape(&r.regime),
        escape(&heading(r)),
        escape(&r.note),
    );
    h.push_str(&sets_table(
        r.sets
            .iter()
            .filter(|s| s.method != "real")
            .map(|s| (s.label.as_str(), s.file.as_str(), &s.generator)),
    ));
    h.push_str(
        "<h2>VaR and CVaR</h2><table><tr><th>set</th><th>paths</th><th>days</th><th>mean P&amp;L</th>\
         <th>std dev</th><th>worst loss (path)</th><th>level</th><th>VaR</th><th>interval</th>\
         <th>CVaR</th><th>interval</th></tr>",
    );
    for s in &r.sets {
        for hz in &s.horizons {
            for tail in &hz.tails {
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td>\
                     <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&s.label),
                    s.paths,
                    hz.days,
                    amount(hz.mean),
                    amount(hz.std_dev),
                    amount(hz.worst_loss),
                    hz.worst_path,
                    tail.level,
                    amount(tail.var),
                    interval(tail.var_interval),
                    amount(tail.cvar),
                    interval(tail.cvar_interval),
                ));
            }
        }
    }
    h.push_str("</table>");
    let (last, level) = (r.horizons.len() - 1, r.levels.len() - 1);
    h.push_str(&format!(
        "<h2>Contributions to the {}-day CVaR at {}</h2><table><tr><th>position</th>\
         <th>market value</th>",
        r.horizons[last], r.levels[level]
    ));
    for s in &r.sets {
        h.push_str(&format!("<th>{}</th>", escape(&s.label)));
    }
    h.push_str("</tr>");
    for (i, p) in r.portfolio.positions.iter().enumerate() {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td>",
            escape(&p.asset),
            amount(p.value)
        ));
        for s in &r.sets {
            let c = s.horizons[last].tails[level].contributions[i];
            h.push_str(&format!("<td>{}</td>", amount(c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><div class=\"plots\">");
    // Real windows first: the chart draws its first series as the reference, in black.
    let mut ordered: Vec<&SetRisk> = r.sets.iter().filter(|s| s.method == "real").collect();
    ordered.extend(r.sets.iter().filter(|s| s.method != "real"));
    for (k, &days) in r.horizons.iter().enumerate() {
        let series: Vec<Series> = ordered
            .iter()
            .map(|s| Series {
                name: s.label.clone(),
                points: CURVE_LEVELS
                    .iter()
                    .map(|&l| (l, var_cvar(&s.pnl[k], l).0))
                    .collect(),
            })
            .collect();
        h.push_str(&line_chart(
            &format!("{days}-day VaR by confidence level"),
            "confidence level",
            "VaR (loss)",
            &series,
            false,
            false,
        ));
    }
    h.push_str("</div></body></html>");
    h
}
