//! The scenario file: one row per (path, day) with columns `regime: string, path: u32,
//! step: u16, <asset>: f64` (daily log returns), plus metadata naming the method and its
//! settings. Every generator (diffusion or classical) writes it through [`ScenarioWriter`], and
//! every consumer reads it through [`read_scenarios`]: a file, or a folder of a sharded run's
//! parts ([`dataset`]).

mod dataset;

pub use dataset::{read_dataset, Shard};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array, StringArray, UInt16Array, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt16Type, UInt32Type};

use crate::error::{first_repeat, Error, Result};
use crate::io::{
    self, f64_column, format_date, meta, parse_date, read_parquet, AtomicFile, ParquetSink,
};

/// Where generated scenario files go, and the folder the analyses read, unless told otherwise.
pub const DEFAULT_FOLDER: &str = "scenarios";

/// The largest daily log return a scenario file may hold (a factor of 22,026 in a day; the
/// embedded data's largest is 1.1): beyond it P&L overflows to infinity in the analyses.
pub const MAX_LOG_RETURN: f64 = 10.0;

/// The most paths a scenario file holds: path ids are u32, numbered from 0.
pub const MAX_PATHS: usize = u32::MAX as usize + 1;

/// `n` paths for a scenario file, or an error naming the `n` setting: at least 1, and no more
/// than the path ids can number ([`MAX_PATHS`]).
pub fn check_path_count(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::option("n", 0, "must be at least 1"));
    }
    if n > MAX_PATHS {
        return Err(Error::option(
            "n",
            n,
            format!("must be at most {MAX_PATHS}: path ids are 32-bit"),
        ));
    }
    Ok(())
}

/// Paths per scenario set unless told otherwise.
pub const DEFAULT_PATHS: usize = 10_000;

/// The regime a single-regime command draws unless told otherwise.
pub const DEFAULT_REGIME: &str = "high-vix";

/// Where a generator writes a regime's set unless told otherwise:
/// `scenarios/<regime>.parquet` for the diffusion model, `scenarios/<regime>-<method>.parquet`
/// for a classical generator.
pub fn default_scenario_file(regime: &str, method: Option<&str>) -> PathBuf {
    let name = match method {
        Some(method) => format!("{regime}-{method}.parquet"),
        None => format!("{regime}.parquet"),
    };
    Path::new(DEFAULT_FOLDER).join(name)
}

/// Arrow schema of a scenario file for `assets`.
pub fn scenario_schema(assets: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("regime", DataType::Utf8, false),
        Field::new("path", DataType::UInt32, false),
        Field::new("step", DataType::UInt16, false),
    ];
    fields.extend(
        assets
            .iter()
            .map(|a| Field::new(a, DataType::Float64, false)),
    );
    Arc::new(Schema::new(fields))
}

/// Streams paths into a scenario file.
pub struct ScenarioWriter {
    sink: ParquetSink,
    schema: SchemaRef,
    regime: String,
    window: usize,
    assets: usize,
}

impl ScenarioWriter {
    /// Opens `out` for paths of `window` days over `assets`. `metadata` gets the regime, window
    /// and a `created` stamp added: the current UTC time, or `SOURCE_DATE_EPOCH` when set, so
    /// that reruns with the same seed can be byte-identical.
    pub fn create(
        out: &Path,
        assets: &[String],
        regime: &str,
        window: usize,
        mut metadata: BTreeMap<String, String>,
    ) -> Result<Self> {
        let schema = scenario_schema(assets);
        metadata.insert(meta::REGIME.into(), regime.to_string());
        metadata.insert(meta::WINDOW.into(), window.to_string());
        metadata.insert(meta::CREATED.into(), created_stamp());
        let sink = ParquetSink::create(AtomicFile::new(out)?, schema.clone(), &metadata)?;
        Ok(Self {
            sink,
            schema,
            regime: regime.to_string(),
            window,
            assets: assets.len(),
        })
    }

    /// Writes consecutive paths numbered from `first_path`; `values` is path-major, then day,
    /// then asset.
    pub fn write_paths(&mut self, first_path: u32, values: &[f64]) -> Result<()> {
        let per_path = self.window * self.assets;
        assert_eq!(values.len() % per_path, 0, "whole paths only");
        let paths = values.len() / per_path;
        let rows = paths * self.window;
        let path_col: Vec<u32> = (0..rows)
            .map(|r| first_path + (r / self.window) as u32)
            .collect();
        let step_col: Vec<u16> = (0..rows).map(|r| (r % self.window) as u16).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.regime.as_str(); rows])),
            Arc::new(UInt32Array::from(path_col)),
            Arc::new(UInt16Array::from(step_col)),
        ];
        for a in 0..self.assets {
            let col: Vec<f64> = values
                .iter()
                .skip(a)
                .step_by(self.assets)
                .copied()
                .collect();
            columns.push(Arc::new(Float64Array::from(col)));
        }
        self.sink.write(&io::batch(self.schema.clone(), columns)?)
    }

    /// Closes the file and moves it into place.
    pub fn finish(self) -> Result<PathBuf> {
        self.sink.finish()
    }
}

fn created_stamp() -> String {
    let when = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or_else(chrono::Utc::now);
    when.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A scenario file in memory.
#[derive(Debug, Clone)]
pub struct ScenarioSet {
    pub path: PathBuf,
    pub regime: String,
    pub assets: Vec<String>,
    pub window: usize,
    /// `paths * window * assets` daily log returns, path-major, then day, then asset.
    pub values: Vec<f64>,
    pub metadata: BTreeMap<String, String>,
}

impl ScenarioSet {
    pub fn paths(&self) -> usize {
        self.values.len() / (self.window * self.assets.len())
    }

    /// Values of one path (`window * assets`, day-major).
    pub fn path_values(&self, p: usize) -> &[f64] {
        let size = self.window * self.assets.len();
        &self.values[p * size..(p + 1) * size]
    }
}

/// Reads and checks a scenario file, or a folder of a sharded run's parts as one set.
pub fn read_scenarios(path: &Path) -> Result<ScenarioSet> {
    if path.is_dir() {
        return read_dataset(path);
    }
    Ok(read_scenario_file(path)?.0)
}

/// One scenario file, and the id of its first path.
fn read_scenario_file(path: &Path) -> Result<(ScenarioSet, usize)> {
    let table = read_parquet(path)?;
    let bad = |reason: String| Error::bad_file(path, reason);
    let assets: Vec<String> = table
        .column_names()
        .into_iter()
        .filter(|c| !["regime", "path", "step"].contains(&c.as_str()))
        .collect();
    let regimes = table.column("regime")?;
    let regimes = regimes
        .as_string_opt::<i32>()
        .ok_or_else(|| bad("column `regime` is not a string".into()))?;
    let paths = table.column("path")?;
    let paths = paths
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| bad("column `path` is not u32".into()))?;
    let steps = table.column("step")?;
    let steps = steps
        .as_primitive_opt::<UInt16Type>()
        .ok_or_else(|| bad("column `step` is not u16".into()))?;
    let rows = table.batch.num_rows();
    if rows == 0 {
        return Err(bad("holds no paths".into()));
    }
    let window = match table.metadata.get(meta::WINDOW) {
        Some(w) => w
            .parse()
            .map_err(|_| bad(format!("metadata `{}` is not a number", meta::WINDOW)))?,
        None => (0..rows)
            .take_while(|&r| paths.value(r) == paths.value(0))
            .count(),
    };
    if window == 0 || rows % window != 0 {
        return Err(bad(format!(
            "{rows} rows is not a whole number of {window}-day paths"
        )));
    }
    let regime = regimes.value(0).to_string();
    for r in 0..rows {
        if steps.value(r) as usize != r % window || paths.value(r) != paths.value(r - r % window) {
            return Err(bad(format!(
                "row {r}: path {} step {} out of order",
                paths.value(r),
                steps.value(r)
            )));
        }
        if regimes.value(r) != regime {
            return Err(bad(format!(
                "mixes regimes `{regime}` and `{}`",
                regimes.value(r)
            )));
        }
    }
    let columns = assets
        .iter()
        .map(|a| f64_column(&table, a))
        .collect::<Result<Vec<_>>>()?;
    let mut values = Vec::with_capacity(rows * assets.len());
    for r in 0..rows {
        for c in &columns {
            if !c[r].is_finite() {
                return Err(bad(format!("row {r}: non-finite return {}", c[r])));
            }
            if c[r].abs() > MAX_LOG_RETURN {
                return Err(bad(format!(
                    "row {r}: daily log return {} is beyond ±{MAX_LOG_RETURN} (a factor of \
                     e^{MAX_LOG_RETURN} in a day): not a market's return",
                    c[r]
                )));
            }
            values.push(c[r]);
        }
    }
    let set = ScenarioSet {
        path: path.to_path_buf(),
        regime,
        assets,
        window,
        values,
        metadata: table.metadata.clone(),
    };
    Ok((set, paths.value(0) as usize))
}

/// A scenario file's label in reports when none is given: its file name without the extension.
pub fn default_label(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// How a scenario file was generated: its `scengen.*` metadata without the prefix (sampler,
/// guidance, seed, model and its SHA-256 for the diffusion model; a baseline's settings), so that
/// a report says which settings its figures belong to.
pub fn generator_settings(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(meta::PREFIX)?.to_string(), v.clone())))
        .collect()
}

/// Refuses the scenario file `path` when its `metadata` records a training cut-off
/// (`scengen.test_from`: the model or baseline saw only days before it) after `from`, the first
/// day a backtest holds out: the scenarios would have seen the days they are tested on. A file
/// without the key is let through with a warning.
pub fn check_no_look_ahead(
    path: &Path,
    metadata: &BTreeMap<String, String>,
    from: i32,
) -> Result<()> {
    match metadata.get(meta::TEST_FROM) {
        Some(text) => {
            let trained_before = parse_date(meta::TEST_FROM, text)?;
            if trained_before > from {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "it was fitted on data up to {text} (scengen.test_from), after the backtest \
                         start {}: that would look ahead",
                        format_date(from)
                    ),
                ));
            }
        }
        None => tracing::warn!(
            "{} does not record its model's training cut-off; make sure it precedes {}",
            path.display(),
            format_date(from)
        ),
    }
    Ok(())
}

/// The report label of each scenario file: its given label, else [`default_label`]. A blank
/// label would be a nameless row, and two files with one label (`run1/high-vix.parquet` and
/// `run2/high-vix.parquet`) could not be told apart in a report: both are errors naming the
/// files.
pub fn set_labels(sets: &[(PathBuf, Option<String>)]) -> Result<Vec<String>> {
    let labels: Vec<String> = sets
        .iter()
        .map(|(path, label)| label.clone().unwrap_or_else(|| default_label(path)))
        .collect();
    if let Some(blank) = labels.iter().position(|l| l.trim().is_empty()) {
        return Err(Error::option(
            "label",
            &labels[blank],
            format!(
                "is blank; give {} a label that names it",
                sets[blank].0.display()
            ),
        ));
    }
    if let Some((first, second)) = first_repeat(&labels) {
        return Err(Error::option(
            "label",
            &labels[first],
            format!(
                "names both {} and {}; give each scenario file its own label",
                sets[first].0.display(),
                sets[second].0.display()
            ),
        ));
    }
    Ok(labels)
}

/// The scenario sets named by `inputs`: files as given; folders as their `*.parquet` files and,
/// below them, every folder that holds `*.parquet` files (the parts of a sharded run, read as
/// one set by [`read_scenarios`]), so that a dataset laid out as
/// `<set>/regime=<regime>/part-<i>.parquet` gives one set per regime; in name order. An error
/// names the `scenarios` setting when there are none.
pub fn scenario_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        if !p.exists() {
            return Err(Error::option(
                "scenarios",
                p.display(),
                "no such file or folder",
            ));
        }
        if p.is_dir() {
            let (parquet, folders) = folder_entries(p)?;
            files.extend(parquet);
            for folder in folders {
                part_folders(&folder, &mut files)?;
            }
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err(Error::option(
            "scenarios",
            listed(inputs),
            "no scenario files found",
        ));
    }
    Ok(files)
}

/// The `*.parquet` files and the subfolders of `dir`, each in name order.
fn folder_entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let (folders, files): (Vec<PathBuf>, Vec<PathBuf>) =
        entries.into_iter().partition(|e| e.is_dir());
    let parquet = files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|x| x == "parquet"))
        .collect();
    Ok((parquet, folders))
}

/// Adds `dir` to `sets` when it holds `*.parquet` files (one sharded run's parts), else each
/// folder below it that does.
fn part_folders(dir: &Path, sets: &mut Vec<PathBuf>) -> Result<()> {
    let (parquet, folders) = folder_entries(dir)?;
    if !parquet.is_empty() {
        sets.push(dir.to_path_buf());
        return Ok(());
    }
    for folder in folders {
        part_folders(&folder, sets)?;
    }
    Ok(())
}

/// Calls `each` with every diffusion scenario set among `inputs` (files, or folders of them),
/// one set in memory at a time. Baseline files, which share the scenarios folder, are skipped;
/// an error names the `scenarios` setting when no diffusion set is found, or when two are of one regime
/// (which of them would stand for it is not the tool's to guess).
pub fn for_each_diffusion_set(
    inputs: &[PathBuf],
    mut each: impl FnMut(ScenarioSet) -> Result<()>,
) -> Result<()> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for file in scenario_files(inputs)? {
        let set = read_scenarios(&file)?;
        if set
            .metadata
            .get(meta::METHOD)
            .is_some_and(|m| m != "diffusion")
        {
            continue;
        }
        if let Some(first) = seen.get(&set.regime) {
            return Err(Error::option(
                "scenarios",
                file.display(),
                format!(
                    "a second diffusion scenario file for regime `{}` (first: {})",
                    set.regime,
                    first.display()
                ),
            ));
        }
        seen.insert(set.regime.clone(), file);
        each(set)?;
    }
    if !seen.is_empty() {
        Ok(())
    } else {
        Err(Error::option(
            "scenarios",
            listed(inputs),
            "no diffusion scenario file among the inputs",
        ))
    }
}

/// The `scenarios` inputs as the user gave them, for error messages.
fn listed(inputs: &[PathBuf]) -> String {
    inputs
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The path ranges of consecutive batches of at most `size` paths out of `n`.
pub fn batches(n: usize, size: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    batches_of(0..n, size)
}

/// The paths `paths` in consecutive batches of at most `size`.
pub fn batches_of(
    paths: std::ops::Range<usize>,
    size: usize,
) -> impl Iterator<Item = std::ops::Range<usize>> {
    let (size, end) = (size.max(1), paths.end);
    paths.step_by(size).map(move |s| s..(s + size).min(end))
}
