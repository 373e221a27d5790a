//! The windows file: rolling windows of daily log returns, one row per (window, day), each
//! window labelled with its regime. Every later stage reads it through [`WindowSet::read`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, StringArray, UInt16Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt16Type, UInt32Type};

use super::regime::{check_label, RegimeRule};
use crate::error::{Error, Result};
use crate::io::{self, date_column, f64_column, format_date, meta, read_parquet, AtomicFile};

/// One window's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowInfo {
    pub id: u32,
    pub start_date: i32,
    pub end_date: i32,
    pub regime: usize,
}

/// Where a window falls relative to the test period's start (`test_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Ends before the test date: usable for fitting.
    Train,
    /// Starts on or after the test date: held out.
    Test,
    /// Straddles the test date: used by neither side, so nothing leaks.
    Neither,
}

impl Split {
    /// The split of a window spanning `start..=end` for a test period starting on `test_from`.
    pub fn of(start: i32, end: i32, test_from: i32) -> Split {
        if end < test_from {
            Split::Train
        } else if start >= test_from {
            Split::Test
        } else {
            Split::Neither
        }
    }
}

/// Where `ingest` writes the windows file and every later stage reads it, unless told otherwise.
pub const DEFAULT_WINDOWS: &str = "data/windows.parquet";

/// First day of the held-out period unless told otherwise: a window is train if it ends before
/// it, test if it starts on or after it.
pub const DEFAULT_TEST_FROM: &str = "2016-01-01";

/// [`DEFAULT_TEST_FROM`] as a day number.
pub fn default_test_from() -> i32 {
    io::parse_date("test_from", DEFAULT_TEST_FROM).expect("a valid date")
}

/// Which windows a stage asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitChoice {
    Train,
    Test,
    All,
}

/// Regime-labelled windows in memory: `returns` holds `len() * window * assets.len()` values,
/// window-major, then day, then asset.
#[derive(Debug, Clone)]
pub struct WindowSet {
    pub assets: Vec<String>,
    pub rule: RegimeRule,
    pub window: usize,
    pub windows: Vec<WindowInfo>,
    pub dates: Vec<i32>,
    pub returns: Vec<f64>,
    pub metadata: BTreeMap<String, String>,
}

impl WindowSet {
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Values of one window (`window * assets` of them, day-major).
    pub fn window_values(&self, index: usize) -> &[f64] {
        let size = self.window * self.assets.len();
        &self.returns[index * size..(index + 1) * size]
    }

    /// The values of the windows `indices`, one after another (for statistics over paths).
    pub fn gather(&self, indices: &[usize]) -> Vec<f64> {
        indices
            .iter()
            .flat_map(|&w| self.window_values(w).iter().copied())
            .collect()
    }

    /// Indices of the windows of `regime` (all when `None`) in the chosen split.
    pub fn select(&self, regime: Option<usize>, split: SplitChoice, test_from: i32) -> Vec<usize> {
        self.windows
            .iter()
            .enumerate()
            .filter(|(_, w)| regime.is_none_or(|r| w.regime == r))
            .filter(|(_, w)| match split {
                SplitChoice::All => true,
                SplitChoice::Train => {
                    Split::of(w.start_date, w.end_date, test_from) == Split::Train
                }
                SplitChoice::Test => Split::of(w.start_date, w.end_date, test_from) == Split::Test,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Arrow schema of the windows file for `assets`.
    pub fn schema(assets: &[String]) -> SchemaRef {
        let mut fields = vec![
            Field::new("window", DataType::UInt32, false),
            Field::new("start_date", DataType::Date32, false),
            Field::new("date", DataType::Date32, false),
            Field::new("step", DataType::UInt16, false),
            Field::new("regime", DataType::Utf8, false),
        ];
        fields.extend(
            assets
                .iter()
                .map(|a| Field::new(a, DataType::Float64, false)),
        );
        Arc::new(Schema::new(fields))
    }

    /// Writes the windows file, streaming a few thousand windows per record batch.
    pub fn write(&self, out: &Path) -> Result<()> {
        let schema = Self::schema(&self.assets);
        let mut metadata = self.metadata.clone();
        metadata.insert(meta::WINDOW.into(), self.window.to_string());
        metadata.insert(
            meta::LABELS.into(),
            serde_json::to_string(&self.rule.labels).expect("labels serialise"),
        );
        let chunk = 2048;
        let batches = (0..self.len()).step_by(chunk).map(|from| {
            let to = (from + chunk).min(self.len());
            self.record_batch(schema.clone(), from..to)
        });
        io::write_batches(AtomicFile::new(out)?, schema.clone(), &metadata, batches)?;
        Ok(())
    }

    fn record_batch(
        &self,
        schema: SchemaRef,
        range: std::ops::Range<usize>,
    ) -> Result<arrow::array::RecordBatch> {
        let (l, n) = (self.window, self.assets.len());
        let rows = range.len() * l;
        let mut ids = Vec::with_capacity(rows);
        let mut starts = Vec::with_capacity(rows);
        let mut dates = Vec::with_capacity(rows);
        let mut steps = Vec::with_capacity(rows);
        let mut regimes = Vec::with_capacity(rows);
        for w in range.clone() {
            let info = &self.windows[w];
            for s in 0..l {
                ids.push(info.id);
                starts.push(info.start_date);
                dates.push(self.dates[w * l + s]);
                steps.push(s as u16);
                regimes.push(self.rule.labels[info.regime].as_str());
            }
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(ids)),
            Arc::new(Date32Array::from(starts)),
            Arc::new(Date32Array::from(dates)),
            Arc::new(UInt16Array::from(steps)),
            Arc::new(StringArray::from(regimes)),
        ];
        let block = &self.returns[range.start * l * n..range.end * l * n];
        for a in 0..n {
            let col: Vec<f64> = block.iter().skip(a).step_by(n).copied().collect();
            columns.push(Arc::new(Float64Array::from(col)));
        }
        io::batch(schema, columns)
    }

    /// Reads and checks a windows file written by `scengen ingest`.
    pub fn read(path: &Path) -> Result<WindowSet> {
        let table = read_parquet(path)?;
        let bad = |reason: String| Error::bad_file(path, reason);
        let window: usize = table
            .required_metadata(meta::WINDOW)?
            .parse()
            .map_err(|_| bad("metadata `scengen.window` is not a number".into()))?;
        let labels: Vec<String> = serde_json::from_str(table.required_metadata(meta::LABELS)?)
            .map_err(|e| bad(format!("metadata `scengen.labels`: {e}")))?;
        let thresholds: Vec<f64> = table
            .metadata
            .get(meta::THRESHOLDS)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if let Some((label, reason)) = labels
            .iter()
            .find_map(|l| check_label(l).err().map(|r| (l, r)))
        {
            return Err(bad(format!(
                "metadata `scengen.labels`: label `{label}` {reason}"
            )));
        }
        let rule = RegimeRule { thresholds, labels };
        let assets: Vec<String> = table
            .column_names()
            .into_iter()
            .filter(|c| !["window", "start_date", "date", "step", "regime"].contains(&c.as_str()))
            .collect();
        let ids = cast_u32(&table, "window")?;
        let steps = table.column("step")?;
        let steps = steps
            .as_primitive_opt::<UInt16Type>()
            .ok_or_else(|| bad("column `step` is not u16".into()))?;
        let starts = date_column(&table, "start_date")?;
        let dates = date_column(&table, "date")?;
        let regime_col = table.column("regime")?;
        let regime_col = regime_col
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("column `regime` is not a string".into()))?;
        let columns = assets
            .iter()
            .map(|a| f64_column(&table, a))
            .collect::<Result<Vec<_>>>()?;
        let rows = table.batch.num_rows();
        if window == 0 || rows % window != 0 {
            return Err(bad(format!(
                "{rows} rows is not a whole number of {window}-day windows"
            )));
        }
        let n = assets.len();
        let mut returns = Vec::with_capacity(rows * n);
        let mut windows = Vec::with_capacity(rows / window);
        for w in 0..rows / window {
            let first = w * window;
            for s in 0..window {
                let row = first + s;
                if ids[row] != ids[first] || steps.value(row) as usize != s {
                    return Err(bad(format!(
                        "row {row}: expected window {} step {s}, found window {} step {}",
                        ids[first],
                        ids[row],
                        steps.value(row)
                    )));
                }
                for col in &columns {
                    let v = col[row];
                    if !v.is_finite() {
                        return Err(bad(format!(
                            "window {} on {}: non-finite return {v}",
                            ids[row],
                            format_date(dates[row])
                        )));
                    }
                    returns.push(v);
                }
            }
            let label = regime_col.value(first);
            windows.push(WindowInfo {
                id: ids[first],
                start_date: starts[first],
                end_date: dates[first + window - 1],
                regime: rule.index_of(label).map_err(|_| {
                    bad(format!(
                        "regime `{label}` is not among the labels in its metadata"
                    ))
                })?,
            });
        }
        Ok(WindowSet {
            assets,
            rule,
            window,
            windows,
            dates,
            returns,
            metadata: table.metadata.clone(),
        })
    }
}

fn cast_u32(table: &crate::io::ParquetTable, name: &str) -> Result<Vec<u32>> {
    let col = table.column(name)?;
    let col = col
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| Error::bad_file(&table.path, format!("column `{name}` is not u32")))?;
    if col.null_count() > 0 {
        return Err(Error::bad_file(
            &table.path,
            format!("column `{name}` has nulls"),
        ));
    }
    Ok(col.values().to_vec())
}
