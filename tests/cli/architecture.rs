//! The library's layout rules, read off its source: dependencies between top-level modules run
//! one way (no module imports one that imports it back), and the library below the command line
//! (`src/main.rs`, `src/cli/`, `src/demo.rs`) never sees clap or a flag name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The library's files (the binary's edge left out), keyed by their top-level module.
fn library_files() -> Vec<(String, PathBuf)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    rust_files(&src)
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_path_buf();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_str()
                .unwrap();
            let module = first.trim_end_matches(".rs").to_string();
            let edge = ["main", "lib", "cli", "demo"].contains(&module.as_str());
            (!edge).then_some((module, path))
        })
        .collect()
}

/// The code of a file without its comments (doc comments name flags for people).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level modules named after `crate::` in `text`.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_import_one_way() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in library_files() {
        let imports = imported_modules(&code(&path));
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(imports.into_iter().filter(|m| *m != module));
    }
    assert!(
        graph.len() > 10,
        "the library's modules were found: {graph:?}"
    );
    assert!(graph["train"].contains("model"), "train uses the model");
    assert_eq!(find_cycle(&graph), None, "an import cycle: {graph:#?}");

    // The check finds a cycle when there is one.
    let mut with_cycle = graph.clone();
    with_cycle
        .get_mut("diffusion")
        .unwrap()
        .insert("model".to_string());
    assert!(find_cycle(&with_cycle).is_some());
}

#[test]
fn the_library_sees_no_command_line() {
    for (_, path) in library_files() {
        let text = code(&path);
        assert!(!text.contains("clap"), "{} uses clap", path.display());
        // A flag is a string starting with two dashes and a letter.
        let flag = text
            .match_indices("\"--")
            .find(|(i, _)| text[i + 3..].starts_with(|c: char| c.is_ascii_lowercase()));
        assert!(
            flag.is_none(),
            "{} names a flag: {}",
            path.display(),
            &text[flag.unwrap().0..(flag.unwrap().0 + 20).min(text.len())]
        );
    }
}
