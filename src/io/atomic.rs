//! Output that appears whole or not at all: write to a temporary name in the destination folder,
//! flush it to disk, then rename. A failed run drops the temporary file, so a nightly job never
//! finds half a file; one killed by a signal leaves it hidden, and the next run to write that
//! target removes it. Every output is held by an [`OutputLock`] while it is written.

use std::fs;
use std::path::{Path, PathBuf};

use super::lock::OutputLock;
use crate::error::{Error, Result};

/// `(temporary path, final path)` for `target`, the temporary one hidden in the same folder
/// (so the final rename stays on one file system); the folder is created if missing.
fn temporary_beside(target: &Path, output: Output) -> Result<(PathBuf, PathBuf)> {
    let target = target.to_path_buf();
    let dir = parent_dir(&target);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = target
        .file_name()
        .ok_or_else(|| Error::option("out", target.display(), "not a file or folder path"))?
        .to_string_lossy()
        .to_string();
    remove_stale_temporaries(&dir, &name, output);
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    Ok((temp, target))
}

/// Whether an output is a file or a folder: only a folder's replacement sets the old one aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    File,
    Folder,
}

/// Removes the temporaries of `name` left in `dir` by runs that were killed (a nightly job's
/// timeout sends a signal, and no drop runs then): `.{name}.{pid}.tmp` or `.old`, file or
/// folder, whose process no longer exists. A run still writing the same target keeps its own.
/// A `.old` folder is the previous output set aside by a replacement in two renames that was
/// killed between them: when nothing took its place, it is put back instead of removed.
/// Where `/proc` does not list processes, nothing is removed.
fn remove_stale_temporaries(dir: &Path, name: &str, output: Output) {
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
            let target = dir.join(name);
            if output == Output::Folder
                && file_name.ends_with(".old")
                && path.is_dir()
                && fs::symlink_metadata(&target).is_err()
                && fs::rename(&path, &target).is_ok()
            {
                tracing::warn!(
                    "restored {} from {}, set aside by a killed run",
                    target.display(),
                    path.display()
                );
                continue;
            }
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            tracing::info!("removed {}, left by a killed run", path.display());
        }
    }
}

/// Removes what killed runs left beside the folder output `target` (see
/// [`remove_stale_temporaries`]), for a writer that may finish without writing it.
pub fn clear_killed_runs(target: &Path) {
    if let Some(name) = target.file_name() {
        let name = name.to_string_lossy();
        remove_stale_temporaries(&parent_dir(target), &name, Output::Folder);
    }
}

/// Writes `text` to `target` all at once: a temporary file beside it, then a rename.
pub fn write_text_atomic(target: &Path, text: &str) -> Result<PathBuf> {
    let file = AtomicFile::new(target)?;
    fs::write(file.path(), text).map_err(|e| Error::io(file.reported_path(), e))?;
    file.commit()
}

/// A file being written under a temporary name next to its final path.
pub struct AtomicFile {
    temp: PathBuf,
    target: PathBuf,
    /// The path messages name: the target, or for a file of an [`AtomicDir`] still being
    /// built, where it will be once the folder is in place.
    shown: PathBuf,
    committed: bool,
    _lock: OutputLock,
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
        let lock = OutputLock::acquire(target)?;
        let (temp, target) = temporary_beside(target, Output::File)?;
        Ok(Self {
            temp,
            shown: target.clone(),
            target,
            committed: false,
            _lock: lock,
        })
    }

    /// The temporary path to write to; failures are reported under [`Self::reported_path`],
    /// the path the user asked for.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The final path, as messages name it.
    pub fn reported_path(&self) -> &Path {
        &self.shown
    }

    /// Creates the temporary file for writing.
    pub fn create(&self) -> Result<fs::File> {
        fs::File::create(&self.temp).map_err(|e| Error::io(&self.shown, e))
    }

    /// Moves the finished file into place: its bytes reach the disk before the rename, and the
    /// rename before this returns, so a power cut leaves the old file or the new one, never an
    /// empty one under the final name.
    pub fn commit(mut self) -> Result<PathBuf> {
        let io_error = |e| Error::io(&self.shown, e);
        sync_path(&self.temp).map_err(io_error)?;
        fs::rename(&self.temp, &self.target).map_err(io_error)?;
        self.committed = true;
        sync_path(&parent_dir(&self.target)).map_err(io_error)?;
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
    /// Entries of the old folder that the new one may leave out (see [`Self::retiring`]).
    retired: Vec<String>,
    committed: bool,
    _lock: OutputLock,
}

impl AtomicDir {
    pub fn new(target: impl AsRef<Path>) -> Result<Self> {
        let target = target.as_ref();
        if target.is_file() {
            return Err(Error::bad_file(target, FILE_WHERE_A_FOLDER_GOES));
        }
        let lock = OutputLock::acquire(target)?;
        let (temp, target) = temporary_beside(target, Output::Folder)?;
        let _ = fs::remove_dir_all(&temp);
        fs::create_dir_all(&temp).map_err(|e| Error::io(&target, e))?;
        Ok(Self {
            temp,
            target,
            retired: Vec::new(),
            committed: false,
            _lock: lock,
        })
    }

    /// Lets the replacement drop these entries of the old folder: ones an earlier run of the
    /// same writer made and recorded (a run folder's outputs of steps no longer configured).
    pub fn retiring(mut self, names: Vec<String>) -> Self {
        self.retired = names;
        self
    }

    /// The temporary folder to write into.
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// The folder's file `name`, written whole or not at all like any output, and named in
    /// messages where it will be once the folder is in place.
    pub fn file(&self, name: &str) -> Result<AtomicFile> {
        let mut file = AtomicFile::new(self.temp.join(name))?;
        file.shown = self.target.join(name);
        Ok(file)
    }

    /// Writes `text` as the folder's file `name`; a failure names the file under the final
    /// folder, the path the user asked for, not the hidden temporary one.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        fs::write(self.temp.join(name), text).map_err(|e| Error::io(self.target.join(name), e))
    }

    /// Replaces the target folder with the finished one, whose files reach the disk first.
    /// Where the file system can swap two names in one step (Linux `renameat2` with
    /// `RENAME_EXCHANGE`), the target never goes missing; elsewhere the old folder is set
    /// aside as `.old` first, and a run killed between the two renames has it put back by the
    /// next run that writes this output.
    pub fn commit(mut self) -> Result<PathBuf> {
        let io_error = |e| Error::io(&self.target, e);
        sync_tree(&self.temp).map_err(io_error)?;
        if fs::symlink_metadata(&self.target).is_ok() {
            self.check_replaceable()?;
            if exchange(&self.temp, &self.target).is_ok() {
                // The temporary name now holds the old folder.
                let _ = fs::remove_dir_all(&self.temp);
            } else {
                let old = self.temp.with_extension("old");
                fs::rename(&self.target, &old).map_err(io_error)?;
                fs::rename(&self.temp, &self.target).map_err(io_error)?;
                let _ = fs::remove_dir_all(&old);
            }
        } else {
            fs::rename(&self.temp, &self.target).map_err(io_error)?;
        }
        self.committed = true;
        sync_path(&parent_dir(&self.target)).map_err(io_error)?;
        Ok(self.target.clone())
    }

    /// Refuses to replace a target that holds anything the new folder does not rewrite.
    fn check_replaceable(&self) -> Result<()> {
        let mut names = entry_names(&self.temp)?;
        names.extend(self.retired.iter().cloned());
        check_folder_target(&self.target, &names)
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

/// Swaps the names `a` and `b` (both must exist) in one step.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: two NUL-terminated paths that outlive the call.
    let status = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Flushes a file's or a folder's entries to disk.
fn sync_path(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Flushes every file and folder under `dir`, and `dir` itself, to disk.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        } else {
            sync_path(&entry.path())?;
        }
    }
    sync_path(dir)
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
