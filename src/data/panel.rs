//! A Parquet panel: one date column and one numeric column per asset, validated row by row.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array};
use arrow::datatypes::{DataType, Field, Schema};

use crate::error::{first_repeat, Error, Result};
use crate::io::{
    batch, date_column, f64_column, format_date, read_parquet, write_batches, AtomicFile,
};

/// What the asset columns hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    Prices,
    /// Daily log returns.
    LogReturns,
    /// Daily simple returns, turned into log returns with ln(1 + r).
    SimpleReturns,
}

/// How rows with a missing (null, NaN, inf) or impossible value are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Stop with the first bad date and column.
    Error,
    /// Drop every row that has a bad value in any selected column.
    Drop,
    /// Carry the last good value forward; leading bad rows are dropped.
    Ffill,
}

/// The date column of a panel unless told otherwise.
pub const DEFAULT_DATE_COLUMN: &str = "date";

/// Dates and asset columns of a panel, each column as long as `dates`.
#[derive(Debug, Clone)]
pub struct Panel {
    pub path: PathBuf,
    pub dates: Vec<i32>,
    pub assets: Vec<String>,
    pub columns: Vec<Vec<f64>>,
}

impl Panel {
    /// Reads `date_col` and the chosen `assets` (all other columns when `None`) from `path`;
    /// checks that dates strictly increase.
    pub fn read(path: &Path, date_col: &str, assets: Option<&[String]>) -> Result<Panel> {
        let table = read_parquet(path)?;
        let dates = date_column(&table, date_col)?;
        let assets: Vec<String> = match assets {
            Some(list) => list.to_vec(),
            None => table
                .column_names()
                .into_iter()
                .filter(|c| c != date_col)
                .collect(),
        };
        if assets.is_empty() {
            return Err(Error::bad_file(path, "no asset columns besides the date"));
        }
        // Parquet allows two columns of one name; an asset twice would make every covariance
        // singular downstream.
        if let Some((first, _)) = first_repeat(&assets) {
            let name = &assets[first];
            return Err(Error::bad_file(
                path,
                format!("column `{name}` is used twice"),
            ));
        }
        let columns = assets
            .iter()
            .map(|a| f64_column(&table, a))
            .collect::<Result<Vec<_>>>()?;
        check_dates(path, &dates)?;
        Ok(Panel {
            path: path.to_path_buf(),
            dates,
            assets,
            columns,
        })
    }

    /// Number of rows.
    /// Writes the panel as Parquet (a `date` column of dates and one float column per asset)
    /// with `metadata`, all or nothing; [`Panel::read`] reads it back.
    pub fn write(&self, out: &Path, metadata: &BTreeMap<String, String>) -> Result<PathBuf> {
        let mut fields = vec![Field::new(DEFAULT_DATE_COLUMN, DataType::Date32, false)];
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(self.dates.clone()))];
        for (name, column) in self.assets.iter().zip(&self.columns) {
            fields.push(Field::new(name, DataType::Float64, false));
            arrays.push(Arc::new(Float64Array::from(column.clone())));
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = batch(schema.clone(), arrays);
        write_batches(AtomicFile::new(out)?, schema, metadata, [batch])
    }

    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Applies the missing-value rule: a value is bad when it is not finite, or (for prices) not
    /// positive, or (for simple returns) at or below -100%.
    pub fn clean(mut self, kind: ValueKind, on_missing: OnMissing) -> Result<Panel> {
        let bad_reason = |v: f64| -> Option<&'static str> {
            if v.is_nan() {
                Some("missing value")
            } else if !v.is_finite() {
                Some("value is not finite")
            } else if kind == ValueKind::Prices && v <= 0.0 {
                Some("price is not positive")
            } else if kind == ValueKind::SimpleReturns && v <= -1.0 {
                Some("simple return at or below -100%")
            } else {
                None
            }
        };
        match on_missing {
            OnMissing::Error => {
                for row in 0..self.len() {
                    for (a, col) in self.columns.iter().enumerate() {
                        if let Some(reason) = bad_reason(col[row]) {
                            return Err(if col[row].is_nan() {
                                Error::MissingValue {
                                    path: self.path.clone(),
                                    column: self.assets[a].clone(),
                                    date: format_date(self.dates[row]),
                                }
                            } else {
                                Error::BadValue {
                                    path: self.path.clone(),
                                    column: self.assets[a].clone(),
                                    date: format_date(self.dates[row]),
                                    value: col[row],
                                    reason: reason.into(),
                                }
                            });
                        }
                    }
                }
                Ok(self)
            }
            OnMissing::Drop => {
                let keep: Vec<bool> = (0..self.len())
                    .map(|r| self.columns.iter().all(|c| bad_reason(c[r]).is_none()))
                    .collect();
                self.retain_rows(&keep);
                Ok(self)
            }
            OnMissing::Ffill => {
                let mut first_complete = 0;
                for col in self.columns.iter_mut() {
                    let mut last: Option<f64> = None;
                    for (r, v) in col.iter_mut().enumerate() {
                        if bad_reason(*v).is_none() {
                            last = Some(*v);
                        } else if let Some(prev) = last {
                            // A filled price repeats (a zero return); a filled return is zero.
                            *v = if kind == ValueKind::Prices { prev } else { 0.0 };
                        } else {
                            first_complete = first_complete.max(r + 1);
                        }
                    }
                }
                let keep: Vec<bool> = (0..self.len()).map(|r| r >= first_complete).collect();
                self.retain_rows(&keep);
                Ok(self)
            }
        }
    }

    fn retain_rows(&mut self, keep: &[bool]) {
        let filter = |v: &Vec<f64>| -> Vec<f64> {
            v.iter()
                .zip(keep)
                .filter(|(_, k)| **k)
                .map(|(x, _)| *x)
                .collect()
        };
        self.columns = self.columns.iter().map(filter).collect();
        self.dates = self
            .dates
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(d, _)| *d)
            .collect();
    }
}

fn check_dates(path: &Path, dates: &[i32]) -> Result<()> {
    for pair in dates.windows(2) {
        if pair[1] == pair[0] {
            return Err(Error::DuplicateDate {
                path: path.to_path_buf(),
                date: format_date(pair[1]),
            });
        }
        if pair[1] < pair[0] {
            return Err(Error::UnsortedDates {
                path: path.to_path_buf(),
                date: format_date(pair[1]),
                previous: format_date(pair[0]),
            });
        }
    }
    Ok(())
}
