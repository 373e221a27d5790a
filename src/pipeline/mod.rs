//! `scengen run`: a whole nightly run as an ordered list of steps, each a stage of the pipeline
//! with its settings, the files it reads and the outputs it writes inside one run folder.
//!
//! - Up to date: a step's key hashes the scengen version, its settings and the content of every
//!   input (the user's files, and the outputs of earlier steps as they are now). A step whose
//!   key and outputs match the last finished run's manifest is not run again; a re-run with
//!   nothing changed writes nothing at all.
//! - All or nothing: the steps that do run write into a hidden copy of the run folder, which
//!   holds hard links to the outputs that were up to date; the manifest goes in last and the
//!   copy takes the run folder's place in one rename. A failed or killed run leaves the previous
//!   run's folder as it was.
//! - One writer: the run folder's lock is held from the start, so a second run on the same
//!   folder fails at once naming the first one's process.
//!
//! What the steps are, and how a config file becomes them, is the command line's business
//! (`src/cli/run.rs`); this module only decides what runs and keeps the folder whole.

mod manifest;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use manifest::{FileRecord, Manifest, StepRecord, LOG_FILE, MANIFEST_FILE};

use crate::error::{Error, Result};
use crate::io::{
    check_folder_target, clear_killed_runs, hex_digest, sha256_file, AtomicDir, OutputLock,
};

/// What a step reads.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file or folder of the user's, hashed by content.
    File(PathBuf),
    /// An output of an earlier step: a path in the run folder, or a folder of outputs.
    Output(String),
}

/// The work of a step. It runs with the working folder set to the run folder's hidden copy,
/// so it writes its outputs at their paths relative to the run folder, and what it records
/// of them (a report naming the windows file it read) stays true once the copy is in place:
/// the user's files must reach it as absolute paths.
pub type Action<'a> = Box<dyn FnOnce() -> Result<()> + 'a>;

/// One step of a run.
pub struct Step<'a> {
    /// Unique in the run, e.g. `generate diffusion high-vix`.
    pub name: String,
    /// Everything that decides its outputs besides the inputs' contents, as text.
    pub settings: String,
    pub inputs: Vec<Input>,
    /// What it writes: paths in the run folder (`/`-separated), files or folders.
    pub outputs: Vec<String>,
    pub action: Action<'a>,
}

/// A line of the run's log (`log.jsonl`), one per step and one for the run.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    pub step: String,
    /// `ran`, `up to date` or `failed`.
    pub status: &'static str,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub out: PathBuf,
    pub log: Vec<LogLine>,
    pub ran: usize,
    pub up_to_date: usize,
}

/// Runs `steps` in order into the run folder `out`, skipping the up-to-date ones, and calls
/// `on_line` as each step is done. `config` is recorded in the manifest.
pub fn execute(
    out: &Path,
    config: &Path,
    steps: Vec<Step<'_>>,
    on_line: &mut dyn FnMut(&LogLine),
) -> Result<RunSummary> {
    let started = Instant::now();
    let _writing = OutputLock::acquire(out)?;
    clear_killed_runs(out);
    let previous = Manifest::read(out)?;
    let retired = previous.as_ref().map(top_level_names).unwrap_or_default();
    check_names_unique(&steps)?;
    let mut planned: Vec<String> = steps
        .iter()
        .flat_map(|s| s.outputs.iter().map(|o| top_level(o)))
        .chain(retired.iter().cloned())
        .collect();
    planned.extend([MANIFEST_FILE.to_string(), LOG_FILE.to_string()]);
    check_folder_target(out, &planned)?;

    let mut run = Run {
        out,
        staging: None,
        linked_later: Vec::new(),
        records: Vec::new(),
        hashes: HashMap::new(),
        log: Vec::new(),
    };
    for step in steps {
        let (name, step_started) = (step.name.clone(), Instant::now());
        match run.step(step, previous.as_ref()) {
            Ok(line) => {
                on_line(&line);
                run.log.push(line);
            }
            Err(error) => {
                // Logged on its way out; the error itself is unchanged, so the exit status
                // still tells bad input from an internal failure.
                on_line(&LogLine {
                    step: name,
                    status: "failed",
                    seconds: step_started.elapsed().as_secs_f64(),
                    error: Some(error.to_string()),
                });
                return Err(error);
            }
        }
    }
    let ran = run.log.iter().filter(|l| l.status == "ran").count();
    let up_to_date = run.log.len() - ran;
    let total = LogLine {
        step: "run".to_string(),
        status: if ran == 0 { "up to date" } else { "ran" },
        seconds: started.elapsed().as_secs_f64(),
        error: None,
    };
    on_line(&total);
    run.log.push(total);
    let Some(staging) = run.staging else {
        // Nothing ran: the folder is left exactly as it was.
        return Ok(RunSummary {
            out: out.to_path_buf(),
            log: run.log,
            ran,
            up_to_date,
        });
    };
    let log: Vec<String> = run
        .log
        .iter()
        .map(|l| serde_json::to_string(l).expect("a log line serialises"))
        .collect();
    staging.write_text(LOG_FILE, &(log.join("\n") + "\n"))?;
    let manifest = Manifest::new(config, run.records);
    staging.write_text(MANIFEST_FILE, &manifest.to_json())?;
    let out = staging.retiring(retired).commit()?;
    Ok(RunSummary {
        out,
        log: run.log,
        ran,
        up_to_date,
    })
}

/// The state of a run in progress.
struct Run<'o> {
    out: &'o Path,
    /// The run folder's hidden copy, made when the first step has to run.
    staging: Option<AtomicDir>,
    /// Files of up-to-date steps met before the copy existed, linked into it when it is made.
    linked_later: Vec<FileRecord>,
    /// This run's manifest so far.
    records: Vec<StepRecord>,
    /// Content hashes of the user's inputs, each read once per run.
    hashes: HashMap<PathBuf, String>,
    log: Vec<LogLine>,
}

impl Run<'_> {
    fn step(&mut self, step: Step<'_>, previous: Option<&Manifest>) -> Result<LogLine> {
        let started = Instant::now();
        let key = self.key(&step)?;
        let kept = previous
            .and_then(|m| m.step(&step.name))
            .filter(|r| r.key == key);
        if let Some(record) = kept {
            if self.intact(record)? {
                self.keep(record)?;
                return Ok(LogLine {
                    step: step.name,
                    status: "up to date",
                    seconds: started.elapsed().as_secs_f64(),
                    error: None,
                });
            }
        }
        let root = self.staging()?.path().to_path_buf();
        in_folder(&root, step.action)?;
        let mut files = Vec::new();
        for output in &step.outputs {
            for path in files_under(&root, output)? {
                files.push(FileRecord::of(&root, &path)?);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        self.records.push(StepRecord {
            name: step.name.clone(),
            key,
            seconds,
            files,
        });
        Ok(LogLine {
            step: step.name,
            status: "ran",
            seconds,
            error: None,
        })
    }

    /// The step's key: the version, its name and settings, and each input's content hash.
    fn key(&mut self, step: &Step<'_>) -> Result<String> {
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "scengen {}\nstep {}\nsettings {}\n",
            env!("CARGO_PKG_VERSION"),
            step.name,
            step.settings
        ));
        for input in &step.inputs {
            // A user's file counts by its content (its path is in the settings as written),
            // so moving the working folder re-runs nothing.
            let (label, hash) = match input {
                Input::File(path) => ("file", self.user_hash(path)?),
                Input::Output(prefix) => (prefix.as_str(), self.output_hash(prefix)),
            };
            hasher.update(format!("input {label} {hash}\n"));
        }
        Ok(hex_digest(&hasher.finalize()))
    }

    /// Content hash of a user's file, or of a folder's files with their names.
    fn user_hash(&mut self, path: &Path) -> Result<String> {
        if let Some(hash) = self.hashes.get(path) {
            return Ok(hash.clone());
        }
        let hash = if path.is_dir() {
            let mut hasher = Sha256::new();
            for file in files_under(path, "")? {
                hasher.update(format!("{file} {}\n", sha256_file(path.join(&file))?));
            }
            hex_digest(&hasher.finalize())
        } else {
            sha256_file(path)?
        };
        self.hashes.insert(path.to_path_buf(), hash.clone());
        Ok(hash)
    }

    /// Hash of the outputs at or below `prefix` recorded so far in this run.
    fn output_hash(&self, prefix: &str) -> String {
        let mut hasher = Sha256::new();
        let below = format!("{prefix}/");
        for file in self.records.iter().flat_map(|r| &r.files) {
            if file.path == prefix || file.path.starts_with(&below) {
                hasher.update(format!("{} {}\n", file.path, file.sha256));
            }
        }
        hex_digest(&hasher.finalize())
    }

    /// Whether every file the last run recorded for a step is still in the run folder as it was.
    fn intact(&self, record: &StepRecord) -> Result<bool> {
        for file in &record.files {
            if !file.still_matches(self.out)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Carries an up-to-date step's outputs into this run.
    fn keep(&mut self, record: &StepRecord) -> Result<()> {
        match &self.staging {
            Some(staging) => {
                let root = staging.path().to_path_buf();
                for file in &record.files {
                    carry(self.out, &root, file)?;
                }
            }
            None => self.linked_later.extend(record.files.iter().cloned()),
        }
        self.records.push(record.clone());
        Ok(())
    }

    /// The run folder's hidden copy, made on first use with the outputs kept so far.
    fn staging(&mut self) -> Result<&AtomicDir> {
        if self.staging.is_none() {
            let staging = AtomicDir::new(self.out)?;
            for file in std::mem::take(&mut self.linked_later) {
                carry(self.out, staging.path(), &file)?;
            }
            self.staging = Some(staging);
        }
        Ok(self.staging.as_ref().expect("made above"))
    }
}

/// Runs `action` with the working folder set to `folder`, and back again whatever it returns.
fn in_folder(folder: &Path, action: Action<'_>) -> Result<()> {
    let previous = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    std::env::set_current_dir(folder).map_err(|e| Error::io(folder, e))?;
    let result = action();
    std::env::set_current_dir(&previous).map_err(|e| Error::io(&previous, e))?;
    result
}

/// Puts the previous run's file into the new run folder: a hard link (no copy, and the file
/// keeps its time, so the next run sees it unchanged), or a copy where links are refused.
fn carry(from: &Path, to: &Path, file: &FileRecord) -> Result<()> {
    let (source, target) = (from.join(&file.path), to.join(&file.path));
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    if fs::hard_link(&source, &target).is_ok() {
        return Ok(());
    }
    fs::copy(&source, &target).map_err(|e| Error::io(&source, e))?;
    let modified = fs::metadata(&source)
        .and_then(|m| m.modified())
        .map_err(|e| Error::io(&source, e))?;
    fs::File::options()
        .write(true)
        .open(&target)
        .and_then(|f| f.set_modified(modified))
        .map_err(|e| Error::io(&target, e))
}

/// The files at or below `path` in `root` (`""`: all of them), as sorted `/`-separated paths
/// relative to `root`; none when nothing is there. Hidden names (locks) are left out.
fn files_under(root: &Path, path: &str) -> Result<Vec<String>> {
    let full = if path.is_empty() {
        root.to_path_buf()
    } else {
        root.join(path)
    };
    let mut files = Vec::new();
    if full.is_file() {
        files.push(path.to_string());
    } else if full.is_dir() {
        let entries = fs::read_dir(&full).map_err(|e| Error::io(&full, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&full, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let child = if path.is_empty() {
                name
            } else {
                format!("{path}/{name}")
            };
            files.extend(files_under(root, &child)?);
        }
    }
    files.sort();
    Ok(files)
}

/// The first component of a run-folder path.
fn top_level(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_string()
}

/// The run folder's entries the last run wrote, which this run may drop.
fn top_level_names(manifest: &Manifest) -> Vec<String> {
    let mut names: Vec<String> = manifest
        .steps
        .iter()
        .flat_map(|s| s.files.iter().map(|f| top_level(&f.path)))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn check_names_unique(steps: &[Step<'_>]) -> Result<()> {
    for (i, step) in steps.iter().enumerate() {
        if steps[..i].iter().any(|s| s.name == step.name) {
            return Err(Error::option(
                "config",
                &step.name,
                "two steps of the run have this name",
            ));
        }
    }
    Ok(())
}
