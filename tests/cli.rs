//! The command line's edge: comma-separated option values (every list option refuses an empty
//! entry by name, before any file is read or written), and a setting the library refuses is
//! reported under its flag. The library's layout rules (`cli/architecture.rs`) and the outputs
//! it replaces (`cli/outputs.rs`) are checked here too, in one test binary.

#[path = "cli/architecture.rs"]
mod architecture;
#[path = "cli/outputs.rs"]
mod outputs;
#[path = "cli/run.rs"]
mod run;

use std::process::Command;

/// Runs the `scengen` binary with `args`, which must fail with exit status 1 and an option
/// error; returns the option it names and the reason.
fn option_error(args: &[&str]) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_scengen"))
        .args(args)
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // error: option --levels: invalid value `0.95,,`: entry 2 of 3 is empty
    let rest = stderr
        .trim_end()
        .strip_prefix("error: option ")
        .unwrap_or_else(|| panic!("expected an option error, got: {stderr}"));
    let (option, rest) = rest
        .split_once(": invalid value `")
        .expect("an option error");
    let (_, reason) = rest.split_once("`: ").expect("a reason");
    (option.to_string(), reason.to_string())
}

#[test]
fn list_options_refuse_empty_entries_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let risk = |option: &str, value: &str| {
        let args = [
            "risk",
            "--portfolio",
            "book.toml",
            "--scenarios",
            "x.parquet",
            "--out",
            out,
            option,
            value,
        ];
        option_error(&args)
    };
    let var_backtest = |option: &str, value: &str| {
        let args = [
            "var-backtest",
            "--portfolio",
            "book.toml",
            "--out",
            out,
            option,
            value,
        ];
        option_error(&args)
    };
    let ingest = |option: &str, value: &str| {
        let args = ["ingest", "--out", out, option, value];
        option_error(&args)
    };

    let cases = [
        (
            risk("--levels", "0.95,,"),
            "--levels",
            "entry 2 of 3 is empty",
        ),
        (
            risk("--levels", "0.95,0.99,"),
            "--levels",
            "entry 3 of 3 is empty",
        ),
        (
            risk("--horizons", ",10"),
            "--horizons",
            "entry 1 of 2 is empty",
        ),
        (risk("--horizons", " "), "--horizons", "the list is empty"),
        (
            var_backtest("--horizons", "1,,10"),
            "--horizons",
            "entry 2 of 3 is empty",
        ),
        (
            var_backtest("--horizons", "1,2.5"),
            "--horizons",
            "`2.5` is not a whole number of days",
        ),
        (
            var_backtest("--levels", "0.99,"),
            "--levels",
            "entry 2 of 2 is empty",
        ),
        (
            ingest("--assets", "AAPL,,MSFT"),
            "--assets",
            "entry 2 of 3 is empty",
        ),
        (ingest("--assets", ""), "--assets", "the list is empty"),
        (
            ingest("--thresholds", "15,,25"),
            "--thresholds",
            "entry 2 of 3 is empty",
        ),
        (
            ingest("--labels", "calm,normal,"),
            "--labels",
            "entry 3 of 3 is empty",
        ),
    ];
    for ((option, reason), expected_option, expected_reason) in cases {
        assert_eq!(option, expected_option, "{reason}");
        assert!(reason.contains(expected_reason), "{option}: {reason}");
    }
    assert!(!dir.path().join("out").exists());

    // Spaces around entries are still allowed.
    let (option, reason) = risk("--levels", "0.95, 0.99 ,x");
    assert_eq!(option, "--levels");
    assert!(reason.contains("`x` is not a number"), "{reason}");
}

#[test]
fn library_settings_are_reported_under_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let out = out.to_str().unwrap();
    let train = |option: &str, value: &str| option_error(&["train", "--out", out, option, value]);
    let cases = [
        (train("--lr", "0"), "--lr", "must be a positive number"),
        (train("--epochs", "0"), "--epochs", "must be at least 1"),
        (
            train("--regime-dropout", "1"),
            "--regime-dropout",
            "must lie in [0, 1)",
        ),
        (
            train("--volatility-levels", "0"),
            "--volatility-levels",
            "must be at least 1",
        ),
    ];
    for ((option, reason), expected_option, expected_reason) in cases {
        assert_eq!(option, expected_option, "{reason}");
        assert!(reason.contains(expected_reason), "{option}: {reason}");
    }
    assert!(!dir.path().join("model").exists());
}

/// Exit statuses tell an unattended job whose problem a failure is: 1 for bad input (the
/// user's to fix), 3 for a failure outside the inputs (a full disk, a computation that failed).
#[test]
fn exit_statuses_separate_bad_input_from_failures() {
    use scengen::error::{EXIT_BAD_INPUT, EXIT_FAILURE};
    use std::io::{Error as IoError, ErrorKind};
    let io = |kind| scengen::Error::Io {
        path: "x".into(),
        source: IoError::from(kind),
    };
    assert_eq!(io(ErrorKind::NotFound).exit_code(), EXIT_BAD_INPUT);
    assert_eq!(io(ErrorKind::PermissionDenied).exit_code(), EXIT_BAD_INPUT);
    assert_eq!(io(ErrorKind::StorageFull).exit_code(), EXIT_FAILURE);
    assert_eq!(
        scengen::Error::option("n", 0, "at least 1").exit_code(),
        EXIT_BAD_INPUT
    );
    assert_eq!(
        scengen::Error::Training("loss is NaN".into()).exit_code(),
        EXIT_FAILURE
    );
    // End to end: a missing input file is the user's to fix, and the output's folder, made
    // to hold its lock, is not left behind.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("models").join("m");
    let output = Command::new(env!("CARGO_BIN_EXE_scengen"))
        .args(["train", "--data", "no-such-windows.parquet", "--out"])
        .arg(&out)
        .output()
        .expect("the binary runs");
    assert_eq!(output.status.code(), Some(EXIT_BAD_INPUT));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `var-backtest` without `--portfolio` backtests the example book, and says so (it did so
/// silently).
#[test]
fn var_backtest_names_the_example_book_it_falls_back_to() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_scengen"))
        .args(["var-backtest", "--scenarios", "no-such-folder", "--out"])
        .arg(dir.path().join("out"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "no --portfolio given; backtesting the example book data/example_portfolio.toml"
        ),
        "{stderr}"
    );
}

/// Sharded generation: 4 parts written by 4 concurrent processes hold exactly the unsharded
/// run's paths, value for value, and `evaluate` reads the folder of parts as one set, with the
/// same metrics as the single file.
#[test]
fn four_concurrent_shards_are_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_scengen"));
        c.current_dir(dir.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(args);
        c
    };
    let ok = |mut c: Command| {
        let out = c.output().expect("the binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let prices = format!("{root}/data/sp500_20_prices.parquet");
    let index = format!("{root}/data/sp500_index.parquet:SPX");
    ok(run(&[
        "ingest",
        "--input",
        &prices,
        "--index",
        &index,
        "--out",
        "w.parquet",
    ]));
    let generate = |out: &str, shard: Option<&str>| {
        let mut c = run(&[
            "generate",
            "--method",
            "bootstrap",
            "--data",
            "w.parquet",
            "--regime",
            "high-vix",
            "--n",
            "1001",
            "--seed",
            "3",
            "--out",
            out,
        ]);
        if let Some(s) = shard {
            c.args(["--shard", s]);
        }
        c
    };
    let parts: Vec<_> = (0..4)
        .map(|i| {
            let out = format!("ds/bootstrap/regime=high-vix/part-{i}.parquet");
            generate(&out, Some(&format!("{i}/4")))
                .spawn()
                .expect("the binary starts")
        })
        .collect();
    for mut p in parts {
        assert!(p.wait().unwrap().success());
    }
    ok(generate("whole.parquet", None));
    let read = |p: &str| scengen::scenarios::read_scenarios(&dir.path().join(p)).unwrap();
    // The dataset layout gives one set per regime folder.
    let sets = scengen::scenarios::scenario_files(&[dir.path().join("ds")]).unwrap();
    assert_eq!(sets, [dir.path().join("ds/bootstrap/regime=high-vix")]);
    std::fs::rename(
        dir.path().join("ds/bootstrap/regime=high-vix"),
        dir.path().join("parts"),
    )
    .unwrap();
    let (parts, whole) = (read("parts"), read("whole.parquet"));
    assert_eq!(parts.paths(), 1001);
    assert_eq!(parts.values, whole.values);
    assert_eq!(parts.metadata, whole.metadata);

    let evaluate = |synthetic: &str, out: &str| {
        run(&[
            "evaluate",
            "--real",
            "w.parquet",
            "--regime",
            "high-vix",
            "--synthetic",
            synthetic,
            "--label",
            "bootstrap",
            "--out",
            out,
        ])
    };
    ok(evaluate("parts", "r-parts"));
    ok(evaluate("whole.parquet", "r-whole"));
    let metrics = |out: &str| {
        let text = std::fs::read_to_string(dir.path().join(out).join("metrics.json")).unwrap();
        text.replace("\"parts\"", "\"whole.parquet\"")
    };
    assert_eq!(metrics("r-parts"), metrics("r-whole"));

    // A missing part is named, not read as a smaller set.
    std::fs::remove_file(dir.path().join("parts/part-2.parquet")).unwrap();
    let e = scengen::scenarios::read_scenarios(&dir.path().join("parts")).unwrap_err();
    assert!(e.to_string().contains("part 3/4"), "{e}");
}
