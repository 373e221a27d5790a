//! Outputs replace only what they should: a regular file. A symbolic link, a FIFO or a folder
//! at the output path is refused by name and left as it was.

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
    // Nothing else was left in the folder: no temporary file.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["fifo", "folder", "link.json", "out.json"]);
}
