//! Classical baselines: GARCH and block-length estimates against the `arch` reference values,
//! bootstrap paths made only of real train days, determinism, and clear errors.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use scengen::baselines::{
    fit_garch11, generate_baseline, optimal_block_length, BaselineConfig, Method,
};
use scengen::data::{DailyPanel, SplitChoice, WindowSet};
use scengen::io::parse_date;
use scengen::scenarios::read_scenarios;
use scengen::Error;

#[test]
fn garch11_matches_arch() {
    let v = vectors("garch11.json");
    let r: Vec<f64> = spx_log_returns().iter().map(|x| 100.0 * x).collect();
    assert_eq!(r.len(), 8312);
    let fit = fit_garch11(&r);
    assert!(fit.converged);
    let p = &v["params"];
    for (got, key) in [
        (fit.params.mu, "mu"),
        (fit.params.omega, "omega"),
        (fit.params.alpha, "alpha[1]"),
        (fit.params.beta, "beta[1]"),
    ] {
        let want = p[key].as_f64().unwrap();
        assert!((got / want - 1.0).abs() < 1e-3, "{key}: {got} vs {want}");
    }
    let ll = v["loglikelihood"].as_f64().unwrap();
    assert!(
        (fit.log_likelihood - ll).abs() < 1e-2,
        "log-likelihood {} vs {ll}",
        fit.log_likelihood
    );
}

#[test]
fn block_lengths_match_arch() {
    let v = vectors("garch11.json");
    let (sb, cb) = optimal_block_length(&spx_log_returns());
    let want_sb = v["optimal_block_length_stationary"].as_f64().unwrap();
    let want_cb = v["optimal_block_length_circular"].as_f64().unwrap();
    assert!(
        (sb / want_sb - 1.0).abs() < 1e-9,
        "stationary {sb} vs {want_sb}"
    );
    assert!(
        (cb / want_cb - 1.0).abs() < 1e-9,
        "circular {cb} vs {want_cb}"
    );
}

fn config(method: Method, data: &Path, out: &Path, seed: u64) -> BaselineConfig {
    BaselineConfig {
        method,
        data: data.to_path_buf(),
        regime: "high-vix".into(),
        n: 400,
        seed,
        test_from: parse_date("t", "2016-01-01").unwrap(),
        block_length: None,
        out: out.to_path_buf(),
        shard: Default::default(),
        as_of: None,
        ..BaselineConfig::default()
    }
}

#[test]
fn bootstrap_paths_are_made_of_real_train_days_in_blocks() {
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    let dir = tempfile::tempdir().unwrap();
    let data = embedded_windows(dir.path());
    let set = WindowSet::read(&data).unwrap();
    let regime = set.rule.index_of("high-vix").unwrap();
    let days = DailyPanel::from_windows(
        &set,
        Some(regime),
        SplitChoice::Train,
        parse_date("t", "2016-01-01").unwrap(),
    );
    let key = |row: &[f64]| row.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
    let position: std::collections::HashMap<Vec<u64>, usize> =
        (0..days.len()).map(|d| (key(days.day(d)), d)).collect();
    let test_days: HashSet<Vec<u64>> = {
        let t = DailyPanel::from_windows(
            &set,
            Some(regime),
            SplitChoice::Test,
            parse_date("t", "2016-01-01").unwrap(),
        );
        (0..t.len()).map(|d| key(t.day(d))).collect()
    };

    let out = dir.path().join("a.parquet");
    generate_baseline(&config(Method::Bootstrap, &data, &out, 3)).unwrap();
    let s = read_scenarios(&out).unwrap();
    assert_eq!(s.paths(), 400);
    assert_eq!(s.metadata["scengen.method"], "bootstrap");
    let mut continued = 0;
    let mut total = 0;
    for p in 0..s.paths() {
        let rows: Vec<usize> = s
            .path_values(p)
            .chunks(20)
            .map(|r| {
                let k = key(r);
                assert!(!test_days.contains(&k), "a test day leaked into path {p}");
                *position.get(&k).unwrap_or_else(|| {
                    panic!("path {p} holds a day that is no train day of the regime")
                })
            })
            .collect();
        for w in rows.windows(2) {
            total += 1;
            if w[1] == w[0] + 1 {
                continued += 1;
            }
        }
    }
    // Blocks: with mean length b, a path continues its block with probability about 1 - 1/b.
    let b: f64 = serde_json::from_str::<serde_json::Value>(&s.metadata["scengen.parameters"])
        .unwrap()["mean_block_length"]
        .as_f64()
        .unwrap();
    let share = continued as f64 / total as f64;
    assert!(
        b > 1.0 && (share - (1.0 - 1.0 / b)).abs() < 0.1,
        "continued {share}, block length {b}"
    );

    // Same seed, byte-identical; another seed, another file.
    let again = dir.path().join("b.parquet");
    generate_baseline(&config(Method::Bootstrap, &data, &again, 3)).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let other = dir.path().join("c.parquet");
    generate_baseline(&config(Method::Bootstrap, &data, &other, 4)).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), std::fs::read(&other).unwrap());
}

#[test]
fn gaussian_and_fhs_are_deterministic_and_fit_the_regime() {
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    let dir = tempfile::tempdir().unwrap();
    let data = embedded_windows(dir.path());
    for method in [Method::Gaussian, Method::Fhs] {
        let a = dir.path().join(format!("{}-a.parquet", method.name()));
        let b = dir.path().join(format!("{}-b.parquet", method.name()));
        generate_baseline(&config(method, &data, &a, 1)).unwrap();
        generate_baseline(&config(method, &data, &b, 1)).unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{method:?}"
        );
        let s = read_scenarios(&a).unwrap();
        let summary = scengen::evaluate::summarize_paths(&s.values, s.window, 20);
        // High-vix equal-weight volatility is far above the calm-market 10-15%.
        assert!(
            summary.equal_weight_vol > 0.2 && summary.equal_weight_vol < 0.8,
            "{method:?}: {}",
            summary.equal_weight_vol
        );
        // FHS resamples residual days of the whole train period, so its correlation is that of all
        // days rather than of stressed ones; independent assets would give 0.
        assert!(
            summary.mean_correlation > 0.15,
            "{method:?}: {}",
            summary.mean_correlation
        );
    }
}

#[test]
fn too_few_train_days_and_unknown_regimes_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("g.parquet");
    write_gaussian_windows(&data, &[1.0, 0.0, 0.5, 1.0], 2, 5, 40, 2.0, 1);
    let out = dir.path().join("s.parquet");
    let mut c = config(Method::Gaussian, &data, &out, 1);
    c.regime = "calm".into();
    c.test_from = 10959 + 4; // the first window straddles the date: no train day
    let e = generate_baseline(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, ref reason, .. } if option == "regime" && reason.contains("train days")),
        "{e}"
    );
    c.regime = "crash".into();
    let e = generate_baseline(&c).unwrap_err();
    assert!(matches!(e, Error::UnknownRegime { .. }), "{e}");
    c.regime = "calm".into();
    c.test_from = parse_date("t", "2100-01-01").unwrap();
    c.method = Method::Bootstrap;
    c.block_length = Some(0.5);
    let e = generate_baseline(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "block_length"),
        "{e}"
    );
    assert!(!out.exists());
}
