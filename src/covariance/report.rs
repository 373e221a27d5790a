//! `scengen covariance`: every estimator for every regime of the given scenario files, written as
//! Parquet matrices, JSON and an HTML page of eigenvalue spectra.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde::Serialize;

use super::{condition_number, ledoit_wolf, marchenko_pastur_clip, shrink_to_correlation};
use crate::data::{DailyPanel, SplitChoice, WindowSet};
use crate::error::{Error, Result};
use crate::io::{self, AtomicDir, AtomicFile};
use crate::report::{escape, fmt, line_chart, Series, STYLE};
use crate::sample::for_each_diffusion_set;
use crate::stats::{
    column_variances, correlation_from_covariance, covariance_matrix, symmetric_eigen,
};

/// Settings of `scengen covariance`.
#[derive(Debug, Clone)]
pub struct CovarianceConfig {
    pub real: PathBuf,
    /// Scenario files, or folders whose `*.parquet` files are diffusion scenario files.
    pub scenarios: Vec<PathBuf>,
    pub test_from: i32,
    pub out: PathBuf,
}

/// One estimator's matrix and its spectrum.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub method: String,
    pub regime: String,
    pub condition_number: f64,
    pub eigenvalues_descending: Vec<f64>,
    #[serde(skip)]
    pub matrix: Vec<f64>,
}

/// Σ = D^½ C D^½: a correlation matrix with the given variances.
pub fn with_variances(corr: &[f64], variances: &[f64]) -> Vec<f64> {
    let n = variances.len();
    (0..n * n)
        .map(|k| corr[k] * (variances[k / n] * variances[k % n]).sqrt())
        .collect()
}

/// The correlation of a synthetic panel, raw and Marchenko–Pastur clipped: computed once per
/// scenario set, then combined with whichever real variances an estimate needs.
#[derive(Debug, Clone)]
pub struct SyntheticCorrelation {
    pub raw: Vec<f64>,
    pub clipped: Vec<f64>,
}

impl SyntheticCorrelation {
    /// From synthetic daily cross-sections (row-major, `n` columns).
    pub fn from_rows(rows: &[f64], n: usize) -> Self {
        let raw = correlation_from_covariance(&covariance_matrix(rows, n, 1), n);
        let clipped = marchenko_pastur_clip(&raw, n, rows.len() / n).cleaned_correlation;
        Self { raw, clipped }
    }
}

/// The estimator names, in the order [`estimate_matrices`] returns them.
pub const METHODS: [&str; 6] = [
    "sample",
    "ledoit-wolf",
    "marchenko-pastur",
    "diffusion",
    "diffusion+mp",
    "shrunk-to-diffusion",
];

/// Every estimator's N × N covariance, in the order of [`METHODS`]: the classical ones from the
/// real daily returns `real` (row-major, `n` columns); the diffusion ones from the synthetic
/// correlation with `diffusion_variances` (the recent real variances) on the diagonal; the last
/// shrinks the real sample covariance towards the synthetic correlation (a target rather than a
/// replacement), by the Ledoit–Wolf intensity.
pub fn estimate_matrices(
    real: &[f64],
    n: usize,
    synthetic: &SyntheticCorrelation,
    diffusion_variances: &[f64],
) -> Vec<Vec<f64>> {
    let sample = covariance_matrix(real, n, 1);
    let variances: Vec<f64> = (0..n).map(|i| sample[i * n + i]).collect();
    let mp = marchenko_pastur_clip(&correlation_from_covariance(&sample, n), n, real.len() / n);
    let mp = with_variances(&mp.cleaned_correlation, &variances);
    let lw = ledoit_wolf(real, n).1;
    vec![
        sample,
        lw,
        mp,
        with_variances(&synthetic.raw, diffusion_variances),
        with_variances(&synthetic.clipped, diffusion_variances),
        shrink_to_correlation(real, n, &synthetic.raw).1,
    ]
}

/// The six estimators for one regime: the real train days of the regime (whose variances also
/// scale the synthetic correlation) and a synthetic panel.
pub fn estimates(real_days: &DailyPanel, synthetic: &[f64], regime: &str) -> Vec<Estimate> {
    let n = real_days.assets;
    let variances = column_variances(&real_days.values, n);
    let synthetic = SyntheticCorrelation::from_rows(synthetic, n);
    estimate_matrices(&real_days.values, n, &synthetic, &variances)
        .into_iter()
        .zip(METHODS)
        .map(|(matrix, method)| {
            let mut eig = symmetric_eigen(&matrix, n).0;
            eig.reverse();
            Estimate {
                method: method.into(),
                regime: regime.into(),
                condition_number: condition_number(&matrix, n),
                eigenvalues_descending: eig,
                matrix,
            }
        })
        .collect()
}

/// Runs every estimator for the regime of each diffusion scenario file and writes
/// `matrices.parquet`, `covariance.json` and `report.html` into `out`.
pub fn covariance_report(config: &CovarianceConfig) -> Result<Vec<Estimate>> {
    let set = WindowSet::read(&config.real)?;
    let n = set.assets.len();
    let mut all = Vec::new();
    for_each_diffusion_set(&config.scenarios, |s| {
        if s.assets != set.assets {
            return Err(Error::bad_file(
                &s.path,
                format!(
                    "assets {:?} differ from the real windows' {:?}",
                    s.assets, set.assets
                ),
            ));
        }
        let regime = set.rule.index_of(&s.regime)?;
        let days =
            DailyPanel::from_windows(&set, Some(regime), SplitChoice::Train, config.test_from);
        if days.len() <= n {
            return Err(Error::option(
                "--test-from",
                crate::io::format_date(config.test_from),
                format!(
                    "regime `{}` has {} train days for {n} assets",
                    s.regime,
                    days.len()
                ),
            ));
        }
        all.extend(estimates(&days, &s.values, &s.regime));
        Ok(())
    })?;
    let dir = AtomicDir::new(&config.out)?;
    write_matrices(&dir.path().join("matrices.parquet"), &all, &set.assets)?;
    let json = serde_json::to_string_pretty(&all).expect("estimates serialise");
    io::write_text(&dir.path().join("covariance.json"), &json)?;
    io::write_text(&dir.path().join("report.html"), &html(&all))?;
    dir.commit()?;
    Ok(all)
}

/// One row per (regime, method, asset), one column per asset.
fn write_matrices(path: &Path, all: &[Estimate], assets: &[String]) -> Result<()> {
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
    io::write_batches(
        AtomicFile::new(path)?,
        schema,
        &BTreeMap::new(),
        [Ok(batch)],
    )?;
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
