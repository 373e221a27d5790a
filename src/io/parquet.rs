//! Parquet in and out with the `arrow` and `parquet` crates: whole-table reads of modest panels,
//! streamed writes of large outputs, key-value metadata, and column extraction with errors that
//! name the file and column.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Float64Type, Int32Type, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use super::AtomicFile;
use crate::error::{Error, Result};

/// A Parquet file read whole: one record batch and the file's key-value metadata.
pub struct ParquetTable {
    pub path: PathBuf,
    pub batch: RecordBatch,
    pub metadata: BTreeMap<String, String>,
}

impl ParquetTable {
    /// The column called `name`, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<&ArrayRef> {
        self.batch
            .column_by_name(name)
            .ok_or_else(|| Error::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                available: self.column_names().join(", "),
            })
    }

    /// Column names in file order.
    pub fn column_names(&self) -> Vec<String> {
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// A metadata value that must be present.
    pub fn required_metadata(&self, key: &str) -> Result<&str> {
        self.metadata
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::bad_file(&self.path, format!("metadata key `{key}` missing")))
    }
}

/// Reads every row group of a Parquet file.
pub fn read_parquet(path: impl AsRef<Path>) -> Result<ParquetTable> {
    let path = path.as_ref().to_path_buf();
    let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
    let not_parquet = |e: &dyn std::fmt::Display| Error::NotParquet {
        path: path.clone(),
        reason: e.to_string(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| not_parquet(&e))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let schema = builder.schema().clone();
    let reader = builder.build().map_err(|e| not_parquet(&e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| not_parquet(&e))?;
    let batch = concat_batches(&schema, &batches).map_err(|e| not_parquet(&e))?;
    Ok(ParquetTable {
        path,
        batch,
        metadata,
    })
}

/// Dates of a `date32`, `date64` or timestamp column as days since 1970-01-01.
pub fn date_column(table: &ParquetTable, name: &str) -> Result<Vec<i32>> {
    let array = table.column(name)?;
    let wrong_type = |detail: String| Error::ColumnType {
        path: table.path.clone(),
        column: name.to_string(),
        dtype: format!("{}{detail}", array.data_type()),
        expected: "a date (date32, date64 or timestamp)".into(),
    };
    let days = match array.data_type() {
        DataType::Date32 => array.clone(),
        // A timestamp with a time zone is dated where it was recorded: 1990-01-02 00:00 in
        // Tokyo is 1990-01-01 in UTC, and dating it there would shift every price a day
        // against a signal written as plain dates. Naive timestamps keep their wall-clock date.
        DataType::Date64 | DataType::Timestamp(_, _) => {
            cast(array, &DataType::Date32).map_err(|e| wrong_type(format!(" ({e})")))?
        }
        _ => return Err(wrong_type(String::new())),
    };
    let days = cast(&days, &DataType::Int32).map_err(|_| wrong_type(String::new()))?;
    let days = days.as_primitive::<Int32Type>();
    if days.null_count() > 0 {
        let row = (0..days.len()).find(|&i| days.is_null(i)).unwrap_or(0);
        return Err(Error::bad_file(
            &table.path,
            format!("date column `{name}` is empty in row {row}"),
        ));
    }
    let range = super::dates::DAY_RANGE;
    if let Some(row) = days.values().iter().position(|d| !range.contains(d)) {
        return Err(Error::bad_file(
            &table.path,
            format!(
                "date column `{name}` holds day {} (days since 1970-01-01) in row {row}, \
                 outside the years 1000 to 9999",
                days.value(row)
            ),
        ));
    }
    Ok(days.values().to_vec())
}

/// A numeric column as `f64`, nulls as NaN; any other type is an error naming the column.
pub fn f64_column(table: &ParquetTable, name: &str) -> Result<Vec<f64>> {
    let array = table.column(name)?;
    if !array.data_type().is_numeric() {
        return Err(Error::ColumnType {
            path: table.path.clone(),
            column: name.to_string(),
            dtype: array.data_type().to_string(),
            expected: "a number".into(),
        });
    }
    let values = cast(array, &DataType::Float64).map_err(|e| Error::ColumnType {
        path: table.path.clone(),
        column: name.to_string(),
        dtype: format!("{} ({e})", array.data_type()),
        expected: "a number".into(),
    })?;
    let values = values.as_primitive::<Float64Type>();
    Ok((0..values.len())
        .map(|i| {
            if values.is_null(i) {
                f64::NAN
            } else {
                values.value(i)
            }
        })
        .collect())
}

/// A Parquet file being written batch by batch (Snappy-compressed, with key-value metadata)
/// under a temporary name; [`ParquetSink::finish`] moves it into place, and dropping it
/// unfinished leaves nothing behind.
pub struct ParquetSink {
    writer: ArrowWriter<File>,
    out: AtomicFile,
}

impl ParquetSink {
    pub fn create(
        out: AtomicFile,
        schema: SchemaRef,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let file = out.create()?;
        let kv = metadata
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_key_value_metadata(Some(kv))
            .set_created_by(format!("scengen {}", env!("CARGO_PKG_VERSION")))
            // Row groups of at most 128k rows: the writer holds one row group in memory, so
            // memory stays flat however many paths are streamed.
            .set_max_row_group_row_count(Some(1 << 17))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|e| Error::bad_file(out.reported_path(), e))?;
        Ok(Self { writer, out })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .map_err(|e| Error::bad_file(self.out.reported_path(), e))
    }

    pub fn finish(self) -> Result<PathBuf> {
        let Self { writer, out } = self;
        writer
            .close()
            .map_err(|e| Error::bad_file(out.reported_path(), e))?;
        out.commit()
    }
}

/// Streams record batches from an iterator into `out`, so that large outputs never sit in
/// memory whole; an error from any batch leaves no file behind.
pub fn write_batches<I>(
    out: AtomicFile,
    schema: SchemaRef,
    metadata: &BTreeMap<String, String>,
    batches: I,
) -> Result<PathBuf>
where
    I: IntoIterator<Item = Result<RecordBatch>>,
{
    let mut sink = ParquetSink::create(out, schema, metadata)?;
    for batch in batches {
        sink.write(&batch?)?;
    }
    sink.finish()
}

/// Hex SHA-256 of a file's bytes, recorded in outputs so a result can be traced to its inputs.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex_digest(&hasher.finalize()))
}

/// A digest as lower-case hexadecimal, the form every stored hash takes.
pub fn hex_digest(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A batch from columns, for writers that build their arrays by hand.
pub(crate) fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::bad_file("<output>", format!("inconsistent columns: {e}")))
}
