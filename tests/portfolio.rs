//! Minimum-variance weights against their optimality conditions, and the backtest on the embedded
//! prices with a tiny model trained on the real windows before 2016.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use scengen::backtest::{
    global_min_variance, kkt_conditions, long_only_min_variance, BacktestConfig, EQUAL_WEIGHT,
};
use scengen::data::{realized_vol, Panel, RegimeRule, Returns, ValueKind};
use scengen::diffusion::{SamplerKind, Spacing};
use scengen::error::Error;
use scengen::generate::{generate, GenerateConfig};
use scengen::io::{format_date, parse_date, year_month};
use scengen::model::Engine;
use scengen::report::StageReport;
use scengen::rng::SeededRng;

fn variance_of(cov: &[f64], n: usize, w: &[f64]) -> f64 {
    (0..n)
        .map(|i| (0..n).map(|j| w[i] * cov[i * n + j] * w[j]).sum::<f64>())
        .sum()
}

/// A covariance of `n` assets from two factors (one with mixed-sign loadings, so that the
/// unconstrained portfolio goes short) plus idiosyncratic variance.
fn factor_covariance(rng: &mut SeededRng, n: usize) -> Vec<f64> {
    let beta: Vec<f64> = (0..n).map(|_| 0.5 + rng.uniform()).collect();
    let gamma: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let idio: Vec<f64> = (0..n).map(|_| 0.05 + 0.5 * rng.uniform()).collect();
    (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            1e-4 * (beta[i] * beta[j]
                + 0.5 * gamma[i] * gamma[j]
                + if i == j { idio[i] } else { 0.0 })
        })
        .collect()
}

#[test]
fn minimum_variance_weights_satisfy_their_optimality_conditions() {
    let n = 20;
    let mut rng = SeededRng::new(11, 0);
    let (mut cases_with_shorts, mut cases_with_zeros) = (0, 0);
    for _ in 0..40 {
        let cov = factor_covariance(&mut rng, n);
        // GMV: fully invested and Σw ∝ 1 (equal marginal variance everywhere).
        let gmv = global_min_variance(&cov, n).unwrap();
        assert!((gmv.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let kkt = kkt_conditions(&cov, n, &gmv);
        let marginal_spread =
            kkt.multipliers.iter().fold(0.0f64, |m, v| m.max(v.abs())) / kkt.scale;
        assert!(
            marginal_spread < 1e-9,
            "GMV marginal spread {marginal_spread}"
        );
        if gmv.iter().any(|w| *w < 0.0) {
            cases_with_shorts += 1;
        }
        // Long-only: the KKT conditions hold, which for a convex problem means optimality.
        let w = long_only_min_variance(&cov, n).unwrap();
        let kkt = kkt_conditions(&cov, n, &w);
        assert!(kkt.min_weight >= 0.0);
        assert!(kkt.budget_error < 1e-12);
        assert!(kkt.stationarity < 1e-9, "stationarity {}", kkt.stationarity);
        assert!(
            kkt.dual_infeasibility < 1e-9,
            "dual infeasibility {}",
            kkt.dual_infeasibility
        );
        if w.contains(&0.0) {
            cases_with_zeros += 1;
        }
        // And directly: no random long-only portfolio does better, none beats the GMV bound.
        let best = variance_of(&cov, n, &w);
        assert!(best >= variance_of(&cov, n, &gmv) * (1.0 - 1e-12));
        for _ in 0..200 {
            let raw: Vec<f64> = (0..n).map(|_| -rng.uniform().max(1e-300).ln()).collect();
            let total: f64 = raw.iter().sum();
            let other: Vec<f64> = raw.iter().map(|v| v / total).collect();
            assert!(variance_of(&cov, n, &other) >= best);
        }
    }
    // The cases exercised the constraints.
    assert!(
        cases_with_shorts >= 30,
        "{cases_with_shorts} cases with shorts"
    );
    assert!(
        cases_with_zeros >= 30,
        "{cases_with_zeros} cases with zeros"
    );
}

#[test]
fn long_only_weights_have_their_closed_forms() {
    // Two assets, covariance above the smaller variance: GMV shorts the riskier one, the
    // long-only optimum holds the safer one only.
    let cov = [0.04, 0.018, 0.018, 0.01];
    let gmv = global_min_variance(&cov, 2).unwrap();
    let w1 = (0.01 - 0.018) / (0.04 + 0.01 - 2.0 * 0.018);
    assert!((gmv[0] - w1).abs() < 1e-12 && (gmv[1] - (1.0 - w1)).abs() < 1e-12);
    assert_eq!(long_only_min_variance(&cov, 2).unwrap(), vec![0.0, 1.0]);
    // Uncorrelated assets: w ∝ 1/σ², positive, so both portfolios agree.
    let diag = [0.04, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.02];
    let want = [0.25 / 1.75, 1.0 / 1.75, 0.5 / 1.75];
    for w in [
        global_min_variance(&diag, 3).unwrap(),
        long_only_min_variance(&diag, 3).unwrap(),
    ] {
        for (got, want) in w.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
    }
    // Not positive definite: no answer rather than a wrong one.
    assert!(global_min_variance(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
}

/// A tiny model trained on the real windows before 2016, and its scenario files (one per
/// regime), built once for the backtest tests.
fn scenario_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        // The backtest's bookkeeping is under test, not the scenarios' fit: a prior of 2
        // volatility levels fits in a fraction of the default's (8 x 3 x 5 states) time.
        let model = small_embedded_model(&dir, 2);
        let scenarios = dir.join("scenarios");
        std::fs::create_dir_all(&scenarios).unwrap();
        for regime in ["low-vix", "normal", "high-vix"] {
            generate(&GenerateConfig {
                model: model.clone(),
                regime: Some(regime.into()),
                as_of: None,
                start_days: None,
                n: 100,
                sampler: Some(SamplerKind::DpmSolver {
                    steps: 5,
                    spacing: Spacing::LogSnr,
                }),
                guidance: Some(1.5),
                seed: 5,
                out: scenarios.join(format!("{regime}.parquet")),
                batch_size: 100,
                device: candle_core::Device::Cpu,
                engine: Engine::Auto,
                progress: false,
                shard: Default::default(),
            })
            .unwrap();
        }
        scenarios
    })
}

fn config(out: &Path, to: &str) -> BacktestConfig {
    let mut c = BacktestConfig::embedded(vec![scenario_dir().to_path_buf()], out);
    c.prices = embedded_prices();
    c.to = Some(parse_date("--to", to).unwrap());
    c
}

#[test]
fn the_backtest_on_real_prices_rebalances_monthly_without_looking_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bt");
    let c = config(&out, "2016-12-31");
    let b = scengen::backtest::run(&c).unwrap();
    b.write(&c.out).unwrap();
    for f in [
        "weights.parquet",
        "returns.parquet",
        "summary.json",
        "report.html",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }

    // Independently: returns and regimes straight from the price and index files.
    let panel = Panel::read(&embedded_prices(), "date", Some(&b.assets)).unwrap();
    let returns = Returns::from_panel(&panel, ValueKind::Prices);
    let index = Panel::read(&embedded_index(), "date", Some(&["SPX".to_string()])).unwrap();
    let index_returns = Returns::from_panel(&index, ValueKind::Prices);
    let vol = realized_vol(&index_returns.dates, &index_returns.columns[0]);
    let first = returns.dates.partition_point(|d| *d < c.from);
    assert_eq!(format_date(b.dates[0]), "2016-01-04");
    assert_eq!(format_date(*b.dates.last().unwrap()), "2016-12-30");

    // One rebalance per month, on its first trading day; the regime from the prior close.
    assert_eq!(b.rebalance_dates.len(), 12);
    let rule = RegimeRule::default();
    for (k, date) in b.rebalance_dates.iter().enumerate() {
        let t = returns.dates.iter().position(|d| d == date).unwrap();
        assert_eq!(year_month(*date).1 as usize, k + 1);
        assert_ne!(year_month(returns.dates[t - 1]).1, year_month(*date).1);
        let want = &rule.labels[rule.classify(vol[&returns.dates[t - 1]])];
        assert_eq!(&b.regimes[k], want, "regime on {}", format_date(*date));
    }

    // Equal weight earns the mean simple return on a rebalance day.
    let ew = b
        .strategies
        .iter()
        .find(|s| s.method == EQUAL_WEIGHT)
        .unwrap();
    let day0: f64 = returns
        .columns
        .iter()
        .map(|c| c[first].exp_m1())
        .sum::<f64>()
        / 20.0;
    assert!((ew.daily_returns[0] - day0).abs() < 1e-15);

    for s in &b.strategies {
        assert_eq!(s.daily_returns.len(), b.dates.len());
        for w in &s.weights {
            assert!(
                (w.iter().sum::<f64>() - 1.0).abs() < 1e-9,
                "{} {}",
                s.method,
                s.portfolio
            );
            if s.portfolio == "long-only" {
                assert!(w.iter().all(|v| *v >= 0.0));
            }
        }
        assert!(s.worst_kkt_violation < 1e-9, "{}", s.worst_kkt_violation);
        assert_eq!(s.turnover.len(), 11);
    }
    for s in &b.summary {
        assert!(s.annualised_volatility > 0.02 && s.annualised_volatility < 0.6);
        assert!(s.max_drawdown >= 0.0 && s.max_drawdown < 1.0);
    }

    // No look-ahead: a shorter test period gives the same weights and returns on its days.
    let short = scengen::backtest::run(&config(&dir.path().join("short"), "2016-06-30")).unwrap();
    assert_eq!(short.rebalance_dates, b.rebalance_dates[..6]);
    let days = short.dates.len();
    for (whole, part) in b.strategies.iter().zip(&short.strategies) {
        assert_eq!(whole.weights[..6], part.weights[..]);
        assert_eq!(whole.daily_returns[..days], part.daily_returns[..]);
    }
}

fn assert_fails_cleanly(c: &BacktestConfig, check: impl Fn(&Error) -> bool) {
    assert_stage_fails_cleanly(scengen::backtest::run(c), &c.out, check);
}

#[test]
fn the_backtest_rejects_bad_inputs_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bt");

    // Not enough history before the start for the lookback (26 years precede 2016).
    let mut c = config(&out, "2016-12-31");
    c.lookback = 7000;
    assert_fails_cleanly(&c, |e| e.to_string().contains("option lookback:"));

    // Too short a lookback is named itself, not through --variance-days, which it bounds.
    let mut c = config(&out, "2016-12-31");
    c.lookback = 0;
    assert_fails_cleanly(
        &c,
        |e| matches!(e, Error::InvalidOption { ref option, .. } if option == "lookback"),
    );

    // Variances over more days than the lookback.
    let mut c = config(&out, "2016-12-31");
    c.variance_days = 300;
    assert_fails_cleanly(&c, |e| e.to_string().contains("option variance_days:"));

    // An end before the start.
    let c = config(&out, "2015-12-31");
    assert_fails_cleanly(
        &c,
        |e| matches!(e, Error::InvalidOption { ref option, ref reason, .. } if option == "to" && reason.contains("2016-01-01")),
    );

    // A price file without the scenarios' assets.
    let mut c = config(&out, "2016-12-31");
    c.prices = embedded_index();
    assert_fails_cleanly(&c, |e| matches!(e, Error::MissingColumn { .. }));

    // A regime in force with no scenario file: only the low-vix file given (2016 has others).
    let mut c = config(&out, "2016-12-31");
    c.scenarios = vec![scenario_dir().join("low-vix.parquet")];
    assert_fails_cleanly(&c, |e| {
        e.to_string()
            .contains("no diffusion scenario file for regime")
    });

    // Scenarios from a model that saw the test period.
    let mut c = config(&out, "2016-12-31");
    c.from = parse_date("--from", "2012-01-01").unwrap();
    assert_fails_cleanly(&c, |e| {
        let text = e.to_string();
        text.contains("look ahead") && text.contains("high-vix.parquet")
    });
}
