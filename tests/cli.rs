//! Comma-separated option values: every list option refuses an empty entry by name, before
//! any file is read or written.

use clap::Parser;
use scengen::cli::{run, Cli};
use scengen::error::Error;

/// Parses `args` as a command line, runs it, and returns the error it must end in.
fn option_error(args: &[&str]) -> (String, String) {
    let cli = Cli::try_parse_from(std::iter::once("scengen").chain(args.iter().copied()))
        .expect("the command line parses");
    match run(cli).expect_err("a bad list must fail") {
        Error::InvalidOption { option, reason, .. } => (option, reason),
        other => panic!("expected an option error, got: {other}"),
    }
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
        let args = ["var-backtest", "--out", out, option, value];
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
