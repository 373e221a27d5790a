//! The coverage tests of VaR exceedances against closed forms, and the VaR backtest on the
//! embedded prices with baseline scenario files fitted before 2016, recounted independently from
//! the price and index files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{
    assert_stage_fails_cleanly, embedded_index, embedded_prices, embedded_windows, option_error,
    root,
};
use scengen::baselines::{generate_baseline, BaselineConfig, Method};
use scengen::data::{realized_vol, Panel, RegimeRule, Returns, SignalSource, ValueKind};
use scengen::io::{format_date, parse_date, read_parquet};
use scengen::report::StageReport;
use scengen::risk::Portfolio;
use scengen::scenarios::read_scenarios;
use scengen::stats::{basel_zone, christoffersen_independence, conditional_coverage, kupiec_pof};
use scengen::var_backtest::{VarBacktestConfig, HISTORICAL};
use scengen::Error;

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-10 * want.abs().max(1e-300),
        "{what}: {got} against {want}"
    );
}

/// Reference values from an independent implementation (Python's `math`: the log-likelihoods
/// written out, the χ²(1) tail as erfc(√(x/2)) and the χ²(2) tail as exp(−x/2)).
#[test]
fn coverage_tests_match_their_closed_forms() {
    for (n, x, p, lr, pv) in [
        (250, 4, 0.01, 0.7691383643858458, 0.380483738238954),
        (250, 10, 0.01, 12.955491062356018, 0.0003189845082133835),
        (1760, 46, 0.05, 25.36632084383382, 4.7412391386892893e-07),
        (100, 0, 0.01, 2.01006717070029, 0.15625839953485104),
    ] {
        let k = kupiec_pof(n, x, p);
        close(k.statistic, lr, &format!("Kupiec LR, {x} of {n} at {p}"));
        close(k.p_value, pv, &format!("Kupiec p, {x} of {n} at {p}"));
    }
    // Exactly the expected rate: no evidence against it.
    let k = kupiec_pof(500, 25, 0.05);
    assert_eq!((k.statistic, k.p_value), (0.0, 1.0));

    // Three clustered pairs and a single hit in 200 days: n00 190, n01 3, n10 3, n11 3.
    let mut clustered = vec![false; 200];
    for i in [50, 51, 52, 120, 121, 180] {
        clustered[i] = true;
    }
    let ind = christoffersen_independence(&clustered);
    close(
        ind.statistic,
        14.580435761313709,
        "independence LR, clustered",
    );
    close(
        ind.p_value,
        0.0001343016784246756,
        "independence p, clustered",
    );
    let cc = conditional_coverage(&kupiec_pof(200, 6, 0.01), &ind);
    close(cc.statistic, 19.84514103242266, "conditional coverage LR");
    close(cc.p_value, 4.905489816867517e-05, "conditional coverage p");
    assert_eq!(cc.degrees_of_freedom, 2);
    // Hits 40 days apart: never one after another.
    let spread: Vec<bool> = (0..200).map(|i| i >= 10 && (i - 10) % 40 == 0).collect();
    let ind = christoffersen_independence(&spread);
    close(
        ind.statistic,
        0.25776049975015525,
        "independence LR, spread",
    );
    close(ind.p_value, 0.611662912783232, "independence p, spread");
    // No hit at all: nothing to tell apart.
    assert_eq!(christoffersen_independence(&[false; 50]).statistic, 0.0);

    for (hits, zone) in [
        (0, "green"),
        (4, "green"),
        (5, "yellow"),
        (9, "yellow"),
        (10, "red"),
    ] {
        assert_eq!(basel_zone(hits), zone, "{hits} exceedances");
    }
}

/// The embedded windows and, per regime, Gaussian and bootstrap baselines fitted on the days
/// before 2016 (500 paths each), built once.
fn inputs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let windows = embedded_windows(&dir);
        let scenarios = dir.join("scenarios");
        std::fs::create_dir_all(&scenarios).unwrap();
        for (method, name) in [
            (Method::Gaussian, "gaussian"),
            (Method::Bootstrap, "bootstrap"),
        ] {
            for regime in ["low-vix", "normal", "high-vix"] {
                generate_baseline(&BaselineConfig {
                    method,
                    data: windows.clone(),
                    regime: regime.into(),
                    n: 500,
                    seed: 3,
                    test_from: parse_date("t", "2016-01-01").unwrap(),
                    block_length: None,
                    out: scenarios.join(format!("{regime}-{name}.parquet")),
                    shard: Default::default(),
                    as_of: None,
                    ..BaselineConfig::default()
                })
                .unwrap();
            }
        }
        dir
    })
}

/// The embedded defaults, on the test's scenario files, with 1- and 5-day horizons and 250 days
/// of historical simulation, up to `to`.
fn config(out: &Path, to: &str) -> VarBacktestConfig {
    let mut c = VarBacktestConfig::embedded(vec![inputs().join("scenarios")], out);
    c.portfolio = root().join("data/example_portfolio.toml");
    c.prices = embedded_prices();
    c.signal = SignalSource::RealizedVol {
        path: embedded_index(),
        column: "SPX".into(),
    };
    c.to = Some(parse_date("--to", to).unwrap());
    c.horizons = vec![1, 5];
    c.lookback = 250;
    c
}

/// The k-th largest of `losses`, k = ⌈(1 − level) n⌉: the VaR definition of
/// `tests/testvectors/var_cvar.json`, by sorting.
fn var_by_sorting(mut losses: Vec<f64>, level: f64) -> f64 {
    losses.sort_by(|a, b| b.total_cmp(a));
    let k = ((1.0 - level) * losses.len() as f64 - 1e-9).ceil().max(1.0) as usize;
    losses[k - 1]
}

#[test]
fn the_var_backtest_on_real_prices_counts_what_the_prices_say() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vb");
    let c = config(&out, "2016-12-31");
    let b = scengen::var_backtest::run(&c).unwrap();
    b.write(&c.out).unwrap();
    for f in ["var_backtest.json", "forecasts.parquet", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let names: Vec<&str> = b.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bootstrap",
            "bootstrap+ewma",
            "gaussian",
            "gaussian+ewma",
            HISTORICAL,
            "historical+ewma"
        ]
    );
    // Each generator's file per regime, and how it was generated, in the JSON.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("var_backtest.json")).unwrap())
            .unwrap();
    let normal = &json["models"][0]["files"]["normal"];
    assert!(normal["file"]
        .as_str()
        .unwrap()
        .ends_with("normal-bootstrap.parquet"));
    assert_eq!(normal["generator"]["method"], "bootstrap");

    // Independently: prices, the regime signal and the positions straight from their files.
    let portfolio = Portfolio::read(&c.portfolio).unwrap();
    let assets: Vec<String> = portfolio
        .positions
        .iter()
        .map(|p| p.asset.clone())
        .collect();
    let panel = Panel::read(&embedded_prices(), "date", Some(&assets)).unwrap();
    let index = Panel::read(&embedded_index(), "date", Some(&["SPX".to_string()])).unwrap();
    let index_returns = Returns::from_panel(&index, ValueKind::Prices);
    let vol = realized_vol(&index_returns.dates, &index_returns.columns[0]);
    let rule = RegimeRule::default();
    let value = |t: usize, h: usize| -> f64 {
        // Holding from the close of day t − 1 to the close of day t + h − 1.
        portfolio
            .positions
            .iter()
            .enumerate()
            .map(|(i, p)| p.value * (panel.columns[i][t + h - 1] / panel.columns[i][t - 1] - 1.0))
            .sum()
    };
    let first = panel
        .dates
        .iter()
        .position(|d| *d >= c.from)
        .expect("2016 is in the data");

    // RiskMetrics by its recursion: the variance forecast for each day from the P&L of the days
    // before it, started from arch's backcast over the first 75 days before the test period.
    let daily: Vec<f64> = (1..panel.dates.len()).map(|t| value(t, 1)).collect();
    let lambda = c.ewma_lambda.expect("the embedded defaults scale to EWMA");
    let (mut weighted, mut weights) = (0.0, 0.0);
    for (i, x) in daily[..(first - 1).min(75)].iter().enumerate() {
        weighted += 0.94f64.powi(i as i32) * x * x;
        weights += 0.94f64.powi(i as i32);
    }
    let mut variance = vec![weighted / weights];
    for x in &daily {
        let before = *variance.last().unwrap();
        variance.push(lambda * before + (1.0 - lambda) * x * x);
    }
    // The volatility forecast for the return of panel day t (from the close of day t − 1).
    let volatility = |t: usize| variance[t - 1].sqrt();

    // Per regime and model, the scenario VaR from the file's paths by sorting; scaled, each
    // path's outcome is first divided by the root mean square of its daily P&L after the horizon.
    let scenario_var = |model: &str, regime: &str, h: usize, level: f64, scaled: bool| -> f64 {
        let set = read_scenarios(
            &inputs()
                .join("scenarios")
                .join(format!("{regime}-{model}.parquet")),
        )
        .unwrap();
        let n = set.assets.len();
        let columns: Vec<usize> = assets
            .iter()
            .map(|a| set.assets.iter().position(|s| s == a).unwrap())
            .collect();
        let losses = (0..set.paths())
            .map(|p| {
                let path = set.path_values(p);
                let pnl = |days: std::ops::Range<usize>| -> f64 {
                    portfolio
                        .positions
                        .iter()
                        .zip(&columns)
                        .map(|(pos, &col)| {
                            pos.value
                                * (days.clone().map(|d| path[d * n + col]).sum::<f64>()).exp_m1()
                        })
                        .sum()
                };
                let scale = if scaled {
                    let after: Vec<f64> = (h..set.window).map(|d| pnl(d..d + 1)).collect();
                    (after.iter().map(|x| x * x).sum::<f64>() / after.len() as f64).sqrt()
                } else {
                    1.0
                };
                -pnl(0..h) / scale
            })
            .collect();
        var_by_sorting(losses, level)
    };

    for f in &b.forecasts {
        let h = f.horizon;
        // Non-overlapping holding periods from the first test day, every one inside 2016.
        assert_eq!(format_date(f.dates[0]), "2016-01-04");
        let starts: Vec<usize> = (0..f.dates.len()).map(|k| first + k * h).collect();
        assert_eq!(f.dates.len(), (252 - h) / h + 1, "{h}-day periods in 2016");
        for (k, &t) in starts.iter().enumerate() {
            assert_eq!(f.dates[k], panel.dates[t]);
            let want_regime = &rule.labels[rule.classify(vol[&panel.dates[t - 1]])];
            assert_eq!(&f.regimes[k], want_regime, "{}", format_date(f.dates[k]));
            let want = value(t, h);
            assert!(
                (f.pnl[k] - want).abs() < 1e-6 * want.abs().max(1.0),
                "{h}-day P&L on {}: {} against {want}",
                format_date(f.dates[k]),
                f.pnl[k]
            );
        }
        for cov in b.coverage.iter().filter(|cov| cov.horizon == h) {
            let var: Vec<f64> = starts
                .iter()
                .zip(&f.regimes)
                .map(|(&t, regime)| {
                    let (model, scaled) = match cov.model.strip_suffix("+ewma") {
                        Some(model) => (model, true),
                        None => (cov.model.as_str(), false),
                    };
                    let today = if scaled { volatility(t) } else { 1.0 };
                    if model == HISTORICAL {
                        let losses = (t - c.lookback..=t - h)
                            .map(|s| {
                                -value(s, h) * if scaled { today / volatility(s) } else { 1.0 }
                            })
                            .collect();
                        var_by_sorting(losses, cov.level)
                    } else {
                        scenario_var(model, regime, h, cov.level, scaled) * today
                    }
                })
                .collect();
            for (k, (got, want)) in cov.var.iter().zip(&var).enumerate() {
                assert!(
                    (got - want).abs() < 1e-6 * want.abs(),
                    "{} {h}-day {} VaR on {}: {got} against {want}",
                    cov.model,
                    cov.level,
                    format_date(f.dates[k])
                );
            }
            let hits = f.pnl.iter().zip(&var).filter(|(p, v)| -**p > **v).count();
            assert_eq!(cov.exceedances, hits, "{} {h} {}", cov.model, cov.level);
            assert_eq!(cov.forecasts, f.dates.len());
            let per_regime: usize = cov.by_regime.iter().map(|r| r.exceedances).sum();
            assert_eq!(per_regime, hits);
            // The Basel zones only for 1-day 99%, over 250-forecast stretches.
            assert_eq!(
                cov.basel.as_ref().map(|z| z.stretches),
                (h == 1 && cov.level == 0.99).then(|| f.dates.len() - 249)
            );
        }
    }
    // The Parquet file holds every forecast of every model, horizon and level.
    let rows: usize = b.coverage.iter().map(|cov| cov.var.len()).sum();
    assert_eq!(
        read_parquet(out.join("forecasts.parquet"))
            .unwrap()
            .batch
            .num_rows(),
        rows
    );

    // No look-ahead: a shorter period gives the same forecasts on its days.
    let short =
        scengen::var_backtest::run(&config(&dir.path().join("short"), "2016-06-30")).unwrap();
    for (whole, part) in b.coverage.iter().zip(&short.coverage) {
        assert_eq!(
            (whole.model.as_str(), whole.horizon),
            (part.model.as_str(), part.horizon)
        );
        assert_eq!(whole.var[..part.var.len()], part.var[..]);
    }

    // The next-day forecast after the shorter period is the forecast the whole backtest made
    // on that morning, for every model, and at each horizon whose holding periods start then.
    assert_eq!(short.next.after, "2016-06-30");
    let morning = short.next.date.as_deref().expect("the prices go on");
    assert_eq!(morning, "2016-07-01");
    assert_eq!(short.next.var.len(), b.coverage.len());
    let mut checked = 0;
    for (next, whole) in short.next.var.iter().zip(&b.coverage) {
        assert_eq!(
            (next.model.as_str(), next.horizon, next.level),
            (whole.model.as_str(), whole.horizon, whole.level)
        );
        let f = b
            .forecasts
            .iter()
            .find(|f| f.horizon == next.horizon)
            .unwrap();
        if let Some(k) = f.dates.iter().position(|d| format_date(*d) == morning) {
            assert_eq!(next.var, whole.var[k], "{} {}", next.model, next.horizon);
            assert_eq!(short.next.regime, f.regimes[k]);
            checked += 1;
        }
    }
    assert!(
        checked >= 12,
        "the 1-day forecasts of six models at two levels"
    );

    // To the end of the data: the forecast for the trading day after the last close.
    let mut c = config(&dir.path().join("end"), "2016-12-31");
    c.to = None;
    let to_end = scengen::var_backtest::run(&c).unwrap();
    assert_eq!(to_end.next.date, None);
    assert_eq!(to_end.next.after, format_date(*panel.dates.last().unwrap()));
    assert!(to_end
        .next
        .var
        .iter()
        .all(|v| v.var > 0.0 && v.var.is_finite()));
}

#[test]
fn a_panel_of_returns_gives_the_backtest_of_its_prices() {
    // The embedded prices as simple returns, the first day dropped: the same return days.
    let dir = tempfile::tempdir().unwrap();
    let mut panel = Panel::read(&embedded_prices(), "date", None).unwrap();
    let simple: Vec<Vec<f64>> = panel
        .columns
        .iter()
        .map(|c| c.windows(2).map(|w| w[1] / w[0] - 1.0).collect())
        .collect();
    panel.dates.remove(0);
    panel.columns = simple;
    let returns = panel
        .write(&dir.path().join("returns.parquet"), &Default::default())
        .unwrap();
    let prices = scengen::var_backtest::run(&config(&dir.path().join("p"), "2016-06-30")).unwrap();
    let mut c = config(&dir.path().join("r"), "2016-06-30");
    c.prices = returns;
    c.kind = ValueKind::SimpleReturns;
    let from_returns = scengen::var_backtest::run(&c).unwrap();
    for (a, b) in prices.forecasts.iter().zip(&from_returns.forecasts) {
        assert_eq!(a.dates, b.dates);
        for (x, y) in a.pnl.iter().zip(&b.pnl) {
            assert!((x - y).abs() < 1e-6 * x.abs().max(1.0), "{x} {y}");
        }
    }
    for (a, b) in prices.coverage.iter().zip(&from_returns.coverage) {
        assert_eq!(
            (a.model.as_str(), a.exceedances),
            (b.model.as_str(), b.exceedances)
        );
    }
}

fn assert_fails_cleanly(c: &VarBacktestConfig, check: impl Fn(&Error) -> bool) {
    assert_stage_fails_cleanly(scengen::var_backtest::run(c), &c.out, check);
}

#[test]
fn the_var_backtest_rejects_bad_inputs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vb");
    let scenarios = inputs().join("scenarios");

    // A generator without a file for a regime that occurs: named with the first day it is needed.
    let partial = dir.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    for regime in ["low-vix", "high-vix"] {
        let name = format!("{regime}-gaussian.parquet");
        std::fs::copy(scenarios.join(&name), partial.join(&name)).unwrap();
    }
    let mut c = config(&out, "2016-12-31");
    c.scenarios = vec![partial.clone()];
    assert_fails_cleanly(&c, |e| {
        option_error(
            e,
            "scenarios",
            "no `gaussian` scenario file for regime `normal`, in force on 2016-",
        )
    });

    // A scenarios folder that is not there is named as such.
    let mut c = config(&out, "2016-12-31");
    c.scenarios = vec![dir.path().join("no-such-folder")];
    assert_fails_cleanly(&c, |e| {
        option_error(e, "scenarios", "no such file or folder")
            && e.to_string().contains("no-such-folder")
    });

    // Two files of one generator and regime: which one stands for it is not the tool's to guess.
    let mut c = config(&out, "2016-12-31");
    c.scenarios = vec![scenarios.clone(), scenarios.join("normal-gaussian.parquet")];
    assert_fails_cleanly(&c, |e| option_error(e, "scenarios", "a second `gaussian`"));

    // Scenarios fitted on days the backtest tests.
    let mut c = config(&out, "2016-12-31");
    c.from = parse_date("--from", "2015-06-01").unwrap();
    assert_fails_cleanly(&c, |e| e.to_string().contains("would look ahead"));

    // A horizon that leaves too few days of the paths to measure their volatility, unless the
    // models are not scaled; a decay outside (0, 1).
    let mut c = config(&out, "2016-12-31");
    c.horizons = vec![1, 25];
    assert_fails_cleanly(&c, |e| {
        option_error(e, "horizons", "leaves 5 days of the 30-day paths")
    });
    c.ewma_lambda = None;
    assert!(scengen::var_backtest::run(&c).is_ok());
    let mut c = config(&out, "2016-12-31");
    c.ewma_lambda = Some(1.0);
    assert_fails_cleanly(&c, |e| {
        option_error(e, "ewma_lambda", "strictly between 0 and 1")
    });

    // A horizon longer than the paths, a level outside (0, 1), a zero horizon.
    let mut c = config(&out, "2016-12-31");
    c.horizons = vec![1, 31];
    assert_fails_cleanly(&c, |e| {
        option_error(e, "horizons", "longer than the 30-day paths")
    });
    let mut c = config(&out, "2016-12-31");
    c.levels = vec![0.99, 1.0];
    assert_fails_cleanly(&c, |e| {
        option_error(e, "levels", "strictly between 0 and 1")
    });
    let mut c = config(&out, "2016-12-31");
    c.horizons = vec![0];
    assert_fails_cleanly(&c, |e| option_error(e, "horizons", "at least 1 day"));

    // Too few trailing days for historical simulation, and more than the data holds.
    let mut c = config(&out, "2016-12-31");
    c.lookback = 20;
    assert_fails_cleanly(&c, |e| {
        option_error(e, "lookback", "fewer than 20 5-day outcomes")
    });
    let mut c = config(&out, "2016-12-31");
    c.lookback = 9000;
    assert_fails_cleanly(&c, |e| option_error(e, "lookback", "precede 2016-01-01"));

    // A period with no room for the longest horizon.
    let mut c = config(&out, "2016-01-05");
    c.horizons = vec![1, 5];
    assert_fails_cleanly(&c, |e| {
        option_error(e, "from", "holds 2 return days from then to 2016-01-05")
    });

    // A position the scenario files do not hold.
    let portfolio = dir.path().join("book.toml");
    std::fs::write(&portfolio, "[positions]\nAAPL = 100\nTSLA = 50\n").unwrap();
    let mut c = config(&out, "2016-12-31");
    c.portfolio = portfolio;
    assert_fails_cleanly(&c, |e| e.to_string().contains("position `TSLA`"));
}
