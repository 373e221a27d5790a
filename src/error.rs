//! The project's error type: every user-facing failure names the file, column, date, option or
//! value at fault, so that an unattended job's log says what to fix.

use std::path::PathBuf;

/// A failure the user can act on. Library functions return it; the binary prints it and exits
/// non-zero.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable Parquet file: {reason}")]
    NotParquet { path: PathBuf, reason: String },
    #[error("{path}: no column `{column}` (columns: {available})")]
    MissingColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}: column `{column}` has type {dtype}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        dtype: String,
        expected: String,
    },
    #[error("{path}: column `{column}` on {date}: {reason} (value {value})")]
    BadValue {
        path: PathBuf,
        column: String,
        date: String,
        value: f64,
        reason: String,
    },
    #[error("{path}: column `{column}` has a missing value on {date}")]
    MissingValue {
        path: PathBuf,
        column: String,
        date: String,
    },
    #[error("{path}: dates are not increasing: {date} follows {previous}")]
    UnsortedDates {
        path: PathBuf,
        date: String,
        previous: String,
    },
    #[error("{path}: date {date} appears more than once")]
    DuplicateDate { path: PathBuf, date: String },
    #[error("{path}: {rows} usable rows, fewer than the {needed} that one window needs")]
    TooFewRows {
        path: PathBuf,
        rows: usize,
        needed: usize,
    },
    #[error("{path}: signal column `{column}` shares no date with the panel")]
    SignalNoOverlap { path: PathBuf, column: String },
    #[error("option {option}: invalid value `{value}`: {reason}")]
    InvalidOption {
        option: String,
        value: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("unknown regime `{regime}` (known: {known})")]
    UnknownRegime { regime: String, known: String },
    #[error("model directory {path}: {reason}")]
    BadModel { path: PathBuf, reason: String },
    #[error("training stopped: {0}")]
    Training(String),
    #[error("generation stopped: {0}")]
    Generation(String),
    #[error("fitting {model} failed: {reason}")]
    Fit { model: &'static str, reason: String },
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// Result with the project's error type.
pub type Result<T> = std::result::Result<T, Error>;

/// Exit status of a run that failed on its input: an option, a file, a column, a date, a
/// value, a model folder, an output held by another run. The user's to fix.
pub const EXIT_BAD_INPUT: i32 = 1;
/// Exit status of a command line that does not parse (clap's).
pub const EXIT_USAGE: i32 = 2;
/// Exit status of a run that failed for a reason outside its inputs: a write the system
/// refused midway (a full disk), a computation that diverged or failed. Worth a retry or an
/// operator's look, not an edit of the inputs.
pub const EXIT_FAILURE: i32 = 3;

impl Error {
    /// The exit status this failure ends the binary with: [`EXIT_BAD_INPUT`] or
    /// [`EXIT_FAILURE`].
    pub fn exit_code(&self) -> i32 {
        use std::io::ErrorKind;
        match self {
            Error::Io { source, .. } => match source.kind() {
                ErrorKind::NotFound
                | ErrorKind::PermissionDenied
                | ErrorKind::AlreadyExists
                | ErrorKind::InvalidInput
                | ErrorKind::InvalidData
                | ErrorKind::IsADirectory
                | ErrorKind::NotADirectory
                | ErrorKind::ReadOnlyFilesystem
                | ErrorKind::UnexpectedEof => EXIT_BAD_INPUT,
                _ => EXIT_FAILURE,
            },
            Error::Training(_) | Error::Generation(_) | Error::Fit { .. } | Error::Tensor(_) => {
                EXIT_FAILURE
            }
            _ => EXIT_BAD_INPUT,
        }
    }

    /// Shorthand for an invalid command-line or configuration value.
    pub fn option(option: &str, value: impl ToString, reason: impl ToString) -> Self {
        Error::InvalidOption {
            option: option.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for a file whose content is unusable.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl ToString) -> Self {
        Error::BadFile {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// A tensor computation's failure reported as the failure of the stage it happened in
    /// (`stage`: [`Error::Training`] or [`Error::Generation`]); any other error unchanged.
    pub(crate) fn in_stage(self, stage: fn(String) -> Error) -> Self {
        match self {
            Error::Tensor(e) => stage(e.to_string()),
            other => other,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The positions `(first, second)` of the first item equal to an earlier one: the check behind
/// every error that names a value given twice (an asset column, a regime or report label).
pub(crate) fn first_repeat<T: PartialEq>(items: &[T]) -> Option<(usize, usize)> {
    (0..items.len()).find_map(|i| {
        items[..i]
            .iter()
            .position(|earlier| *earlier == items[i])
            .map(|first| (first, i))
    })
}
