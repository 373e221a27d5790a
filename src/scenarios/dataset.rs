//! Sharded runs: part I of N of a run's paths (`generate --shard I/N`), written with the run's
//! global path ids, so that N processes (a Slurm array, a Kubernetes Indexed Job, GNU parallel)
//! together write exactly the paths of the unsharded run; and a folder of such parts read back
//! as one scenario set.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::{read_scenario_file, ScenarioSet};
use crate::error::{Error, Result};
use crate::io::meta;

/// Part `index` (from 0) of `count` of a run's paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    /// The whole run.
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Checks the part against its count: an error naming the `shard` setting.
    pub fn check(&self) -> Result<()> {
        if self.count == 0 || self.index >= self.count {
            return Err(Error::option(
                "shard",
                format!("{}/{}", self.index, self.count),
                "must be I/N with N at least 1 and I from 0 to N - 1",
            ));
        }
        Ok(())
    }

    /// The global ids of this part's paths among `n`: consecutive, the parts as even as
    /// whole paths allow, together exactly 0..n.
    pub fn paths(&self, n: usize) -> Range<usize> {
        let bound = |i: usize| (i as u128 * n as u128 / self.count as u128) as usize;
        bound(self.index)..bound(self.index + 1)
    }

    /// Whether this is a part of a larger run.
    pub fn is_part(&self) -> bool {
        self.count > 1
    }

    /// The metadata a part carries: which part, and the whole run's path count.
    pub fn metadata(&self, n: usize) -> BTreeMap<String, String> {
        if !self.is_part() {
            return BTreeMap::new();
        }
        BTreeMap::from([
            (
                meta::SHARD.to_string(),
                format!("{}/{}", self.index, self.count),
            ),
            (meta::PATHS.to_string(), n.to_string()),
        ])
    }
}

/// Reads a folder of a sharded run's parts (its `.parquet` files) as one set, its paths in id
/// order. The parts must be all N of one run: the same regime, assets, window and settings, each
/// part once, their paths exactly 0..n; a folder of one unsharded file is that file's set. An
/// error names the folder and the part at fault.
pub fn read_dataset(folder: &Path) -> Result<ScenarioSet> {
    let bad = |reason: String| Error::bad_file(folder, reason);
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .map_err(|e| Error::io(folder, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(bad("holds no .parquet scenario file".into()));
    }
    let mut parts = Vec::with_capacity(files.len());
    for file in &files {
        let (mut set, first) = read_scenario_file(file)?;
        if files.len() == 1 && !set.metadata.contains_key(meta::SHARD) {
            set.path = folder.to_path_buf();
            return Ok(set);
        }
        let shard = set
            .metadata
            .get(meta::SHARD)
            .and_then(|s| s.split_once('/'))
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .ok_or_else(|| {
                Error::bad_file(
                    file,
                    "is not a part of a sharded run (no `scengen.shard` metadata); a folder \
                     read as one set holds the N parts of one `generate --shard I/N` run",
                )
            })?;
        parts.push((shard, first, set, file.clone()));
    }
    parts.sort_by_key(|(shard, ..)| shard.0);
    let count = parts[0].0 .1;
    let whole = |set: &ScenarioSet| {
        let mut m = set.metadata.clone();
        m.remove(meta::SHARD);
        m.remove(meta::CREATED);
        m
    };
    let reference = whole(&parts[0].2);
    let total: usize = reference
        .get(meta::PATHS)
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad(format!("its parts do not record `{}`", meta::PATHS)))?;
    let mut next = 0;
    for (position, ((index, n), first, set, file)) in parts.iter().enumerate() {
        let part = Shard {
            index: *index,
            count: *n,
        };
        let fault = |reason: String| Error::bad_file(file, reason);
        if *n != count || *index != position {
            return Err(fault(format!(
                "is part {index}/{n}, but the folder's parts are {} of {count}: each part of \
                 one run exactly once",
                parts.len()
            )));
        }
        if whole(set) != reference || set.assets != parts[0].2.assets {
            return Err(fault(format!(
                "was generated with other settings than {}",
                parts[0].3.display()
            )));
        }
        if *first != next || part.paths(total) != (next..next + set.paths()) {
            return Err(fault(format!(
                "holds paths from {first}, where part {index}/{n} of {total} holds {:?}",
                part.paths(total)
            )));
        }
        next += set.paths();
    }
    if parts.len() != count || next != total {
        return Err(bad(format!(
            "holds {} of the {count} parts ({next} of {total} paths)",
            parts.len()
        )));
    }
    let mut parts = parts.into_iter();
    let (_, _, mut set, _) = parts.next().expect("at least one part");
    for (_, _, part, _) in parts {
        set.values.extend(part.values);
    }
    // The set is the whole run: its metadata as the unsharded file's.
    set.path = folder.to_path_buf();
    set.metadata.remove(meta::SHARD);
    set.metadata.remove(meta::PATHS);
    Ok(set)
}
