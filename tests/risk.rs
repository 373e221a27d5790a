//! `scengen risk`: portfolio P&L along scenario paths and real windows, against direct
//! computations from the files; tail measures on a known distribution; each bad input by name.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{embedded_prices, embedded_windows};
use scengen::baselines::{generate_baseline, BaselineConfig, Method};
use scengen::data::{Panel, SplitChoice, WindowSet};
use scengen::io::{f64_column, parse_date, read_parquet};
use scengen::report::StageReport;
use scengen::risk::{horizon_risk, HorizonPnl, RiskConfig, RiskReport};

/// Scores the portfolio and writes the report, as `scengen risk` does.
fn run_risk(config: &RiskConfig) -> scengen::Result<RiskReport> {
    let report = scengen::risk::run(config)?;
    report.write(&config.out)?;
    Ok(report)
}
use common::assert_stage_fails_cleanly;
use scengen::rng::SeededRng;
use scengen::scenarios::read_scenarios;

const PORTFOLIO: &str = "name = \"test book\"\ncurrency = \"USD\"\n\n[positions]\n\
                         AAPL = 1_000_000\nJPM = 500_000.0\nXOM = -400_000\n";

/// The embedded windows and two baseline scenario files (high-vix bootstrap and low-vix
/// Gaussian, 2,000 paths each), built once.
fn inputs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let windows = embedded_windows(&dir);
        for (method, regime) in [
            (Method::Bootstrap, "high-vix"),
            (Method::Gaussian, "low-vix"),
        ] {
            generate_baseline(&BaselineConfig {
                method,
                data: windows.clone(),
                regime: regime.into(),
                n: 2000,
                seed: 3,
                test_from: parse_date("t", "2016-01-01").unwrap(),
                block_length: None,
                out: dir.join(format!("{regime}.parquet")),
                shard: Default::default(),
                as_of: None,
                ..BaselineConfig::default()
            })
            .unwrap();
        }
        std::fs::write(dir.join("book.toml"), PORTFOLIO).unwrap();
        dir
    })
}

fn config(out: &Path) -> RiskConfig {
    let dir = inputs();
    RiskConfig {
        portfolio: dir.join("book.toml"),
        scenarios: vec![(dir.join("high-vix.parquet"), Some("bootstrap".into()))],
        real: Some(dir.join("windows.parquet")),
        split: SplitChoice::Test,
        test_from: parse_date("t", "2016-01-01").unwrap(),
        horizons: vec![1, 10, 30],
        levels: vec![0.95, 0.99],
        resamples: 200,
        seed: 11,
        out: out.to_path_buf(),
    }
}

fn position_values() -> [(&'static str, f64); 3] {
    [("AAPL", 1e6), ("JPM", 5e5), ("XOM", -4e5)]
}

#[test]
fn pnl_and_tail_measures_follow_from_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("risk");
    let report = run_risk(&config(&out)).unwrap();
    for f in ["risk.json", "pnl.parquet", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert_eq!(report.regime, "high-vix");
    assert_eq!((report.gross, report.net), (1.9e6, 1.1e6));
    assert_eq!(report.sets.len(), 2);

    // The scenario paths: buy-and-hold P&L straight from the file's log returns.
    let scenarios = read_scenarios(&inputs().join("high-vix.parquet")).unwrap();
    let n = scenarios.assets.len();
    let set = &report.sets[0];
    assert_eq!((set.label.as_str(), set.paths), ("bootstrap", 2000));
    // It says how it was generated, from the file's metadata; the real windows have no generator.
    assert_eq!(
        set.generator["method"],
        scenarios.metadata["scengen.method"]
    );
    assert_eq!(set.generator["seed"], scenarios.metadata["scengen.seed"]);
    assert!(report.sets[1].generator.is_empty());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Scenario sets") && html.contains("<code>"));
    for (h, &days) in report.horizons.iter().enumerate() {
        for p in [0, 777, 1999] {
            let path = scenarios.path_values(p);
            let want: f64 = position_values()
                .iter()
                .map(|(asset, value)| {
                    let a = scenarios.assets.iter().position(|x| x == asset).unwrap();
                    let log: f64 = (0..days).map(|d| path[d * n + a]).sum();
                    value * (log.exp() - 1.0)
                })
                .sum();
            assert!((set.pnl[h][p] - want).abs() < 1e-6, "path {p}, {days} days");
        }
        let risk = &set.horizons[h];
        assert_eq!(risk.days, days);
        let mut sorted = set.pnl[h].clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!(risk.worst_loss, -sorted[0]);
        assert_eq!(set.pnl[h][risk.worst_path as usize], sorted[0]);
        for tail in &risk.tails {
            // k = ceil((1 − level) n) worst paths: 100 at 95%, 20 at 99%.
            let k = if tail.level == 0.95 { 100 } else { 20 };
            assert_eq!(tail.var, -sorted[k - 1]);
            let cvar = -sorted[..k].iter().sum::<f64>() / k as f64;
            assert!((tail.cvar - cvar).abs() < 1e-6 * cvar.abs());
            let total: f64 = tail.contributions.iter().sum();
            assert!((total - tail.cvar).abs() < 1e-6 * tail.cvar.abs());
            let [lo, hi] = tail.var_interval.unwrap();
            assert!(
                lo <= tail.var && tail.var <= hi && lo < hi,
                "{lo} {} {hi}",
                tail.var
            );
            let [lo, hi] = tail.cvar_interval.unwrap();
            assert!(lo <= tail.cvar && tail.cvar <= hi && lo < hi);
            assert!(tail.cvar >= tail.var);
        }
        assert!(risk.tails[1].var > risk.tails[0].var);
    }

    // The real windows: the high-vix windows of 2016 on, whose one-day P&L comes from the
    // prices of their first day and the day before.
    let windows = WindowSet::read(&inputs().join("windows.parquet")).unwrap();
    let high = windows.rule.index_of("high-vix").unwrap();
    let test_from = parse_date("t", "2016-01-01").unwrap();
    let real = &report.sets[1];
    assert_eq!(real.method, "real");
    assert_eq!(
        real.paths,
        windows
            .select(Some(high), SplitChoice::Test, test_from)
            .len()
    );
    assert!(real.horizons[0].tails[0].var_interval.is_none());
    let names: Vec<String> = position_values().iter().map(|p| p.0.into()).collect();
    let panel = Panel::read(&embedded_prices(), "date", Some(&names)).unwrap();
    for (k, &id) in real.ids.iter().enumerate().step_by(37) {
        let start = windows
            .windows
            .iter()
            .find(|w| w.id == id)
            .unwrap()
            .start_date;
        let t = panel.dates.iter().position(|d| *d == start).unwrap();
        let want: f64 = position_values()
            .iter()
            .enumerate()
            .map(|(i, (_, value))| value * (panel.columns[i][t] / panel.columns[i][t - 1] - 1.0))
            .sum();
        assert!((real.pnl[0][k] - want).abs() < 1e-6, "window {id}");
    }

    // pnl.parquet holds every P&L, set by set and horizon by horizon.
    let table = read_parquet(out.join("pnl.parquet")).unwrap();
    let pnl = f64_column(&table, "pnl").unwrap();
    assert_eq!(pnl.len(), 3 * (2000 + real.paths));
    assert_eq!(pnl[2000 + 5], set.pnl[1][5]);

    // The same seed gives the same report.
    let again = dir.path().join("again");
    run_risk(&config(&again)).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("risk.json")).unwrap(),
        std::fs::read_to_string(again.join("risk.json")).unwrap()
    );
    // And a horizon's intervals do not depend on the other horizons asked for.
    let mut alone = config(&dir.path().join("alone"));
    alone.horizons = vec![10];
    let alone = run_risk(&alone).unwrap();
    assert_eq!(
        alone.sets[0].horizons[0].tails[1].var_interval,
        set.horizons[1].tails[1].var_interval
    );
}

#[test]
fn tail_measures_of_a_normal_distribution() {
    // 20,000 standard normal P&Ls split over two positions: VaR and CVaR at 99% are 2.326 and
    // φ(2.326) / 0.01 = 2.665; the 95% bootstrap interval of the VaR should be about
    // 2 × 1.96 × √(0.99 · 0.01 / n) / φ(2.326) = 0.10 wide and contain the true value.
    let n = 20_000;
    let mut rng = SeededRng::new(1, 0);
    let mut pnl = HorizonPnl {
        total: Vec::with_capacity(n),
        by_position: Vec::with_capacity(2 * n),
    };
    for _ in 0..n {
        let (a, b) = (0.6 * rng.normal(), 0.8 * rng.normal());
        pnl.by_position.extend([a, b]);
        pnl.total.push(a + b);
    }
    let ids: Vec<u32> = (0..n as u32).collect();
    let mut boot = SeededRng::new(2, 0);
    let risk = horizon_risk(1, &pnl, &ids, &[0.99], 500, Some(&mut boot));
    let tail = &risk.tails[0];
    let [lo, hi] = tail.var_interval.unwrap();
    assert!(lo < 2.3263 && 2.3263 < hi, "[{lo}, {hi}]");
    assert!((0.07..0.14).contains(&(hi - lo)), "width {}", hi - lo);
    let [lo, hi] = tail.cvar_interval.unwrap();
    assert!(lo < 2.6652 && 2.6652 < hi, "[{lo}, {hi}]");
    // Each position's share of the tail is its share of the variance (0.36 and 0.64).
    let share = tail.contributions[0] / tail.cvar;
    assert!((share - 0.36).abs() < 0.04, "{share}");
    assert!((risk.std_dev - 1.0).abs() < 0.02);
}

fn assert_fails_cleanly(c: &RiskConfig, check: impl Fn(&str) -> bool) {
    assert_stage_fails_cleanly(scengen::risk::run(c), &c.out, |e| check(&e.to_string()));
}

#[test]
fn the_risk_run_rejects_bad_inputs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("risk");
    let book = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };

    let mut c = config(&out);
    c.portfolio = book("unknown.toml", "[positions]\nAAPL = 1\nZZZZ = 2\n");
    assert_fails_cleanly(&c, |e| {
        e.contains("unknown.toml") && e.contains("position `ZZZZ` is not an asset of")
    });

    let mut c = config(&out);
    c.portfolio = book("nan.toml", "[positions]\nAAPL = nan\n");
    assert_fails_cleanly(&c, |e| {
        e.contains("position `AAPL` has a market value of NaN")
    });

    let mut c = config(&out);
    c.portfolio = book("typo.toml", "[postions]\nAAPL = 1\n");
    assert_fails_cleanly(&c, |e| {
        e.contains("typo.toml") && e.contains("not a portfolio file") && e.contains("postions")
    });

    let mut c = config(&out);
    c.portfolio = book("empty.toml", "name = \"nothing\"\n");
    assert_fails_cleanly(&c, |e| {
        e.contains("empty.toml") && e.contains("no positions")
    });

    let mut c = config(&out);
    c.portfolio = book("text.toml", "[positions]\nAAPL = \"a lot\"\n");
    assert_fails_cleanly(&c, |e| e.contains("text.toml") && e.contains("line 2"));

    let mut c = config(&out);
    c.horizons = vec![10, 31];
    assert_fails_cleanly(&c, |e| {
        e.contains("option horizons:") && e.contains("`31`") && e.contains("30-day paths")
    });

    let mut c = config(&out);
    c.levels = vec![0.99, 99.0];
    assert_fails_cleanly(&c, |e| e.contains("option levels:") && e.contains("99"));

    let mut c = config(&out);
    c.horizons = vec![10, 1, 10];
    assert_fails_cleanly(&c, |e| {
        e.contains("option horizons:") && e.contains("10 is given twice")
    });

    let mut c = config(&out);
    c.levels = vec![0.95, 0.99, 0.95];
    assert_fails_cleanly(&c, |e| {
        e.contains("option levels:") && e.contains("0.95 is given twice")
    });

    let mut c = config(&out);
    c.scenarios
        .push((inputs().join("low-vix.parquet"), Some("gaussian".into())));
    assert_fails_cleanly(&c, |e| {
        e.contains("low-vix.parquet") && e.contains("give files of one regime")
    });

    // Two files of one name in different folders, labelled by that name.
    let mut c = config(&out);
    let copy = dir.path().join("high-vix.parquet");
    std::fs::copy(&c.scenarios[0].0, &copy).unwrap();
    c.scenarios = vec![(c.scenarios[0].0.clone(), None), (copy, None)];
    assert_fails_cleanly(&c, |e| {
        e.contains("option label:") && e.contains("`high-vix`") && e.contains("names both")
    });

    let mut c = config(&out);
    c.scenarios[0].1 = Some("real (test)".into());
    assert_fails_cleanly(&c, |e| {
        e.contains("option label:") && e.contains("names the real windows' row")
    });

    let mut c = config(&out);
    c.scenarios[0].1 = Some(String::new());
    assert_fails_cleanly(&c, |e| {
        e.contains("option label:") && e.contains("is blank") && e.contains("high-vix.parquet")
    });

    // A finite but absurd return: its P&L would overflow to infinity (null in risk.json).
    let mut c = config(&out);
    let source = scengen::scenarios::read_scenarios(&c.scenarios[0].0).unwrap();
    let absurd = dir.path().join("absurd.parquet");
    let mut values = source.values.clone();
    values[7] = 1e6;
    let mut w = scengen::scenarios::ScenarioWriter::create(
        &absurd,
        &source.assets,
        &source.regime,
        source.window,
        Default::default(),
    )
    .unwrap();
    w.write_paths(0, &values).unwrap();
    w.finish().unwrap();
    c.scenarios = vec![(absurd, None)];
    assert_fails_cleanly(&c, |e| {
        e.contains("absurd.parquet") && e.contains("daily log return 1000000 is beyond ±10")
    });

    let mut c = config(&out);
    c.split = SplitChoice::Test;
    c.test_from = parse_date("t", "2030-01-01").unwrap();
    assert_fails_cleanly(&c, |e| {
        e.contains("option split:") && e.contains("no window of `high-vix`")
    });
}
