//! Outputs replace only what they should: a regular file. A symbolic link, a FIFO or a folder
//! at the output path is refused by name and left as it was. One writer per output at a time,
//! and a folder replacement interrupted half-way is undone by the next run.

use scengen::io::write_text_atomic;

#[test]
fn only_regular_files_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file is replaced.
    let file = dir.path().join("out.json");
    std::fs::write(&file, "old").unwrap();
    write_text_atomic(&file, "new").unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");

    // A symbolic link: replacing it would leave the file it names as it was and the link gone.
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let e = write_text_atomic(&link, "through").unwrap_err().to_string();
    assert!(
        e.contains("link.json") && e.contains("symbolic link"),
        "{e}"
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");

    // A FIFO (as a device would be): never turned into a regular file.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let e = write_text_atomic(&fifo, "x").unwrap_err().to_string();
    assert!(
        e.contains("fifo") && e.contains("not a regular file"),
        "{e}"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // A folder.
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    let e = write_text_atomic(&folder, "x").unwrap_err().to_string();
    assert!(e.contains("is a folder"), "{e}");
    // Nothing else was left in the folder: no temporary or lock file.
    assert_eq!(
        entries(dir.path()),
        ["fifo", "folder", "link.json", "out.json"]
    );
}

/// Two runs aimed at one output: the second fails at once, naming the first's process, and
/// writes nothing; once the first is done, the output is free again and no lock file is left.
/// (Both reported success before, and the last rename won silently.)
#[test]
fn a_second_writer_of_one_output_fails_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.parquet");
    let ingest = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_scengen"))
            .args(["ingest", "--out", out.to_str().unwrap()])
            .output()
            .expect("the binary runs")
    };
    let held = scengen::io::OutputLock::acquire(&out).unwrap();
    let second = ingest();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    let holder = format!("process {}", std::process::id());
    assert!(
        stderr.contains("windows.parquet") && stderr.contains(&holder),
        "{stderr}"
    );
    assert!(!out.exists());
    drop(held);
    let after = ingest();
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(out.exists());
    assert_eq!(
        entries(dir.path()),
        ["windows.parquet"],
        "only the output is left"
    );
}

/// A folder output replaced in two renames (where the file system cannot swap two names in
/// one step) and killed between them leaves the old folder set aside as `.old` and nothing at
/// the target; the next run to write that output puts it back before anything else. A
/// replacement that completes leaves only the new folder.
#[test]
fn a_folder_replacement_killed_between_its_renames_is_recovered() {
    use scengen::io::AtomicDir;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("config.json"), "old").unwrap();

    // A run that has ended: its pid names no process now.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    // The state its kill left: the old folder set aside, the new one complete but not moved.
    std::fs::rename(&target, dir.path().join(format!(".model.{dead}.old"))).unwrap();
    let new = dir.path().join(format!(".model.{dead}.tmp"));
    std::fs::create_dir(&new).unwrap();
    std::fs::write(new.join("config.json"), "new").unwrap();

    let next = AtomicDir::new(&target).unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("config.json")).unwrap(),
        "old",
        "the previous folder is back under its name"
    );
    next.write_text("config.json", "newer").unwrap();
    next.commit().unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("config.json")).unwrap(),
        "newer"
    );
    assert_eq!(entries(dir.path()), ["model"]);
    assert_eq!(entries(&target), ["config.json"]);
}

/// The names in `dir`, sorted.
fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A write that fails midway is reported under the output the user named, not the hidden
/// temporary file it was going to (`.out.json.<pid>.tmp` meant nothing to the user).
#[test]
fn a_failed_write_names_the_output_not_its_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    // This process's own temporary name, taken by a folder: the write into it fails.
    let temp = dir
        .path()
        .join(format!(".out.json.{}.tmp", std::process::id()));
    std::fs::create_dir(&temp).unwrap();
    let e = write_text_atomic(&out, "x").unwrap_err().to_string();
    assert!(e.contains("out.json") && !e.contains(".out.json."), "{e}");
    assert!(!out.exists());
}
