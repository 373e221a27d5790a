//! `covariance`'s files: `matrices.parquet` (one row per regime, method and asset),
//! `covariance.json` (condition numbers and spectra) and `report.html` (eigenvalue spectra).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};

use super::{CovarianceReport, Estimate};
use crate::error::Result;
use crate::io::{self, AtomicDir, AtomicFile};
use crate::report::{escape, fmt, line_chart, Series, StageReport, STYLE};

impl StageReport for CovarianceReport {
    const FILES: &'static [&'static str] = &["matrices.parquet", "covariance.json", "report.html"];

    fn write(&self, out: &Path) -> Result<PathBuf> {
        let dir = AtomicDir::new(out)?;
        write_matrices(dir.file("matrices.parquet")?, &self.estimates, &self.assets)?;
        let json = serde_json::to_string_pretty(&self.estimates).expect("estimates serialise");
        dir.write_text("covariance.json", &json)?;
        dir.write_text("report.html", &html(&self.estimates))?;
        dir.commit()
    }

    fn summary(&self) -> String {
        self.estimates
            .iter()
            .map(|e| {
                format!(
                    "{:<10} {:<19} condition number {:>10.2}\n",
                    e.regime, e.method, e.condition_number
                )
            })
            .collect()
    }
}

/// One row per (regime, method, asset), one column per asset.
fn write_matrices(out: AtomicFile, all: &[Estimate], assets: &[String]) -> Result<()> {
    let n = assets.len();
    let mut fields = vec![
        Field::new("regime", DataType::Utf8, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("asset", DataType::Utf8, false),
    ];
    fields.extend(
        assets
            .iter()
            .map(|a| Field::new(a, DataType::Float64, false)),
    );
    let schema = Arc::new(Schema::new(fields));
    let rows = all.len() * n;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            all.iter()
                .flat_map(|e| std::iter::repeat_n(e.regime.as_str(), n)),
        )),
        Arc::new(StringArray::from_iter_values(
            all.iter()
                .flat_map(|e| std::iter::repeat_n(e.method.as_str(), n)),
        )),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|r| assets[r % n].as_str()),
        )),
    ];
    for j in 0..n {
        columns.push(Arc::new(Float64Array::from_iter_values(
            all.iter()
                .flat_map(|e| (0..n).map(move |i| e.matrix[i * n + j])),
        )));
    }
    let batch = io::batch(schema.clone(), columns)?;
    io::write_batches(out, schema, &BTreeMap::new(), [Ok(batch)])?;
    Ok(())
}

fn html(all: &[Estimate]) -> String {
    let mut h = format!("<!doctype html><html><head><meta charset=\"utf-8\"><title>scengen covariance</title><style>{STYLE}</style></head><body><h1>Covariance estimators</h1><table><tr><th>regime</th><th>method</th><th>condition number</th><th>largest eigenvalue</th><th>smallest eigenvalue</th></tr>");
    for e in all {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&e.regime),
            escape(&e.method),
            fmt(e.condition_number),
            fmt(e.eigenvalues_descending[0]),
            fmt(*e.eigenvalues_descending.last().unwrap_or(&f64::NAN))
        ));
    }
    h.push_str("</table><div class=\"plots\">");
    let mut regimes: Vec<&str> = all.iter().map(|e| e.regime.as_str()).collect();
    regimes.dedup();
    for regime in regimes {
        let series: Vec<Series> = all
            .iter()
            .filter(|e| e.regime == regime)
            .map(|e| Series {
                name: e.method.clone(),
                points: e
                    .eigenvalues_descending
                    .iter()
                    .enumerate()
                    .map(|(k, v)| ((k + 1) as f64, *v))
                    .collect(),
            })
            .collect();
        h.push_str(&line_chart(
            &format!("Eigenvalues: {regime}"),
            "rank",
            "eigenvalue",
            &series,
            true,
            false,
        ));
    }
    h.push_str("</div></body></html>");
    h
}
