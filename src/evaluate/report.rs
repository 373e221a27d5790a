//! `evaluate`'s outputs: `metrics.json`, the terminal summary and the page (the scenario sets,
//! the summary table with the best set per row marked, Q-Q, ACF and leverage plots, eigenvalue
//! spectra, correlation heat maps, per-asset tables).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{Evaluation, ScoredSet, QUANTILE_LEVELS};
use crate::error::Result;
use crate::io::AtomicDir;
use crate::report::{escape, fmt, heatmap, line_chart, sets_table, Series, StageReport, STYLE};

/// Picks one figure series out of a set's metrics.
type Pick = dyn Fn(&crate::evaluate::SetMetrics) -> &[f64];
/// (title, x label, y label, series, log scale)
type Chart<'a> = (&'a str, &'a str, &'a str, &'a Pick, bool);

/// A headline value as printed: a dash where a set has none (NaN).
pub(super) fn cell(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        fmt(v)
    }
}

/// The evaluation report.
pub fn evaluation_html(e: &Evaluation) -> String {
    let mut h = String::new();
    let all: Vec<&ScoredSet> = e
        .sets
        .iter()
        .chain(std::iter::once(&e.noise_floor))
        .collect();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>scengen evaluation: {r}</title><style>{STYLE}</style></head><body>\
         <h1>Scenarios vs real windows: {r}</h1>\
         <p>Reference: {w} real windows of <b>{r}</b> ({split} split, test from {tf}) in <code>{file}</code>{left}: {d} distinct days, {no} non-overlapping windows of {win} days, {na} assets.</p>\
         <p class=\"note\">{note} The noise floor scores the earlier half of the real windows against the later half: a set within the noise floor is as close to the reference as real data of another period is.</p>",
        r = escape(&e.regime), w = e.reference_windows, split = e.split, tf = e.test_from, file = escape(&e.real_file),
        left = if e.without.is_empty() { String::new() } else { format!(", {} left out as they hold {}", e.left_out_windows, e.without.join(", ")) },
        d = e.reference_distinct_days, no = e.reference_non_overlapping_windows, win = e.window, na = e.assets.len(), note = e.p_values_note,
    );
    h.push_str(&sets_table(e.sets.iter().map(|s| {
        (
            s.label.as_str(),
            s.file.as_deref().unwrap_or_default(),
            &s.generator,
        )
    })));
    h.push_str("<h2>Summary</h2><table><tr><th>metric</th><th>real (reference)</th>");
    for s in &all {
        let _ = write!(h, "<th>{}</th>", escape(&s.label));
    }
    h.push_str("</tr>");
    for row in &e.headline {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td>",
            escape(row.label),
            row.reference.map(fmt).unwrap_or_default()
        );
        for (i, v) in row.values.iter().enumerate() {
            let class = if row.best == Some(i) {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(h, "<td{class}>{}</td>", cell(*v));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><p class=\"note\">Green: the best scenario set in the row (closest to the real value for levels, smallest for errors and test statistics).</p>");

    // Plots.
    h.push_str("<h2>Plots</h2><div class=\"plots\">");
    let reference_name = "real".to_string();
    let qq = |s: &ScoredSet| Series {
        name: s.label.clone(),
        points: e
            .reference
            .portfolio
            .quantiles_daily
            .iter()
            .zip(&s.metrics.portfolio.quantiles_daily)
            .map(|(x, y)| (*x, *y))
            .collect(),
    };
    let mut q_series = vec![Series {
        name: reference_name.clone(),
        points: e
            .reference
            .portfolio
            .quantiles_daily
            .iter()
            .map(|x| (*x, *x))
            .collect(),
    }];
    q_series.extend(all.iter().map(|s| qq(s)));
    h.push_str(&line_chart(
        "Q-Q: equal-weight daily return",
        "real quantile",
        "scenario quantile",
        &q_series,
        false,
        true,
    ));
    // Figures indexed 1, 2, ... (lags, eigenvalue ranks): the reference, then every set.
    let indexed = |pick: &Pick| -> Vec<Series> {
        let points = |v: &[f64]| {
            v.iter()
                .enumerate()
                .map(|(k, y)| ((k + 1) as f64, *y))
                .collect()
        };
        std::iter::once(Series {
            name: reference_name.clone(),
            points: points(pick(&e.reference)),
        })
        .chain(all.iter().map(|s| Series {
            name: s.label.clone(),
            points: points(pick(&s.metrics)),
        }))
        .collect()
    };
    let charts: [Chart; 4] = [
        (
            "ACF of |r|, equal weight",
            "lag (days)",
            "autocorrelation",
            &|m| &m.portfolio.acf_abs_returns,
            false,
        ),
        (
            "ACF of r, equal weight",
            "lag (days)",
            "autocorrelation",
            &|m| &m.portfolio.acf_returns,
            false,
        ),
        (
            "Leverage corr(r_t, |r_t+k|)",
            "k (days)",
            "correlation",
            &|m| &m.portfolio.leverage,
            false,
        ),
        (
            "Covariance eigenvalues",
            "rank",
            "eigenvalue",
            &|m| &m.cross_section.covariance_eigenvalues,
            true,
        ),
    ];
    for (title, x, y, pick, log_y) in charts {
        h.push_str(&line_chart(title, x, y, &indexed(pick), log_y, false));
    }
    h.push_str("</div><h3>Correlation matrices</h3><div class=\"plots\">");
    let n = e.assets.len();
    h.push_str(&heatmap("real", &e.reference.cross_section.correlation, n));
    for s in &all {
        h.push_str(&heatmap(&s.label, &s.metrics.cross_section.correlation, n));
    }
    h.push_str("</div>");

    // Per-asset tables.
    for s in &all {
        let _ = write!(h, "<h2>Per asset: {}</h2><table><tr><th>asset</th><th>KS D daily</th><th>KS p</th><th>CvM p daily</th><th>KS D horizon</th><th>CvM p horizon</th><th>vol</th><th>real vol</th><th>skew</th><th>ex. kurt</th><th>vol CV across paths</th><th>real vol CV</th><th>VaR99</th><th>real VaR99</th><th>CVaR99</th><th>ACF|r| 1</th><th>real ACF|r| 1</th></tr>", escape(&s.label));
        for (a, r) in s.metrics.per_asset.iter().zip(&e.reference.per_asset) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.asset), fmt(a.ks_daily.statistic), fmt(a.ks_daily.pvalue), fmt(a.cvm_daily.pvalue), fmt(a.ks_horizon.statistic), fmt(a.cvm_horizon.pvalue),
                fmt(a.vol_annual), fmt(r.vol_annual), fmt(a.skewness), fmt(a.excess_kurtosis), fmt(a.path_vol_dispersion), fmt(r.path_vol_dispersion), fmt(a.tails_daily.var99), fmt(r.tails_daily.var99),
                fmt(a.tails_daily.cvar99), fmt(a.acf_abs_returns[0]), fmt(r.acf_abs_returns[0]),
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(h, "<p class=\"note\">Quantile levels stored in metrics.json: {QUANTILE_LEVELS:?}.</p></body></html>");
    h
}

impl StageReport for Evaluation {
    const FILES: &'static [&'static str] = &["report.html", "metrics.json"];

    fn write(&self, out: &Path) -> Result<PathBuf> {
        let dir = AtomicDir::new(out)?;
        dir.write_text(
            "metrics.json",
            &serde_json::to_string_pretty(self).expect("metrics serialise"),
        )?;
        dir.write_text("report.html", &evaluation_html(self))?;
        dir.commit()
    }

    fn summary(&self) -> String {
        summary_text(self)
    }
}

/// A short terminal summary: the headline table as text.
pub fn summary_text(e: &Evaluation) -> String {
    let mut out = format!(
        "{} ({} split, {} reference windows",
        e.regime, e.split, e.reference_windows
    );
    if !e.without.is_empty() {
        out.push_str(&format!(
            "; {} left out, holding {}",
            e.left_out_windows,
            e.without.join(", ")
        ));
    }
    out.push_str(")\n");
    out.push_str(&format!("{:<52} {:>10}", "metric", "real"));
    for s in e.sets.iter().chain(std::iter::once(&e.noise_floor)) {
        let label: String = s.label.chars().take(12).collect();
        out.push_str(&format!(" {label:>12}"));
    }
    out.push('\n');
    for row in &e.headline {
        out.push_str(&format!(
            "{:<52} {:>10}",
            row.label,
            row.reference.map(fmt).unwrap_or_default()
        ));
        for (i, v) in row.values.iter().enumerate() {
            let mark = if row.best == Some(i) { "*" } else { " " };
            out.push_str(&format!(" {:>11}{mark}", cell(*v)));
        }
        out.push('\n');
    }
    out
}
