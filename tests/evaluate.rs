//! `evaluate`: outputs on a small real-shaped case, and each bad input against its error.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use scengen::baselines::{generate_baseline, BaselineConfig, Method};
use scengen::data::SplitChoice;
use scengen::error::Result;
use scengen::evaluate::{EvaluateConfig, Evaluation};
use scengen::report::StageReport;

/// Runs the evaluation and writes its report, as `scengen evaluate` does.
fn evaluate(config: &EvaluateConfig) -> Result<Evaluation> {
    let evaluation = scengen::evaluate::run(config)?;
    evaluation.write(&config.out)?;
    Ok(evaluation)
}
use scengen::io::parse_date;
use scengen::scenarios::ScenarioWriter;
use scengen::Error;

const CHOL: [f64; 4] = [1.0, 0.0, 0.5, 1.0];

/// 300 windows of 10 days over two assets, the last third after 2002-06-01 (the test split).
fn windows(dir: &Path) -> PathBuf {
    let data = dir.join("w.parquet");
    write_gaussian_windows(&data, &CHOL, 2, 10, 300, 2.0, 4);
    data
}

fn test_from() -> i32 {
    parse_date("t", "2002-06-01").unwrap()
}

fn scenarios(dir: &Path, data: &Path, regime: &str, method: Method) -> PathBuf {
    let out = dir.join(format!("{regime}-{}.parquet", method.name()));
    generate_baseline(&BaselineConfig {
        method,
        data: data.to_path_buf(),
        regime: regime.into(),
        n: 300,
        seed: 1,
        test_from: test_from(),
        block_length: None,
        out: out.clone(),
        shard: Default::default(),
        as_of: None,
        ..BaselineConfig::default()
    })
    .unwrap();
    out
}

fn config(data: &Path, files: Vec<PathBuf>, out: &Path) -> EvaluateConfig {
    EvaluateConfig {
        real: data.to_path_buf(),
        regime: "stressed".into(),
        split: SplitChoice::Test,
        test_from: test_from(),
        synthetic: files.into_iter().map(|f| (f, None)).collect(),
        distance_to: None,
        without: Vec::new(),
        out: out.to_path_buf(),
    }
}

#[test]
fn writes_a_self_contained_report_and_stable_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = windows(dir.path());
    let files = vec![
        scenarios(dir.path(), &data, "stressed", Method::Gaussian),
        scenarios(dir.path(), &data, "stressed", Method::Bootstrap),
    ];
    let out = dir.path().join("report");
    let e = evaluate(&config(&data, files, &out)).unwrap();
    assert_eq!(e.sets.len(), 2);
    assert_eq!(e.sets[0].label, "stressed-gaussian");
    // Each set says how it was generated, from its file's metadata.
    let generator = &e.sets[1].generator;
    assert_eq!(generator["method"], "bootstrap");
    assert_eq!(generator["seed"], "1");
    assert!(generator["parameters"].contains("mean_block_length"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Scenario sets") && html.contains("method: bootstrap; parameters: "));
    assert!(html.contains("<svg") && html.contains("Summary") && html.contains("noise floor"));
    assert!(
        !html.contains("http://") || !html.contains("<script"),
        "no network resources"
    );
    assert!(!html.contains("<script") && !html.contains("<link"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "regime",
        "split",
        "reference",
        "sets",
        "noise_floor",
        "headline",
        "p_values_note",
    ] {
        assert!(json.get(key).is_some(), "metrics.json lacks {key}");
    }
    let keys: Vec<&str> = json["headline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"ks_daily_median")
            && keys.contains(&"ew_vol_annual")
            && keys.contains(&"memorization_share")
            && keys.contains(&"path_vol_dispersion_median")
            && keys.contains(&"within_path_kurtosis_median")
    );
    // Bootstrap paths are real train days: Gaussian days are not, and KS on daily returns is
    // the same either way for i.i.d. data; volatility of both is the real one within 20%.
    let vol_row = e
        .headline
        .iter()
        .find(|r| r.key == "ew_vol_annual")
        .unwrap();
    let real = vol_row.reference.unwrap();
    for v in &vol_row.values[..2] {
        assert!((v / real - 1.0).abs() < 0.2, "vol {v} vs real {real}");
    }
}

#[test]
fn an_out_folder_is_replaced_only_when_the_report_rewrites_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = windows(dir.path());
    let files = vec![scenarios(dir.path(), &data, "stressed", Method::Gaussian)];
    // A folder of other things (`--out .`, a typo): refused, untouched, nothing left beside it.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(theirs.join("sub")).unwrap();
    std::fs::write(theirs.join("sub").join("notes.txt"), "keep").unwrap();
    std::fs::write(theirs.join("metrics.json"), "{}").unwrap();
    let e = evaluate(&config(&data, files.clone(), &theirs)).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { ref path, ref reason } if path == &theirs && reason.contains("(sub)")),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("sub").join("notes.txt")).unwrap(),
        "keep"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("theirs"))
            .unwrap()
            .count(),
        2
    );
    let hidden = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(hidden, 0, "no temporary left");
    // A file where the folder would go.
    let file = dir.path().join("report.txt");
    std::fs::write(&file, "keep").unwrap();
    let e = evaluate(&config(&data, files.clone(), &file)).unwrap_err();
    assert!(e.to_string().contains("is a file"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    // A previous report of the same files, or an empty folder: replaced.
    let out = dir.path().join("report");
    evaluate(&config(&data, files.clone(), &out)).unwrap();
    std::fs::write(out.join("metrics.json"), "{}").unwrap();
    evaluate(&config(&data, files, &out)).unwrap();
    assert!(
        std::fs::read_to_string(out.join("metrics.json"))
            .unwrap()
            .len()
            > 2
    );
}

#[test]
fn scenario_files_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = windows(dir.path());
    let out = dir.path().join("report");
    let write = |name: &str, assets: &[&str], regime: &str, window: usize| {
        let path = dir.path().join(name);
        let names: Vec<String> = assets.iter().map(|s| s.to_string()).collect();
        let mut w =
            ScenarioWriter::create(&path, &names, regime, window, Default::default()).unwrap();
        w.write_paths(0, &vec![0.001; window * assets.len() * 5])
            .unwrap();
        w.finish().unwrap();
        path
    };
    let other_assets = write("a.parquet", &["A0", "B1"], "stressed", 10);
    let e = evaluate(&config(&data, vec![other_assets], &out)).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { ref reason, .. } if reason.contains("assets")),
        "{e}"
    );
    let other_horizon = write("h.parquet", &["A0", "A1"], "stressed", 20);
    let e = evaluate(&config(&data, vec![other_horizon], &out)).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { ref reason, .. } if reason.contains("20 days")),
        "{e}"
    );
    let other_regime = write("r.parquet", &["A0", "A1"], "calm", 10);
    let e = evaluate(&config(&data, vec![other_regime.clone()], &out)).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { ref reason, .. } if reason.contains("calm")),
        "{e}"
    );

    let good = write("g.parquet", &["A0", "A1"], "stressed", 10);
    let mut c = config(&data, vec![good.clone(), good.clone()], &out);
    c.synthetic[1].1 = Some("g".into());
    let e = evaluate(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref value, .. } if option == "label" && value == "g"),
        "{e}"
    );
    // A blank label would be a nameless row of the report.
    let mut c = config(&data, vec![good.clone()], &out);
    c.synthetic[0].1 = Some(" ".into());
    let e = evaluate(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref reason, .. } if option == "label" && reason.contains("g.parquet")),
        "{e}"
    );
    let mut c = config(&data, vec![good.clone()], &out);
    c.regime = "crash".into();
    let e = evaluate(&c).unwrap_err();
    assert!(matches!(e, Error::UnknownRegime { .. }), "{e}");
    let mut c = config(&data, vec![good], &out);
    c.test_from = parse_date("t", "2100-01-01").unwrap();
    let e = evaluate(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "split"),
        "{e}"
    );
    assert!(!out.exists(), "no report is left behind");
}

#[test]
fn energy_distances_to_a_chosen_set_tell_its_law_from_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = windows(dir.path());
    let gaussian = scenarios(dir.path(), &data, "stressed", Method::Gaussian);
    // Bootstrap paths are the train windows' days, drawn from the same Gaussian law.
    let bootstrap = scenarios(dir.path(), &data, "stressed", Method::Bootstrap);
    // The same paths at half their size: another law.
    let halved = dir.path().join("halved.parquet");
    let set = scengen::scenarios::read_scenarios(&gaussian).unwrap();
    let mut w = ScenarioWriter::create(
        &halved,
        &set.assets,
        "stressed",
        set.window,
        Default::default(),
    )
    .unwrap();
    let values: Vec<f64> = set.values.iter().map(|v| v * 0.5).collect();
    w.write_paths(0, &values).unwrap();
    w.finish().unwrap();
    let out = dir.path().join("report");
    let mut c = config(&data, vec![gaussian, bootstrap, halved], &out);
    c.distance_to = Some("stressed-gaussian".into());
    let e = evaluate(&c).unwrap();
    assert_eq!(e.sets[0].energy_distance, None, "no distance to itself");
    let (same, other) = (
        e.sets[1].energy_distance.unwrap(),
        e.sets[2].energy_distance.unwrap(),
    );
    assert!(same < 0.2 * other, "same law {same}, halved {other}");
    let row = e.headline.last().unwrap();
    assert_eq!((row.key, row.best), ("energy_distance", Some(1)));
    assert!(row.values[0].is_nan() && row.values[3].is_nan());

    let out = dir.path().join("report-2");
    c.out = out.clone();
    c.distance_to = Some("ddpm".into());
    let e = evaluate(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref value, .. } if option == "distance-to" && value == "ddpm"),
        "{e}"
    );
    assert!(!out.exists(), "no report is left behind");
}

/// `without` leaves out exactly the reference windows that hold the day (counted here from the
/// windows file), the noise floor's with them, records it, and refuses a day the file lacks.
#[test]
fn windows_holding_a_left_out_day_leave_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let data = windows(dir.path());
    let fhs = scenarios(dir.path(), &data, "stressed", Method::Bootstrap);
    let set = scengen::data::WindowSet::read(&data).unwrap();
    let regime = set.rule.index_of("stressed").unwrap();
    let test = set.select(Some(regime), SplitChoice::Test, test_from());
    let day = set.windows[test[test.len() / 2]].start_date;
    let holding = test
        .iter()
        .filter(|&&w| (set.windows[w].start_date..=set.windows[w].end_date).contains(&day))
        .count();
    assert!(holding >= 1);

    let all = evaluate(&config(&data, vec![fhs.clone()], &dir.path().join("all"))).unwrap();
    let mut c = config(&data, vec![fhs.clone()], &dir.path().join("without"));
    c.without = vec![day];
    let without = evaluate(&c).unwrap();
    assert_eq!(all.reference_windows, test.len());
    assert_eq!(without.reference_windows, test.len() - holding);
    assert_eq!(without.left_out_windows, holding);
    assert_ne!(
        all.reference.portfolio.vol_annual,
        without.reference.portfolio.vol_annual
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("without/metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["without"][0], scengen::io::format_date(day).as_str());
    assert_eq!(json["left_out_windows"], holding);

    let out = dir.path().join("missing");
    let mut c = config(&data, vec![fhs.clone()], &out);
    c.without = vec![day, day];
    let e = evaluate(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref reason, .. } if option == "without" && reason.contains("twice")),
        "{e}"
    );
    let mut c = config(&data, vec![fhs], &out);
    c.without = vec![parse_date("t", "1900-01-01").unwrap()];
    let e = evaluate(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref value, .. } if option == "without" && value == "1900-01-01"),
        "{e}"
    );
    assert!(!out.exists(), "nothing is written");
}
