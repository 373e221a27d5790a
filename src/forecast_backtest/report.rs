//! `forecast-backtest`'s files: `forecast_backtest.json` (settings, the summary, the tests),
//! `scores.parquet` (every score of every forecast, in long form) and `report.html` (the
//! summary table with the best generator per row marked, scores over time, the cumulative score
//! difference from FHS, PIT histograms, coverage), and the terminal table.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray, UInt16Array};
use arrow::datatypes::{DataType, Field, Schema};

use super::scoring::{ESTIMATOR, SCORES, VARIOGRAM_P};
use super::summary::PIT_BINS;
use super::ForecastBacktest;
use crate::error::Result;
use crate::forecasters::FHS;
use crate::io::{self, decimal_year, format_date, AtomicDir, AtomicFile};
use crate::report::{escape, fmt, line_chart, sets_table, Series, StageReport, STYLE};

const NOTE: &str = "On each forecast date every generator gives scenarios for the days after that date's close from data up to the close: a regime's scenario set (the regime in force the morning after), FHS-GARCH from each asset's conditional variance at the date, or the trailing days (historical simulation, filtered by each asset's EWMA volatility for historical+ewma). Each score compares the h-day outcome with the scenarios' h-day outcomes: energy score (beta 1) of the assets' log returns, CRPS of the equal-weight portfolio's simple return and of each asset's log return (crps_assets is their mean), variogram score (p = 0.5) of the assets' log returns; lower is better. Kernel scores use the fair estimator, unbiased for the expected score of the law the scenarios are drawn from, so that ensembles of different sizes compare. Diebold-Mariano tests use a Newey-West variance with ceil(h / every) - 1 lags; outcomes that overlap are dependent, so PIT and coverage p-values at longer horizons are indicative.";

impl StageReport for ForecastBacktest {
    const FILES: &'static [&'static str] =
        &["forecast_backtest.json", "scores.parquet", "report.html"];

    fn write(&self, out: &Path) -> Result<PathBuf> {
        let dir = AtomicDir::new(out)?;
        dir.write_text(
            "forecast_backtest.json",
            &serde_json::to_string_pretty(&json(self)).expect("json"),
        )?;
        write_scores(dir.file("scores.parquet")?, self)?;
        dir.write_text("report.html", &html(self))?;
        dir.commit()
    }

    fn summary(&self) -> String {
        summary_text(self)
    }
}

fn json(b: &ForecastBacktest) -> serde_json::Value {
    let c = &b.config;
    let periods: Vec<_> = b
        .horizons
        .iter()
        .map(|h| {
            serde_json::json!({
                "horizon": h.horizon,
                "forecasts": h.dates.len(),
                "first": h.dates.first().map(|&d| format_date(d)),
                "last": h.dates.last().map(|&d| format_date(d)),
            })
        })
        .collect();
    serde_json::json!({
        "prices": c.prices.display().to_string(),
        "kind": c.kind,
        "signal": c.signal.describe(),
        "every": c.every,
        "horizons": c.horizons,
        "paths": c.paths,
        "lookback": c.lookback,
        "ewma_lambda": c.ewma_lambda,
        "seed": c.seed,
        "sampler": c.sampler,
        "estimator": ESTIMATOR,
        "variogram_p": VARIOGRAM_P,
        "book": b.book.0,
        "levels": c.levels,
        "assets": b.assets,
        "generators": b.generators,
        "periods": periods,
        "summary": b.summary,
        "tests": b.tests,
        "pit": b.pit,
        "coverage": b.coverage,
        "fit_seconds": b.fit_seconds,
        "scoring_seconds": b.scoring_seconds,
        "note": NOTE,
    })
}

/// One row per (date, generator, horizon, score): the four scores, `pit_ew`, and
/// `crps:<asset>` for every asset.
fn write_scores(out: AtomicFile, b: &ForecastBacktest) -> Result<()> {
    let mut rows: Vec<(i32, &str, u16, String, f64)> = Vec::new();
    for h in &b.horizons {
        for (g, per_date) in h.scores.iter().enumerate() {
            let generator = b.generators[g].name.as_str();
            for (&date, s) in h.dates.iter().zip(per_date) {
                let mut push = |score: String, value: f64| {
                    rows.push((date, generator, h.horizon as u16, score, value))
                };
                for score in SCORES {
                    push(score.to_string(), s.get(score));
                }
                push("pit_ew".into(), s.pit_ew);
                for (asset, v) in b.assets.iter().zip(&s.per_asset) {
                    push(format!("crps:{asset}"), *v);
                }
            }
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("generator", DataType::Utf8, false),
        Field::new("horizon", DataType::UInt16, false),
        Field::new("score", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.3.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.4))),
    ];
    let mut metadata = BTreeMap::new();
    metadata.insert(
        crate::io::meta::PRICES.into(),
        b.config.prices.display().to_string(),
    );
    let batch = io::batch(schema.clone(), columns)?;
    io::write_batches(out, schema, &metadata, [Ok(batch)])?;
    Ok(())
}

/// The summary table: per horizon and score, every generator's mean (the best marked with `*`),
/// then the Diebold–Mariano p-values against FHS.
pub fn summary_text(b: &ForecastBacktest) -> String {
    let names: Vec<&str> = b.generators.iter().map(|g| g.name.as_str()).collect();
    let mut t = String::new();
    if let Some(h) = b.horizons.first() {
        let _ = writeln!(
            t,
            "{} forecast dates from {} (every {} trading days), book {}",
            h.dates.len(),
            format_date(h.dates[0]),
            b.config.every,
            b.book.0
        );
    }
    let _ = write!(t, "{:>3} {:<12}", "h", "score");
    for name in &names {
        let _ = write!(t, " {name:>16}");
    }
    let _ = writeln!(t);
    for row in &b.summary {
        let _ = write!(t, "{:>3} {:<12}", row.horizon, row.score);
        for (name, v) in names.iter().zip(&row.means) {
            let mark = if *name == row.best { "*" } else { " " };
            let _ = write!(t, " {:>15}{mark}", format!("{v:.6}"));
        }
        let _ = writeln!(t);
    }
    let _ = writeln!(
        t,
        "Diebold-Mariano p-values against {FHS} (mean difference < 0: better)"
    );
    for test in b.tests.iter().filter(|x| x.against == FHS) {
        let _ = writeln!(
            t,
            "{:>3} {:<12} {:<16} {:>+12.6} p {:.3}",
            test.horizon, test.score, test.generator, test.mean_difference, test.p_value
        );
    }
    let _ = writeln!(
        t,
        "fits took {:.1} s, forecasting and scoring {:.1} s",
        b.fit_seconds, b.scoring_seconds
    );
    t
}

fn html(b: &ForecastBacktest) -> String {
    let c = &b.config;
    let mut h = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>scengen forecast backtest</title>\
         <style>{STYLE}</style></head><body><h1>Forecast backtest</h1><p>Prices <code>{}</code>, \
         regimes from {}, forecasts every {} trading days, {} paths, historical simulation over \
         {} days, book {}.</p><p class=\"note\">{}</p>",
        escape(&c.prices.display().to_string()),
        escape(&c.signal.describe()),
        c.every,
        c.paths,
        c.lookback,
        escape(&b.book.0),
        escape(NOTE)
    );
    let sets: Vec<(String, &str, &BTreeMap<String, String>)> = b
        .generators
        .iter()
        .flat_map(|g| {
            g.files.iter().map(move |(regime, f)| {
                (
                    format!("{} ({regime})", g.name),
                    f.file.as_str(),
                    &f.generator,
                )
            })
        })
        .collect();
    h.push_str(&sets_table(sets.iter().map(|(label, file, generator)| {
        (label.as_str(), *file, *generator)
    })));
    h.push_str(&summary_table(b));
    h.push_str(&tests_table(b));
    h.push_str(&charts(b));
    h.push_str(&coverage_table(b));
    h.push_str("</body></html>");
    h
}

fn summary_table(b: &ForecastBacktest) -> String {
    let mut h = String::from("<h2>Mean scores (lower is better)</h2><table><tr><th>horizon</th><th>score</th><th>forecasts</th>");
    for g in &b.generators {
        let _ = write!(h, "<th>{}</th>", escape(&g.name));
    }
    h.push_str("</tr>");
    for row in &b.summary {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            row.horizon, row.score, row.forecasts
        );
        for (g, v) in b.generators.iter().zip(&row.means) {
            let class = if g.name == row.best {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(h, "<td{class}>{}</td>", fmt(*v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

fn tests_table(b: &ForecastBacktest) -> String {
    let mut h = String::from("<h2>Diebold–Mariano tests</h2><table><tr><th>horizon</th><th>score</th><th>generator</th><th>against</th><th>mean difference</th><th>DM</th><th>p</th><th>lags</th></tr>");
    for t in &b.tests {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.horizon,
            t.score,
            escape(&t.generator),
            escape(&t.against),
            fmt(t.mean_difference),
            fmt(t.statistic),
            fmt(t.p_value),
            t.lags
        );
    }
    h.push_str("</table>");
    h
}

/// Per horizon: the energy score over time (a rolling mean of 13 forecasts), the cumulative
/// energy score difference from FHS, and the PIT histograms.
fn charts(b: &ForecastBacktest) -> String {
    let mut h = String::from("<h2>Over time and PIT</h2><div class=\"plots\">");
    let fhs = b.generators.iter().position(|g| g.name == FHS);
    for hs in &b.horizons {
        let x: Vec<f64> = hs.dates.iter().map(|&d| decimal_year(d)).collect();
        let rolling: Vec<Series> = b
            .generators
            .iter()
            .zip(&hs.scores)
            .map(|(g, s)| Series {
                name: g.name.clone(),
                points: rolling_mean(&x, &s.iter().map(|d| d.energy).collect::<Vec<_>>(), 13),
            })
            .collect();
        h.push_str(&line_chart(
            &format!(
                "Energy score, {}-day, rolling mean of 13 forecasts",
                hs.horizon
            ),
            "year",
            "energy score",
            &rolling,
            false,
            false,
        ));
        if let Some(f) = fhs {
            let cumulative: Vec<Series> = b
                .generators
                .iter()
                .zip(&hs.scores)
                .filter(|(g, _)| g.name != FHS)
                .map(|(g, s)| {
                    let mut total = 0.0;
                    let points = x
                        .iter()
                        .zip(s.iter().zip(&hs.scores[f]))
                        .map(|(&x, (a, b))| {
                            total += a.energy - b.energy;
                            (x, total)
                        })
                        .collect();
                    Series {
                        name: g.name.clone(),
                        points,
                    }
                })
                .collect();
            h.push_str(&line_chart(
                &format!("Cumulative energy score minus FHS's, {}-day", hs.horizon),
                "year",
                "sum of differences (< 0: better than FHS)",
                &cumulative,
                false,
                false,
            ));
        }
        let pit: Vec<Series> = b
            .pit
            .iter()
            .filter(|p| p.horizon == hs.horizon)
            .map(|p| Series {
                name: p.generator.clone(),
                points: p
                    .histogram
                    .iter()
                    .enumerate()
                    .map(|(i, v)| ((i as f64 + 0.5) / PIT_BINS as f64, *v * PIT_BINS as f64))
                    .collect(),
            })
            .collect();
        h.push_str(&line_chart(
            &format!(
                "PIT of the equal-weight return, {}-day (uniform: 1)",
                hs.horizon
            ),
            "PIT",
            "density",
            &pit,
            false,
            false,
        ));
    }
    h.push_str("</div>");
    h
}

fn rolling_mean(x: &[f64], y: &[f64], window: usize) -> Vec<(f64, f64)> {
    (window.min(y.len())..=y.len())
        .map(|end| {
            let start = end.saturating_sub(window);
            (
                x[end - 1],
                y[start..end].iter().sum::<f64>() / (end - start) as f64,
            )
        })
        .collect()
}

fn coverage_table(b: &ForecastBacktest) -> String {
    let mut h = format!(
        "<h2>VaR coverage of the book {}</h2><table><tr><th>horizon</th><th>generator</th><th>level</th><th>forecasts</th><th>exceedances</th><th>expected</th><th>Kupiec p</th><th>independence p</th></tr>",
        escape(&b.book.0)
    );
    for c in &b.coverage {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            c.horizon,
            escape(&c.generator),
            c.level,
            c.forecasts,
            c.exceedances,
            fmt(c.expected),
            fmt(c.kupiec.p_value),
            fmt(c.independence.p_value)
        );
    }
    h.push_str("</table>");
    h
}
