//! Output that appears whole or not at all: write to a temporary name in the destination folder,
//! then rename. A failed run drops the temporary file, so a nightly job never finds half a file;
//! one killed by a signal leaves it hidden, and the next run to write that target removes it.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `(temporary path, final path)` for `target`, the temporary one hidden in the same folder
/// (so the final rename stays on one file system); the folder is created if missing.
fn temporary_beside(target: &Path) -> Result<(PathBuf, PathBuf)> {
    let target = target.to_path_buf();
    let dir = parent_dir(&target);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = target
        .file_name()
        .ok_or_else(|| Error::option("out", target.display(), "not a file or folder path"))?
        .to_string_lossy()
        .to_string();
    remove_stale_temporaries(&dir, &name);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    Ok((temp, target))
}

/// Removes the temporaries of `name` left in `dir` by runs that were killed (a nightly job's
/// timeout sends a signal, and no drop runs then): `.{name}.{pid}.tmp` or `.old`, file or
/// folder, whose process no longer exists. A run still writing the same target keeps its own.
/// Where `/proc` does not list processes, nothing is removed.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".tmp").or(rest.strip_suffix(".old")))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_running(pid) {
            let path = entry.path();
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            tracing::info!("removed {}, left by a killed run", path.display());
        }
    }
}

/// Writes `text` to `path` (a file inside a folder being built, say), naming `path` on failure.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes `text` to `target` all at once: a temporary file beside it, then a rename.
pub fn write_text_atomic(target: &Path, text: &str) -> Result<PathBuf> {
    let file = AtomicFile::new(target)?;
    write_text(file.path(), text)?;
    file.commit()
}

/// A file being written under a temporary name next to its final path.
pub struct AtomicFile {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Prepares `target`; its folder is created if missing. Anything at `target` but a regular
    /// file is an error now rather than at the final rename, after all the work: a folder; a
    /// symbolic link (the rename would replace the link, not the file it names, so none is
    /// followed silently); a device, FIFO or socket (the rename would turn `/dev/null` into a
    /// file).
    pub fn new(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref();
        if let Ok(meta) = fs::symlink_metadata(target) {
            let kind = meta.file_type();
            let refused = if kind.is_symlink() {
                Some("is a symbolic link; give the path of the file it names")
            } else if kind.is_dir() {
                Some("is a folder, and this output is a file")
            } else if !kind.is_file() {
                Some("is not a regular file (a device, FIFO or socket); outputs replace only regular files")
            } else {
                None
            };
            if let Some(reason) = refused {
                return Err(Error::bad_file(target, reason));
            }
        }
        let (temp, target) = temporary_beside(target)?;
        Ok(Self {
            temp,
            target,
            committed: false,
        })
    }

    /// The temporary path to write to.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Creates the temporary file for writing.
    pub fn create(&self) -> Result<fs::File> {
        fs::File::create(&self.temp).map_err(|e| Error::io(&self.temp, e))
    }

    /// Moves the finished file into place.
    pub fn commit(mut self) -> Result<PathBuf> {
        fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// A folder of outputs (a model, a report) built under a temporary name and renamed into place;
/// an existing folder of the same name is replaced only once the new one is complete, and only
/// when the new one rewrites everything in it: an output naming a folder of other files (a typo,
/// `.`) is an error, never a deletion.
pub struct AtomicDir {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicDir {
    pub fn new(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref();
        if target.is_file() {
            return Err(Error::bad_file(target, FILE_WHERE_A_FOLDER_GOES));
        }
        let (temp, target) = temporary_beside(target)?;
        let _ = fs::remove_dir_all(&temp);
        fs::create_dir_all(&temp).map_err(|e| Error::io(&temp, e))?;
        Ok(Self {
            temp,
            target,
            committed: false,
        })
    }

    /// The temporary folder to write into.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Replaces the target folder with the finished one.
    pub fn commit(mut self) -> Result<PathBuf> {
        if self.target.exists() {
            self.check_replaceable()?;
            let old = self.temp.with_extension("old");
            fs::rename(&self.target, &old).map_err(|e| Error::io(&self.target, e))?;
            fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        }
        self.committed = true;
        Ok(self.target.clone())
    }

    /// Refuses to replace a target that holds anything the new folder does not rewrite.
    fn check_replaceable(&self) -> Result<()> {
        check_folder_target(&self.target, &entry_names(&self.temp)?)
    }
}

/// Checks that `target` can take a folder of outputs holding `written`: it is absent, or a
/// folder with no entry outside `written`. [`AtomicDir`] checks this when it commits; a long
/// job (training) calls it first too, so a bad output fails before the work, not after.
pub fn check_folder_target(target: &Path, written: &[String]) -> Result<()> {
    if !target.exists() {
        return Ok(());
    }
    if !target.is_dir() {
        return Err(Error::bad_file(target, FILE_WHERE_A_FOLDER_GOES));
    }
    let foreign: Vec<String> = entry_names(target)?
        .into_iter()
        .filter(|name| !written.contains(name))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::bad_file(
        target,
        format!(
            "holds what this run would not rewrite ({}{}); an existing folder is replaced \
             only when every entry in it is rewritten: give a new or empty folder",
            foreign
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if foreign.len() > 5 { ", ..." } else { "" }
        ),
    ))
}

const FILE_WHERE_A_FOLDER_GOES: &str = "is a file, and this output is a folder";

/// The names in folder `dir`, sorted.
fn entry_names(dir: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<String> = entries
        .map(|e| {
            e.map(|e| e.file_name().to_string_lossy().to_string())
                .map_err(|e| Error::io(dir, e))
        })
        .collect::<Result<_>>()?;
    names.sort();
    Ok(names)
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.temp);
        }
    }
}

/// Whether process `pid` exists and has not ended: a killed process stays listed as a zombie
/// (state Z) until its parent reaps it, which in a container may be never.
fn process_running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (command) state ...": the command may hold spaces or parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, Some('Z' | 'X'))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
