//! `scengen demo`: the whole pipeline on the embedded data, each stage timed: ingest, train the
//! default model, generate 10,000 paths per regime with the model and with each classical
//! baseline, compare their headline figures with the real windows of the regime, write an
//! evaluation report per regime and the risk of an example portfolio under every generator, then
//! the covariance report, the minimum-variance backtest and the example portfolio's VaR
//! backtest.

use std::path::PathBuf;
use std::time::Instant;

use crate::baselines::{generate_baseline, BaselineConfig, Method};
use crate::covariance::{covariance_report, CovarianceConfig};
use crate::data::{ingest, IngestConfig, SplitChoice, WindowSet};
use crate::error::Result;
use crate::eval::{evaluate, summarize_paths, summary_text, DailySummary, EvaluateConfig};
use crate::io::parse_date;
use crate::model::Engine;
use crate::portfolio::{
    run_backtest, summary_text as backtest_summary, write_backtest, BacktestConfig,
};
use crate::risk::{
    run_risk, run_var_backtest, var_backtest_text, write_var_backtest, RiskConfig, RiskReport,
    VarBacktestConfig,
};
use crate::sample::{generate, read_scenarios, GenerateConfig, DEFAULT_SAMPLER};
use crate::train::{train, TrainConfig};

/// Paths per regime and generator.
pub const DEMO_PATHS: usize = 10_000;
/// The portfolio whose risk the demo measures under every regime's scenarios.
pub const EXAMPLE_PORTFOLIO: &str = "data/example_portfolio.toml";
/// Start of the held-out period.
pub const TEST_FROM: &str = "2016-01-01";

/// Runs every stage on the embedded data with `seed`, printing where each output went.
pub fn run(seed: u64) -> Result<()> {
    let started = Instant::now();
    let windows = PathBuf::from("data/windows.parquet");
    let model = PathBuf::from("models/default");
    let test_from = parse_date("--test-from", TEST_FROM)?;

    let t = Instant::now();
    let summary = ingest(&IngestConfig::embedded(&windows))?;
    print!("{summary}");
    println!("[ingest] {:.2} s\n", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut config = TrainConfig::new(&windows, &model, seed, test_from);
    config.progress = true;
    let report = train(&config)?;
    print!("{report}");
    println!("[train] {:.1} s\n", t.elapsed().as_secs_f64());

    let set = WindowSet::read(&windows)?;
    let mut timings = Vec::new();
    let mut table = Vec::new();
    let mut reports = Vec::new();
    let mut diffusion_files = Vec::new();
    let mut risks = Vec::new();
    let mut every_file = Vec::new();
    for (regime, label) in set.rule.labels.iter().enumerate() {
        let t = Instant::now();
        let out = PathBuf::from(format!("scenarios/{label}.parquet"));
        generate(&GenerateConfig {
            model: model.clone(),
            regime: label.clone(),
            n: DEMO_PATHS,
            sampler: DEFAULT_SAMPLER,
            guidance: None,
            seed,
            out: out.clone(),
            batch_size: 1000,
            device: config.device.clone(),
            engine: Engine::Auto,
            progress: true,
        })?;
        timings.push(format!(
            "[generate] {label} diffusion: {:.1} s -> {}",
            t.elapsed().as_secs_f64(),
            out.display()
        ));
        let mut rows = vec![("diffusion".to_string(), summarize_file(&out)?)];
        let mut files = vec![(out.clone(), Some("diffusion".to_string()))];
        for method in [Method::Gaussian, Method::Bootstrap, Method::Fhs] {
            let t = Instant::now();
            let out = PathBuf::from(format!("scenarios/{label}-{}.parquet", method.name()));
            generate_baseline(&BaselineConfig {
                method,
                data: windows.clone(),
                regime: label.clone(),
                n: DEMO_PATHS,
                seed,
                test_from,
                block_length: None,
                out: out.clone(),
            })?;
            timings.push(format!(
                "[generate] {label} {}: {:.1} s -> {}",
                method.name(),
                t.elapsed().as_secs_f64(),
                out.display()
            ));
            rows.push((method.name().to_string(), summarize_file(&out)?));
            files.push((out, Some(method.name().to_string())));
        }
        // A regime without held-out windows gets no real reference: its paths are still scored
        // for risk, and there is nothing to evaluate them against.
        let held_out = !set
            .select(Some(regime), SplitChoice::Test, test_from)
            .is_empty();
        let t = Instant::now();
        let risk_dir = PathBuf::from(format!("reports/risk/{label}"));
        risks.push(run_risk(&RiskConfig {
            portfolio: PathBuf::from(EXAMPLE_PORTFOLIO),
            scenarios: files.clone(),
            real: held_out.then(|| windows.clone()),
            split: SplitChoice::Test,
            test_from,
            horizons: vec![1, 10, 30],
            levels: vec![0.95, 0.99],
            resamples: 1000,
            seed,
            out: risk_dir.clone(),
        })?);
        timings.push(format!(
            "[risk] {label}: {:.1} s -> {}/report.html",
            t.elapsed().as_secs_f64(),
            risk_dir.display()
        ));
        every_file.extend(files.iter().map(|(path, _)| path.clone()));
        let t = Instant::now();
        let report_dir = PathBuf::from(format!("reports/{label}"));
        if held_out {
            let e = evaluate(&EvaluateConfig {
                real: windows.clone(),
                regime: label.clone(),
                split: SplitChoice::Test,
                test_from,
                synthetic: files,
                out: report_dir.clone(),
            })?;
            reports.push(summary_text(&e));
            timings.push(format!(
                "[evaluate] {label}: {:.1} s -> {}/report.html",
                t.elapsed().as_secs_f64(),
                report_dir.display()
            ));
        } else {
            timings.push(format!(
                "[evaluate] {label}: skipped (no held-out window from {TEST_FROM})"
            ));
        }
        for (name, split) in [
            ("real test", SplitChoice::Test),
            ("real train", SplitChoice::Train),
        ] {
            let idx = set.select(Some(regime), split, test_from);
            if !idx.is_empty() {
                rows.push((
                    name.to_string(),
                    summarize_paths(&set.gather(&idx), set.window, set.assets.len()),
                ));
            }
        }
        table.push((label.clone(), rows));
        diffusion_files.push(out);
    }

    let t = Instant::now();
    let covariance_dir = PathBuf::from("reports/covariance");
    let estimates = covariance_report(&CovarianceConfig {
        real: windows.clone(),
        scenarios: diffusion_files.clone(),
        test_from,
        out: covariance_dir.clone(),
    })?;
    timings.push(format!(
        "[covariance] {:.1} s -> {}/report.html",
        t.elapsed().as_secs_f64(),
        covariance_dir.display()
    ));
    let t = Instant::now();
    let backtest_config = BacktestConfig::embedded(diffusion_files, "reports/backtest");
    let backtest = run_backtest(&backtest_config)?;
    write_backtest(&backtest_config, &backtest)?;
    timings.push(format!(
        "[backtest] {:.1} s -> {}/report.html",
        t.elapsed().as_secs_f64(),
        backtest_config.out.display()
    ));
    let t = Instant::now();
    let var_config = VarBacktestConfig::embedded(every_file, "reports/var-backtest");
    let var_backtest = run_var_backtest(&var_config)?;
    write_var_backtest(&var_config, &var_backtest)?;
    timings.push(format!(
        "[var-backtest] {:.1} s -> {}/report.html",
        t.elapsed().as_secs_f64(),
        var_config.out.display()
    ));
    println!(
        "\n{:<10} {:<11} {:>8} {:>10} {:>10}",
        "regime", "source", "EW vol", "ACF|r| 1", "mean corr"
    );
    for (label, rows) in &table {
        for (name, s) in rows {
            println!(
                "{label:<10} {name:<11} {:>7.1}% {:>10.3} {:>10.3}",
                s.equal_weight_vol * 100.0,
                s.abs_acf1,
                s.mean_correlation
            );
        }
    }
    for r in reports {
        println!("\n{r}");
    }
    print!("{}", risk_table(&risks));
    println!("\ncondition numbers of the covariance estimators (train days of each regime)");
    for e in &estimates {
        println!(
            "{:<10} {:<19} {:>10.1}",
            e.regime, e.method, e.condition_number
        );
    }
    println!(
        "\nminimum-variance backtest\n{}",
        backtest_summary(&backtest)
    );
    println!(
        "\nVaR backtest of the example portfolio\n{}",
        var_backtest_text(&var_backtest)
    );
    println!();
    for line in timings {
        println!("{line}");
    }
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The example portfolio's 10-day 99% VaR and CVaR under every set of every regime.
fn risk_table(risks: &[RiskReport]) -> String {
    let Some(first) = risks.first() else {
        return String::new();
    };
    let mut t = format!(
        "\n10-day loss of {} at 99% (gross {:.1} million)\n{:<10} {:<11} {:>12} {:>12}\n",
        EXAMPLE_PORTFOLIO,
        first.gross / 1e6,
        "regime",
        "source",
        "VaR",
        "CVaR"
    );
    for r in risks {
        for s in &r.sets {
            let tail = s
                .horizons
                .iter()
                .find(|h| h.days == 10)
                .and_then(|h| h.tails.iter().find(|x| x.level == 0.99));
            if let Some(tail) = tail {
                t.push_str(&format!(
                    "{:<10} {:<11} {:>12.0} {:>12.0}\n",
                    r.regime, s.label, tail.var, tail.cvar
                ));
            }
        }
    }
    t
}

fn summarize_file(path: &std::path::Path) -> Result<DailySummary> {
    let s = read_scenarios(path)?;
    Ok(summarize_paths(&s.values, s.window, s.assets.len()))
}
