//! One writer per output: a run takes an exclusive lock on each output path before it writes
//! (or, for long jobs, before it starts), so a second run aimed at the same `--out` fails at
//! once, naming the process that holds it, instead of both reporting success while the last
//! rename silently wins.
//!
//! The lock is `flock` on a hidden `.{name}.lock` file beside the output; the kernel releases
//! it when its holder exits, however it exits, so a killed run never leaves a stuck lock. The
//! holder removes the file when it is done.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Outputs this process holds, so that a stage which locks its output at the start and then
/// writes it through [`super::AtomicFile`] (which locks too) does not refuse itself.
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// An exclusive hold on an output path, released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    /// The lock file and its open handle; `None` for a nested hold of a path this process
    /// already holds.
    file: Option<(PathBuf, File)>,
    target: PathBuf,
    /// Folders made to hold the lock file (the output's missing parents), deepest last:
    /// removed again if the run leaves them empty, so a run that fails leaves nothing.
    made: Vec<PathBuf>,
}

impl OutputLock {
    /// Locks `target` (a file or folder output; its folder is created if missing), or fails
    /// naming the process that holds it.
    pub fn acquire(target: &Path) -> Result<Self> {
        let key = absolute(target);
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if held.contains(&key) {
            return Ok(Self {
                file: None,
                target: key,
                made: Vec::new(),
            });
        }
        let (lock_path, made) = lock_path(target)?;
        // A holder removes its lock file as it leaves; one that opened the file just before
        // and locked it just after would hold a deleted file, so the lock counts only once the
        // path still names the file that was locked.
        for _ in 0..8 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(|e| Error::io(&lock_path, e))?;
            // SAFETY: flock on a file descriptor this function owns for the call's duration.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if locked != 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::WouldBlock {
                    return Err(Error::io(&lock_path, err));
                }
                return Err(busy(target, &lock_path, file));
            }
            if !names_same_file(&lock_path, &file) {
                continue;
            }
            let mut file = file;
            let _ = file.set_len(0);
            let _ = write!(file, "{}", std::process::id());
            held.push(key.clone());
            return Ok(Self {
                file: Some((lock_path, file)),
                target: key,
                made,
            });
        }
        Err(Error::bad_file(
            target,
            "its lock file kept changing under this run; another run is starting and ending \
             on the same output",
        ))
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        if let Some((path, _file)) = self.file.take() {
            // Removed while still locked, then the handle closes and the lock goes with it.
            let _ = fs::remove_file(&path);
            for dir in self.made.iter().rev() {
                // Fails, as it should, once the run has written its output there.
                let _ = fs::remove_dir(dir);
            }
            let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
            held.retain(|p| p != &self.target);
        }
    }
}

/// The error for an output another process holds, naming its pid when the file tells it.
fn busy(target: &Path, lock_path: &Path, mut file: File) -> Error {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    let holder = match text.trim().parse::<u32>() {
        Ok(pid) => format!("process {pid}"),
        Err(_) => "another process".to_string(),
    };
    Error::bad_file(
        target,
        format!(
            "is being written by another scengen run ({holder}, lock {}); wait for it to \
             finish or choose another output",
            lock_path.display()
        ),
    )
}

/// `.{name}.lock` beside `target`, and the folders made for it (its missing parents, outermost
/// first).
fn lock_path(target: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut made: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    made.reverse();
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = target
        .file_name()
        .ok_or_else(|| Error::option("out", target.display(), "not a file or folder path"))?
        .to_string_lossy();
    Ok((dir.join(format!(".{name}.lock")), made))
}

/// Whether `path` still names the open `file` (same device and inode).
fn names_same_file(path: &Path, file: &File) -> bool {
    match (fs::metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// `path` made absolute against the working folder, without resolving links (the output may
/// not exist yet), so that `out` and `./out` are one output.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    joined.components().collect()
}
