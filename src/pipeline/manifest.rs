//! The run folder's `manifest.json`, read and written here only: for each step of the last run
//! that finished, its key (a hash of its settings and of its inputs' contents) and every file it
//! wrote (hash, size, modification time), so the next run can tell what is still up to date.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::sha256_file;

/// The manifest's file name in the run folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The run log's file name in the run folder.
pub const LOG_FILE: &str = "log.jsonl";

/// Version of the manifest's layout; a manifest of another is refused rather than misread.
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The scengen version that wrote it (also part of every step's key).
    pub scengen: String,
    /// The config file the run read, as given.
    pub config: String,
    pub steps: Vec<StepRecord>,
}

/// One step of a finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    /// Hash of the step's settings and inputs: equal keys, equal outputs.
    pub key: String,
    /// Wall time of the run that produced the outputs.
    pub seconds: f64,
    pub files: Vec<FileRecord>,
}

/// One file a step wrote, relative to the run folder (`/`-separated).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRecord {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    /// Modification time in nanoseconds since 1970: with the size, a file that matches both is
    /// taken as unchanged without reading it (the check `make` and `ninja` rely on); one that
    /// differs in either is hashed again.
    pub modified_ns: i64,
}

impl Manifest {
    pub fn new(config: &Path, steps: Vec<StepRecord>) -> Self {
        Self {
            format: FORMAT,
            scengen: env!("CARGO_PKG_VERSION").to_string(),
            config: config.display().to_string(),
            steps,
        }
    }

    /// The manifest of the run folder `out`; `None` when there is none yet.
    pub fn read(out: &Path) -> Result<Option<Self>> {
        let path = out.join(MANIFEST_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| {
            Error::bad_file(
                &path,
                format!("is not a run manifest ({e}); give `out` a folder of its own"),
            )
        })?;
        if manifest.format != FORMAT {
            return Err(Error::bad_file(
                &path,
                format!(
                    "has manifest format {} and this scengen reads {FORMAT}",
                    manifest.format
                ),
            ));
        }
        Ok(Some(manifest))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the manifest serialises")
    }

    /// The record of step `name`.
    pub fn step(&self, name: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.name == name)
    }
}

impl FileRecord {
    /// Records `root/path` as it is now.
    pub fn of(root: &Path, path: &str) -> Result<Self> {
        let full = root.join(path);
        let meta = fs::metadata(&full).map_err(|e| Error::io(&full, e))?;
        Ok(Self {
            path: path.to_string(),
            sha256: sha256_file(&full)?,
            bytes: meta.len(),
            modified_ns: modified_ns(&meta),
        })
    }

    /// Whether `root/path` still holds what was recorded: same size and time, or else the same
    /// hash. A missing file does not.
    pub fn still_matches(&self, root: &Path) -> Result<bool> {
        let full = root.join(&self.path);
        let Ok(meta) = fs::metadata(&full) else {
            return Ok(false);
        };
        if meta.len() != self.bytes {
            return Ok(false);
        }
        if modified_ns(&meta) == self.modified_ns {
            return Ok(true);
        }
        Ok(sha256_file(&full)? == self.sha256)
    }
}

fn modified_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}
