//! File plumbing shared by every stage: all-or-nothing, locked output files, Parquet reading and writing
//! with key-value metadata, dates, and content hashes.

mod atomic;
mod dates;
mod lock;
pub mod meta;
mod parquet;

pub use atomic::{
    check_folder_target, clear_killed_runs, write_text_atomic, AtomicDir, AtomicFile,
};
pub use dates::{decimal_year, format_date, parse_date, year_month};
pub use lock::OutputLock;
pub(crate) use parquet::batch;
pub use parquet::{
    date_column, f64_column, hex_digest, read_parquet, sha256_file, write_batches, ParquetSink,
    ParquetTable,
};
