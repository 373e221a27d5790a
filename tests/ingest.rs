//! Ingest on the embedded data and on every kind of bad input.

mod common;
#[path = "ingest/synthetic.rs"]
mod synthetic;

use std::path::{Path, PathBuf};

use common::*;
use scengen::data::{
    ingest, realized_vol, IngestConfig, OnMissing, Panel, RegimeRule, SignalSource, Split,
    SplitChoice, ValueKind, WindowSet,
};
use scengen::io::parse_date;
use scengen::Error;

fn embedded_config(out: &Path) -> IngestConfig {
    let mut c = IngestConfig::embedded(out);
    c.input = embedded_prices();
    c.signal = SignalSource::RealizedVol {
        path: embedded_index(),
        column: "SPX".into(),
    };
    c
}

#[test]
fn embedded_windows_are_log_returns_labelled_without_look_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.parquet");
    let summary = ingest(&embedded_config(&out)).unwrap();
    assert_eq!(summary.rows_read, 8313);
    assert_eq!(summary.windows_cut, 8283);
    // The first 21 windows have fewer than 21 index returns before them.
    assert_eq!(summary.dropped_no_signal, 21);
    assert_eq!(summary.windows_written, 8262);

    let set = WindowSet::read(&out).unwrap();
    assert_eq!(set.len(), 8262);
    assert_eq!(set.window, 30);
    assert_eq!(set.assets.len(), 20);

    let prices = Panel::read(&embedded_prices(), "date", None).unwrap();
    let index = Panel::read(&embedded_index(), "date", None).unwrap();
    let spx = &index.columns[0];
    let rule = RegimeRule::default();
    for w in [0usize, 1, 17, 1000, 4321, 8000, 8261] {
        let info = set.windows[w];
        let values = set.window_values(w);
        // Row of the source file holding the window's first return date.
        let first = prices
            .dates
            .iter()
            .position(|d| *d == info.start_date)
            .unwrap();
        for step in 0..set.window {
            let row = first + step;
            assert_eq!(set.dates[w * set.window + step], prices.dates[row]);
            for (a, col) in prices.columns.iter().enumerate() {
                let expected = (col[row] / col[row - 1]).ln();
                let got = values[step * set.assets.len() + a];
                assert!(
                    (got - expected).abs() < 1e-15,
                    "window {w} step {step} asset {a}"
                );
            }
        }
        // Signal: 21 SPX log returns ending at the close before the window's first day.
        let irow = index
            .dates
            .iter()
            .position(|d| *d == info.start_date)
            .unwrap();
        let r: Vec<f64> = (irow - 21..irow)
            .map(|i| (spx[i] / spx[i - 1]).ln())
            .collect();
        let m = r.iter().sum::<f64>() / 21.0;
        let sd = (r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 20.0).sqrt();
        let vol = sd * 252f64.sqrt() * 100.0;
        assert_eq!(info.regime, rule.classify(vol), "window {w} vol {vol}");
        assert!(r.len() == 21 && irow >= 22);
    }
    // The realised-volatility signal agrees with the data's README: median about 13.
    let idx_ret: Vec<f64> = spx.windows(2).map(|p| (p[1] / p[0]).ln()).collect();
    let mut vols: Vec<f64> = realized_vol(&index.dates[1..], &idx_ret)
        .into_values()
        .collect();
    vols.sort_by(f64::total_cmp);
    let median = vols[vols.len() / 2];
    assert!((12.0..14.0).contains(&median), "median vol {median}");
}

#[test]
fn split_assigns_train_test_and_straddling_windows() {
    let t = parse_date("--test-from", "2016-01-01").unwrap();
    assert_eq!(Split::of(t - 40, t - 1, t), Split::Train);
    assert_eq!(Split::of(t, t + 40, t), Split::Test);
    assert_eq!(Split::of(t - 10, t + 30, t), Split::Neither);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.parquet");
    ingest(&embedded_config(&out)).unwrap();
    let set = WindowSet::read(&out).unwrap();
    let train = set.select(None, SplitChoice::Train, t);
    let test = set.select(None, SplitChoice::Test, t);
    assert!(train.iter().all(|&i| set.windows[i].end_date < t));
    assert!(test.iter().all(|&i| set.windows[i].start_date >= t));
    // 29 windows straddle the boundary, one per trading day of overlap.
    assert_eq!(set.len() - train.len() - test.len(), 29);
}

#[test]
fn winsorize_clips_each_asset_to_its_quantiles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w.parquet");
    let mut c = embedded_config(&out);
    c.winsorize = Some(0.001);
    ingest(&c).unwrap();
    let set = WindowSet::read(&out).unwrap();
    let max = set.returns.iter().fold(0f64, |m, r| m.max(r.abs()));
    assert!(max < 0.5, "largest |return| after winsorising: {max}");
    assert!(set.metadata["scengen.winsorize"].contains("bounds"));
}

// ---- bad input: each names its fault, exits with an error and leaves no file ----

struct Case {
    dir: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("panel.parquet");
        let out = dir.path().join("out").join("windows.parquet");
        Case { dir, input, out }
    }

    fn config(&self) -> IngestConfig {
        let mut c = embedded_config(&self.out);
        c.input = self.input.clone();
        c.window = 5;
        // A level signal over the test panel's own dates: always available.
        let signal = self.dir.path().join("signal.parquet");
        if !signal.exists() {
            write_panel(&signal, &days(60), vec![Col::F64("VIX", vec![20.0; 60])]);
        }
        c.signal = SignalSource::Level {
            path: signal,
            column: "VIX".into(),
        };
        c
    }

    fn fail(&self, config: &IngestConfig) -> Error {
        let err = ingest(config).expect_err("bad input must fail");
        let out_dir = self.out.parent().unwrap();
        if out_dir.exists() {
            assert!(
                files_in(out_dir).is_empty(),
                "left behind: {:?}",
                files_in(out_dir)
            );
        }
        err
    }
}

#[test]
fn good_small_panel_passes() {
    let case = Case::new();
    write_panel(&case.input, &days(40), vec![Col::F64("A", prices(40, 1))]);
    let s = ingest(&case.config()).unwrap();
    assert_eq!(s.windows_written, 35);
}

// Processes are looked up in /proc, which only Linux has.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_run_s_temporaries_are_removed_by_the_next_run() {
    let case = Case::new();
    write_panel(&case.input, &days(40), vec![Col::F64("A", prices(40, 1))]);
    let out_dir = case.out.parent().unwrap();
    std::fs::create_dir_all(out_dir).unwrap();
    // Process ids no system hands out: their runs are gone. Process 1 always runs.
    let stale_file = out_dir.join(".windows.parquet.4294967295.tmp");
    let stale_dir = out_dir.join(".windows.parquet.4294967294.old");
    let running = out_dir.join(".windows.parquet.1.tmp");
    let other_target = out_dir.join(".other.parquet.4294967295.tmp");
    // A killed process stays a zombie until its parent reaps it: this one until the end.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let zombie_stat = format!("/proc/{}/stat", child.id());
    let ended = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::read_to_string(&zombie_stat).is_ok_and(|s| s.contains(") Z"))
    });
    assert!(ended, "the child did not end");
    let zombie = out_dir.join(format!(".windows.parquet.{}.tmp", child.id()));
    for f in [&stale_file, &running, &other_target, &zombie] {
        std::fs::write(f, b"half a file").unwrap();
    }
    std::fs::create_dir_all(stale_dir.join("inner")).unwrap();
    ingest(&case.config()).unwrap();
    child.wait().unwrap();
    assert!(!stale_file.exists() && !stale_dir.exists() && !zombie.exists());
    assert!(running.exists(), "a running process's temporary is its own");
    assert!(
        other_target.exists(),
        "only the target being written is cleaned"
    );
}

#[test]
fn timestamps_are_dated_in_their_own_time_zone() {
    use arrow::array::{ArrayRef, RecordBatch, TimestampSecondArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stamps.parquet");
    let dates = days(40);
    let at = |hours: i64| -> Vec<i64> {
        dates
            .iter()
            .map(|d| *d as i64 * 86_400 + hours * 3_600)
            .collect()
    };
    // January and February 2000: Tokyo is UTC+9, New York UTC-5. Midnight in Tokyo is the
    // previous day in UTC; 8 pm in New York is the next day in UTC.
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "tokyo",
            Arc::new(TimestampSecondArray::from(at(-9)).with_timezone("Asia/Tokyo")),
        ),
        (
            "new_york",
            Arc::new(TimestampSecondArray::from(at(20 + 5)).with_timezone("America/New_York")),
        ),
        (
            "offset",
            Arc::new(TimestampSecondArray::from(at(-9)).with_timezone("+09:00")),
        ),
        ("naive", Arc::new(TimestampSecondArray::from(at(23)))),
        (
            "nowhere",
            Arc::new(TimestampSecondArray::from(at(0)).with_timezone("Mars/Olympus")),
        ),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let table = scengen::io::read_parquet(&path).unwrap();
    for column in ["tokyo", "new_york", "offset", "naive"] {
        let got = scengen::io::date_column(&table, column).unwrap();
        assert_eq!(got, dates, "{column}");
    }
    let e = scengen::io::date_column(&table, "nowhere").unwrap_err();
    assert!(
        matches!(e, Error::ColumnType { ref column, ref dtype, .. } if column == "nowhere" && dtype.contains("Mars/Olympus")),
        "{e}"
    );
}

#[test]
fn missing_file() {
    let case = Case::new();
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::Io { ref path, .. } if path == &case.input),
        "{e}"
    );
}

#[test]
fn not_a_parquet_file() {
    let case = Case::new();
    std::fs::write(&case.input, "date,A\n2020-01-01,1\n").unwrap();
    let e = case.fail(&case.config());
    assert!(matches!(e, Error::NotParquet { .. }), "{e}");
}

#[test]
fn missing_date_column() {
    let case = Case::new();
    write_panel(&case.input, &days(40), vec![Col::F64("A", prices(40, 1))]);
    let mut c = case.config();
    c.date_column = "Date".into();
    let e = case.fail(&c);
    assert!(
        matches!(e, Error::MissingColumn { ref column, .. } if column == "Date"),
        "{e}"
    );
    assert!(e.to_string().contains("columns: date, A"), "{e}");
}

#[test]
fn non_numeric_asset_column() {
    let case = Case::new();
    write_panel(
        &case.input,
        &days(40),
        vec![Col::F64("A", prices(40, 1)), Col::Str("B", vec!["x"; 40])],
    );
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::ColumnType { ref column, .. } if column == "B"),
        "{e}"
    );
}

#[test]
fn unknown_asset_column() {
    let case = Case::new();
    write_panel(&case.input, &days(40), vec![Col::F64("A", prices(40, 1))]);
    let mut c = case.config();
    c.assets = Some(vec!["A".into(), "ZZZ".into()]);
    let e = case.fail(&c);
    assert!(
        matches!(e, Error::MissingColumn { ref column, .. } if column == "ZZZ"),
        "{e}"
    );
}

#[test]
fn asset_named_twice() {
    let case = Case::new();
    write_panel(
        &case.input,
        &days(40),
        vec![Col::F64("A", prices(40, 1)), Col::F64("B", prices(40, 2))],
    );
    let mut c = case.config();
    c.assets = Some(vec!["A".into(), "B".into(), "A".into()]);
    let e = case.fail(&c);
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref reason, .. }
            if option == "assets" && reason.contains("`A` is named twice (at positions 1 and 3)")),
        "{e}"
    );
    // Parquet allows two columns of one name: an asset twice makes every covariance singular.
    write_panel(
        &case.input,
        &days(40),
        vec![Col::F64("A", prices(40, 1)), Col::F64("A", prices(40, 2))],
    );
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::BadFile { ref reason, .. } if reason.contains("column `A` is used twice")),
        "{e}"
    );
}

fn panel_with(value: f64, row: usize) -> Case {
    let case = Case::new();
    let mut p = prices(40, 2);
    p[row] = value;
    write_panel(
        &case.input,
        &days(40),
        vec![Col::F64("A", prices(40, 1)), Col::F64("B", p)],
    );
    case
}

#[test]
fn nan_price_names_first_bad_date_and_column() {
    let case = panel_with(f64::NAN, 12);
    let e = case.fail(&case.config());
    match &e {
        Error::MissingValue { column, date, .. } => {
            assert_eq!(column, "B");
            assert_eq!(date, "2000-01-15");
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn infinite_price() {
    let case = panel_with(f64::INFINITY, 3);
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::BadValue { ref column, ref date, .. } if column == "B" && date == "2000-01-06"),
        "{e}"
    );
}

#[test]
fn non_positive_price() {
    let case = panel_with(0.0, 7);
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::BadValue { ref reason, .. } if reason.contains("not positive")),
        "{e}"
    );
}

#[test]
fn missing_values_dropped_or_filled_on_request() {
    let case = panel_with(f64::NAN, 12);
    let mut c = case.config();
    c.on_missing = OnMissing::Drop;
    assert_eq!(ingest(&c).unwrap().return_days, 38);
    c.on_missing = OnMissing::Ffill;
    assert_eq!(ingest(&c).unwrap().return_days, 39);
}

#[test]
fn unsorted_dates() {
    let case = Case::new();
    let mut d = days(40);
    d.swap(10, 11);
    write_panel(&case.input, &d, vec![Col::F64("A", prices(40, 1))]);
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::UnsortedDates { ref date, .. } if date == "2000-01-13"),
        "{e}"
    );
}

#[test]
fn duplicated_dates() {
    let case = Case::new();
    let mut d = days(40);
    d[11] = d[10];
    write_panel(&case.input, &d, vec![Col::F64("A", prices(40, 1))]);
    let e = case.fail(&case.config());
    assert!(
        matches!(e, Error::DuplicateDate { ref date, .. } if date == "2000-01-13"),
        "{e}"
    );
}

#[test]
fn fewer_rows_than_one_window() {
    let case = Case::new();
    write_panel(&case.input, &days(5), vec![Col::F64("A", prices(5, 1))]);
    let e = case.fail(&case.config());
    assert!(
        matches!(
            e,
            Error::TooFewRows {
                rows: 5,
                needed: 6,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn signal_without_date_overlap() {
    let case = Case::new();
    write_panel(&case.input, &days(40), vec![Col::F64("A", prices(40, 1))]);
    let signal = case.dir.path().join("vix.parquet");
    let later: Vec<i32> = days(40).iter().map(|d| d + 1000).collect();
    write_panel(&signal, &later, vec![Col::F64("VIX", vec![20.0; 40])]);
    let mut c = case.config();
    c.signal = SignalSource::Level {
        path: signal,
        column: "VIX".into(),
    };
    let e = case.fail(&c);
    assert!(
        matches!(e, Error::SignalNoOverlap { ref column, .. } if column == "VIX"),
        "{e}"
    );
}

#[test]
fn thresholds_must_increase_and_labels_match() {
    let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let e = RegimeRule::new(vec![25.0, 15.0], labels(&["a", "b", "c"])).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "thresholds"),
        "{e}"
    );
    let e = RegimeRule::new(vec![15.0, 25.0], labels(&["a", "b"])).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "labels"),
        "{e}"
    );
    // A label names files: one that could reach outside its folder is refused.
    for bad in ["../../x", "a/b", ".hidden", "", "with space"] {
        let e =
            RegimeRule::new(vec![15.0, 25.0], labels(&[bad, "normal", "high-vix"])).unwrap_err();
        assert!(
            matches!(e, Error::InvalidOption { ref option, .. } if option == "labels"),
            "{bad}: {e}"
        );
    }
    RegimeRule::new(vec![15.0, 25.0], labels(&["calm_1", "mid.2", "Stress-3"])).unwrap();
    assert_eq!(RegimeRule::default().classify(14.99), 0);
    assert_eq!(RegimeRule::default().classify(15.0), 1);
    assert_eq!(RegimeRule::default().classify(25.0), 2);
}

#[test]
fn returns_panels_simple_and_log() {
    let case = Case::new();
    let p = prices(41, 3);
    let simple: Vec<f64> = p.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    write_panel(&case.input, &days(41)[1..], vec![Col::F64("A", simple)]);
    let mut c = case.config();
    c.kind = ValueKind::SimpleReturns;
    ingest(&c).unwrap();
    let set = WindowSet::read(&case.out).unwrap();
    // Row 0's base date is unknown, so the first window starts on the second row.
    let expected = (p[2] / p[1]).ln();
    assert!((set.returns[0] - expected).abs() < 1e-14);
}

/// Fuzz: panels with awkward values (NaN, zero, negative, infinite, huge, tiny), duplicated,
/// swapped or impossible dates, a signal with holes, and awkward options (window, stride,
/// winsorizing, thresholds, labels, asset lists, kinds) are ingested or refused with an error,
/// never a panic, and a refusal leaves no file. Seeded; `SCENGEN_FUZZ_CASES=N` runs more.
#[test]
fn mutated_panels_and_options_fail_with_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (input, signal, out) = (
        dir.path().join("panel.parquet"),
        dir.path().join("signal.parquet"),
        dir.path().join("out").join("windows.parquet"),
    );
    let mut rng = scengen::rng::SeededRng::new(31, 7);
    let awkward = [
        f64::NAN,
        0.0,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e300,
        1e-300,
        -0.999999,
    ];
    let bad_dates = [i32::MIN, i32::MAX, -1, 0, 2_932_897];
    let (mut written, mut refused) = (0, 0);
    for case in 0..fuzz_cases(300) {
        let mut pick = |n: usize| rng.below(n);
        let n = [3, 10, 40, 80, 80, 80][pick(6)];
        let kind = [
            ValueKind::Prices,
            ValueKind::LogReturns,
            ValueKind::SimpleReturns,
        ][pick(3)];
        let mut dates = days(n);
        let mut cols: Vec<Vec<f64>> = (0..3)
            .map(|i| {
                let p = prices(n, (case * 3 + i) as u64);
                match kind {
                    ValueKind::Prices => p,
                    _ => p
                        .windows(2)
                        .map(|w| w[1] / w[0] - 1.0)
                        .chain([0.0])
                        .collect(),
                }
            })
            .collect();
        let mut vix = vec![20.0; n];
        let mut what = vec![format!("{n} days of {kind:?}")];
        for _ in 0..pick(3) {
            let (row, other) = (pick(n), pick(n));
            match pick(5) {
                0 | 1 => {
                    let (col, value) = (pick(3), awkward[pick(awkward.len())]);
                    cols[col][row] = value;
                    what.push(format!("column {col} row {row} = {value}"));
                }
                2 => {
                    dates[row] = dates[other];
                    what.push(format!("date {row} = date {other}"));
                }
                3 => {
                    dates.swap(row, other);
                    what.push(format!("dates {row} and {other} swapped"));
                }
                _ => {
                    let value = if pick(2) == 0 {
                        vix[row] = awkward[pick(awkward.len())];
                        format!("signal row {row} = {}", vix[row])
                    } else {
                        dates[row] = bad_dates[pick(bad_dates.len())];
                        format!("date {row} = day {}", dates[row])
                    };
                    what.push(value);
                }
            }
        }
        let [a, b, c] = [cols[0].clone(), cols[1].clone(), cols[2].clone()];
        write_panel(
            &input,
            &dates,
            vec![Col::F64("A", a), Col::F64("B", b), Col::F64("C", c)],
        );
        write_panel(&signal, &days(n), vec![Col::F64("VIX", vix)]);
        let mut config = IngestConfig::embedded(&out);
        config.input = input.clone();
        config.kind = kind;
        config.window = [5, 5, 5, 5, 0, 1, 2, n.saturating_sub(1), n, n + 1, 1000][pick(11)];
        config.stride = [1, 1, 1, 0, 3, 1000][pick(6)];
        config.winsorize = [
            None,
            None,
            None,
            Some(0.0),
            Some(-1.0),
            Some(f64::NAN),
            Some(3.0),
            Some(1e300),
        ][pick(8)];
        config.on_missing = [OnMissing::Error, OnMissing::Drop, OnMissing::Ffill][pick(3)];
        config.assets = [
            None,
            None,
            None,
            Some(vec!["A".to_string()]),
            Some(vec!["Z".to_string()]),
            Some(vec![]),
            Some(vec!["A".to_string(), "A".to_string()]),
        ][pick(7)]
        .clone();
        let thresholds = [
            vec![15.0, 25.0],
            vec![15.0, 25.0],
            vec![15.0, 25.0],
            vec![25.0, 15.0],
            vec![f64::NAN],
            vec![],
            vec![15.0, 15.0],
            vec![-1.0, 1e300],
        ][pick(8)]
        .clone();
        let labels = ["calm", "mid", "wild", "extra"];
        let count = (thresholds.len() + 1 + pick(4) / 3).min(labels.len());
        config.rule = RegimeRule {
            thresholds,
            labels: labels[..count].iter().map(|l| l.to_string()).collect(),
        };
        config.signal = if pick(2) == 0 {
            SignalSource::Level {
                path: signal.clone(),
                column: "VIX".into(),
            }
        } else {
            SignalSource::RealizedVol {
                path: input.clone(),
                column: "A".into(),
            }
        };
        // Half the cases keep the options sound, so that the panel's faults reach the deeper
        // steps rather than stopping at a bad option.
        if pick(2) == 0 {
            config.window = 5;
            config.stride = 1;
            config.winsorize = None;
            config.assets = None;
            config.rule = RegimeRule {
                thresholds: vec![15.0, 25.0],
                labels: labels[..3].iter().map(|l| l.to_string()).collect(),
            };
        }
        let label = format!("case {case}: {}; {config:?}", what.join("; "));
        match no_panic(&label, || ingest(&config)) {
            Ok(_) => written += 1,
            Err(e) => {
                if std::env::var("FUZZ_DEBUG").is_ok() {
                    eprintln!("{e}");
                }
                refused += 1;
                assert!(!out.exists(), "{label}: an output was left");
            }
        }
        let _ = std::fs::remove_file(&out);
        if let Some(folder) = out.parent().filter(|f| f.exists()) {
            assert!(
                files_in(folder).is_empty(),
                "{label}: {:?}",
                files_in(folder)
            );
        }
    }
    eprintln!("ingest fuzz: {written} written, {refused} refused, none panicked");
    assert!(
        written > 0 && refused > 0,
        "{written} written, {refused} refused"
    );
}
