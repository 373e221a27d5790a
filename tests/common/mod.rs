//! Helpers shared by the integration tests: small Parquet panels written on the fly.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

/// The repository root, where the embedded data lives.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn embedded_prices() -> PathBuf {
    root().join("data/sp500_20_prices.parquet")
}

pub fn embedded_index() -> PathBuf {
    root().join("data/sp500_index.parquet")
}

/// A column of a test panel.
pub enum Col {
    F64(&'static str, Vec<f64>),
    Str(&'static str, Vec<&'static str>),
}

/// Writes a panel with a `date` column of day numbers and the given columns.
pub fn write_panel(path: &Path, dates: &[i32], cols: Vec<Col>) {
    let mut fields = vec![Field::new("date", DataType::Date32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(dates.to_vec()))];
    for c in cols {
        match c {
            Col::F64(name, v) => {
                fields.push(Field::new(name, DataType::Float64, true));
                arrays.push(Arc::new(Float64Array::from(v)));
            }
            Col::Str(name, v) => {
                fields.push(Field::new(name, DataType::Utf8, true));
                arrays.push(Arc::new(StringArray::from(v)));
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Consecutive day numbers starting at 2000-01-03 (10959), weekends included for simplicity.
pub fn days(n: usize) -> Vec<i32> {
    (0..n as i32).map(|i| 10959 + i).collect()
}

/// A positive random-walk price path of length n.
pub fn prices(n: usize, seed: u64) -> Vec<f64> {
    let mut p = 100.0;
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            p *= (0.04 * u).exp();
            p
        })
        .collect()
}

/// Files in `dir`, hidden temporaries included, for the "nothing left behind" checks.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}
