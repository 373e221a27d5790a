//! `scengen run --config`: a nightly run re-runs only the steps whose settings or inputs
//! changed, leaves its folder as it was when nothing did, when it is killed, and when another
//! run holds it; a mistake in the run file is named with its line before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A run folder's files: content hash and modification time by path.
fn snapshot(folder: &Path) -> BTreeMap<String, (String, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(folder).unwrap().display().to_string();
                let hash = scengen::io::sha256_file(&path).unwrap();
                let time = entry.metadata().unwrap().modified().unwrap();
                files.insert(name, (hash, time));
            }
        }
    }
    files
}

/// A small nightly run on the embedded data (classical generators only, so it takes seconds),
/// with filtered historical simulation from the last close.
struct Night {
    dir: tempfile::TempDir,
}

impl Night {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/example_portfolio.toml"),
            dir.path().join("book.toml"),
        )
        .unwrap();
        let night = Self { dir };
        night.write_config("stride = 5", "n = 300");
        night
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("night")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("nightly.toml")
    }

    fn write_config(&self, ingest: &str, generate: &str) {
        let text = format!(
            "out = \"{out}\"\ntest-from = 2016-01-01\nportfolios = [\"{book}\"]\n\n\
             [ingest]\n{ingest}\n\n[generate]\ngenerators = [\"bootstrap\", \"gaussian\"]\n\
             {generate}\n\n[as-of]\ngenerators = [\"filtered-hs\"]\nn = 300\n\n\
             [evaluate]\n\n[risk]\nresamples = 0\n\n[var-backtest]\n",
            out = self.out().display(),
            book = self.dir.path().join("book.toml").display(),
        );
        std::fs::write(self.config(), text).unwrap();
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_scengen"));
        command.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "run",
            "--config",
            self.config().to_str().unwrap(),
        ]);
        command
    }

    /// Runs it, which must succeed; the steps that ran.
    fn run(&self) -> Vec<String> {
        let output = self.command().output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let mut ran = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(line["seconds"].as_f64().unwrap() >= 0.0);
            if line["status"] == "ran" && line["step"] != "run" {
                ran.push(line["step"].as_str().unwrap().to_string());
            }
        }
        ran
    }

    /// The names in the run folder's parent besides the inputs: the run folder only, once no
    /// run is in progress.
    fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "book.toml" && n != "nightly.toml")
            .collect();
        names.sort();
        names
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_nightly_run_reruns_only_what_changed() {
    let night = Night::new();
    let first = night.run();
    assert_eq!(first.len(), 1 + 6 + 1 + 3 + 3 + 1, "{first:?}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(night.out().join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["steps"].as_array().unwrap().len(), first.len());
    let after_first = snapshot(&night.out());
    assert!(after_first.contains_key("scenarios/bootstrap/regime=high-vix/part-0.parquet"));
    // [as-of]: scenarios from the last close of the ingested prices.
    let as_of =
        scengen::scenarios::read_scenarios(&night.out().join("as-of/filtered-hs.parquet")).unwrap();
    assert_eq!(as_of.metadata["scengen.as_of"], "2022-12-28");
    assert_eq!(as_of.paths(), 300);
    // The steps ran in a hidden copy of the run folder, which no output names: the reports
    // and the files' metadata name the run folder's paths relative to it.
    for path in after_first.keys() {
        let bytes = std::fs::read(night.out().join(path)).unwrap();
        let hidden = bytes.windows(7).any(|w| w == b".night.");
        assert!(!hidden, "{path} names the hidden copy of the run folder");
    }

    assert!(night.run().is_empty(), "nothing changed, nothing runs");
    assert_eq!(
        snapshot(&night.out()),
        after_first,
        "and nothing is written"
    );

    let book = night.dir.path().join("book.toml");
    let text = std::fs::read_to_string(&book).unwrap();
    std::fs::write(&book, text.replace("KO = 400_000", "KO = 450_000")).unwrap();
    let ran = night.run();
    let expected: Vec<String> = [
        "risk book low-vix",
        "risk book normal",
        "risk book high-vix",
    ]
    .into_iter()
    .chain(["var-backtest book"])
    .map(String::from)
    .collect();
    assert_eq!(
        ran, expected,
        "a changed book re-runs its risk and its VaR backtest only"
    );
    let after_book = snapshot(&night.out());
    for (path, file) in &after_first {
        let rewritten = ["risk/", "var-backtest/", "manifest.json", "log.jsonl"];
        if !rewritten.iter().any(|r| path.starts_with(r)) {
            assert_eq!(
                after_book.get(path),
                Some(file),
                "{path} was kept as it was"
            );
        }
    }

    night.write_config("stride = 5", "n = 400");
    let ran = night.run();
    assert!(!ran.contains(&"ingest".to_string()), "{ran:?}");
    assert_eq!(
        ran.len(),
        6 + 3 + 3 + 1,
        "generation and all after it: {ran:?}"
    );
    assert_eq!(night.leftovers(), ["night"]);
}

#[test]
fn a_killed_or_refused_run_leaves_the_last_outputs_as_they_were() {
    let night = Night::new();
    night.run();
    let before = snapshot(&night.out());

    let held = scengen::io::OutputLock::acquire(&night.out()).unwrap();
    let refused = night.command().output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let holder = format!("process {}", std::process::id());
    assert!(stderr(&refused).contains(&holder), "{}", stderr(&refused));
    drop(held);
    assert_eq!(snapshot(&night.out()), before);

    // Every step has to run again; the run is killed once its hidden copy of the folder exists.
    night.write_config("stride = 4", "n = 3000");
    let mut child = night
        .command()
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let staging = format!(".night.{}.tmp", child.id());
    let started = Instant::now();
    while !night.dir.path().join(&staging).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no run folder copy appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        snapshot(&night.out()),
        before,
        "a killed run changes nothing"
    );

    let ran = night.run();
    assert_eq!(ran.len(), 15, "the next run does it all: {ran:?}");
    assert_eq!(
        night.leftovers(),
        ["night"],
        "and clears what the killed one left"
    );
}

#[test]
fn a_run_file_s_mistakes_are_named_with_their_line_before_anything_runs() {
    let night = Night::new();
    let cases: [(&str, &str, &str); 9] = [
        (
            "[covariance]\nlookbak = 5\n",
            "line 24: unknown key `lookbak` in [covariance]",
            "",
        ),
        (
            "[covariance]\nout = \"x\"\n",
            "line 24: `out` in [covariance] is set by the run",
            "",
        ),
        ("[covarianse]\n", "line 23", "unknown field `covarianse`"),
        ("[as-of] gaussian", "[as-of]", "`gaussian` has no state"),
        (
            "[backtest]\nrebalance = \"daily\"\n",
            "[backtest]",
            "--rebalance",
        ),
        ("[train]\n", "[train]", "top-level `model`"),
        ("[distill]\n", "[distill]", "needs a model"),
        (
            "[distill]\nteacher = \"models/x\"\n",
            "`teacher` in [distill] is set by the run",
            "",
        ),
        (
            "[forecast-backtest]\nhorizons = [1, 0]\n",
            "--horizons",
            "`0`",
        ),
    ];
    for (extra, first, second) in cases {
        night.write_config("stride = 5", "n = 300");
        let config = std::fs::read_to_string(night.config()).unwrap();
        let extra = if extra == "[as-of] gaussian" {
            // A generator with no market state to start from.
            let generators = "generators = [\"filtered-hs\", \"gaussian\"]";
            let text = config.replace("generators = [\"filtered-hs\"]", generators);
            std::fs::write(night.config(), text).unwrap();
            extra
        } else if extra == "[train]\n" {
            // Training and a top-level model folder both: which model is meant is unclear.
            std::fs::write(
                night.config(),
                format!("model = \"models/x\"\n{config}{extra}"),
            )
            .unwrap();
            "[train]"
        } else {
            std::fs::write(night.config(), format!("{config}\n{extra}")).unwrap();
            extra
        };
        let output = night.command().output().unwrap();
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{extra}: {message}");
        assert!(message.contains("nightly.toml"), "{extra}: {message}");
        assert!(
            message.contains(first) && message.contains(second),
            "{extra}: {message}"
        );
        assert!(night.leftovers().is_empty(), "{extra}: nothing written");
    }
}

/// A run with a [distill] section: the distill step fine-tunes the run's model into
/// `distilled`, and the diffusion scenarios are drawn from it with its few-step sampler.
#[test]
fn a_distill_section_puts_the_distilled_model_in_the_given_one_s_place() {
    let dir = tempfile::tempdir().unwrap();
    let scengen = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_scengen"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };
    let (windows, model) = (dir.path().join("windows.parquet"), dir.path().join("model"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    scengen(&["ingest", "--stride", "5", "--out", &path(&windows)]);
    scengen(&[
        "train",
        "--data",
        &path(&windows),
        "--out",
        &path(&model),
        "--epochs",
        "1",
        "--min-epochs",
        "1",
        "--channels",
        "8",
        "--gaussian-prior",
        "false",
    ]);
    let out = dir.path().join("night");
    let config = dir.path().join("nightly.toml");
    let text = format!(
        "out = \"{out}\"\nmodel = \"{model}\"\ntest-from = 2016-01-01\n\n[ingest]\nstride = 5\n\n\
         [distill]\niterations = 2\nteacher-paths = 640\n\n[generate]\n\
         generators = [\"diffusion\"]\nregimes = [\"high-vix\"]\nn = 50\n",
        out = out.display(),
        model = model.display(),
    );
    std::fs::write(&config, text).unwrap();
    scengen(&["run", "--config", &path(&config)]);
    let card = scengen::model::load_model(&out.join("distilled"), &candle_core::Device::Cpu)
        .unwrap()
        .card;
    let distilled = card.distilled.expect("a distilled card");
    assert_eq!(distilled.steps_run, 2);
    let set = scengen::scenarios::read_scenarios(
        &out.join("scenarios/diffusion/regime=high-vix/part-0.parquet"),
    )
    .unwrap();
    assert!(set.metadata["scengen.model"].ends_with("distilled"));
    assert_eq!(
        set.metadata["scengen.sampler"],
        serde_json::to_string(&distilled.sampler).unwrap()
    );
}
