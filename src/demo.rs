//! `scengen demo`: the whole pipeline on the embedded data, each stage timed: ingest, train the
//! default model, generate 10,000 paths per regime with the model and with each classical
//! baseline, compare their headline figures with the real windows of the regime, write an
//! evaluation report per regime and the risk of an example portfolio under every generator, then
//! the covariance report, the minimum-variance backtest, the example portfolio's VaR backtest
//! and the forecast backtest of every generator. Every setting is a stage's default; the demo only chooses where things go.

use std::path::{Path, PathBuf};
use std::time::Instant;

use scengen::backtest::BacktestConfig;
use scengen::baselines::{generate_baseline, BaselineConfig, Method};
use scengen::covariance::{CovarianceConfig, CovarianceReport};
use scengen::data::{ingest, IngestConfig, SplitChoice, WindowSet, DEFAULT_TEST_FROM};
use scengen::error::Result;
use scengen::evaluate::{default_out, summarize_paths, DailySummary, EvaluateConfig};
use scengen::forecast_backtest::ForecastBacktestConfig;
use scengen::generate::{generate, GenerateConfig};
use scengen::report::StageReport;
use scengen::risk::{RiskConfig, RiskReport, EXAMPLE_PORTFOLIO};
use scengen::scenarios::{default_scenario_file, read_scenarios};
use scengen::train::{train, TrainConfig};
use scengen::var_backtest::VarBacktestConfig;

/// What the demo learnt about one regime.
struct RegimeOutcome {
    label: String,
    /// Headline figures of each generator's set and of the real windows.
    rows: Vec<(String, DailySummary)>,
    /// The evaluation's summary, when the regime has held-out windows.
    evaluation: Option<String>,
    risk: RiskReport,
    diffusion_file: PathBuf,
    files: Vec<PathBuf>,
}

/// The settings the demo's stages share.
struct Demo {
    seed: u64,
    windows: PathBuf,
    model: PathBuf,
    test_from: i32,
    /// One line per stage: what it took and where its output went.
    timings: Vec<String>,
}

/// Runs every stage on the embedded data with `seed`, printing where each output went.
pub fn run(seed: u64) -> Result<()> {
    let started = Instant::now();
    let train_config = TrainConfig {
        seed,
        progress: true,
        ..TrainConfig::default()
    };
    let mut demo = Demo {
        seed,
        windows: train_config.data.clone(),
        model: train_config.out.clone(),
        test_from: train_config.test_from,
        timings: Vec::new(),
    };

    let t = Instant::now();
    print!("{}", ingest(&IngestConfig::embedded(&demo.windows))?);
    println!("[ingest] {:.2} s\n", t.elapsed().as_secs_f64());
    let t = Instant::now();
    print!("{}", train(&train_config)?);
    println!("[train] {:.1} s\n", t.elapsed().as_secs_f64());

    let set = WindowSet::read(&demo.windows)?;
    let mut outcomes = Vec::new();
    for (regime, label) in set.rule.labels.iter().enumerate() {
        outcomes.push(demo.regime(&set, regime, label)?);
    }
    let diffusion_files: Vec<PathBuf> = outcomes.iter().map(|o| o.diffusion_file.clone()).collect();
    let every_file: Vec<PathBuf> = outcomes.iter().flat_map(|o| o.files.clone()).collect();

    let covariance_config = CovarianceConfig {
        real: demo.windows.clone(),
        scenarios: diffusion_files.clone(),
        test_from: demo.test_from,
        ..CovarianceConfig::default()
    };
    let covariance = demo.stage("covariance", &covariance_config.out, || {
        scengen::covariance::run(&covariance_config)
    })?;
    let backtest_config = BacktestConfig {
        scenarios: diffusion_files,
        ..BacktestConfig::default()
    };
    let backtest = demo.stage("backtest", &backtest_config.out, || {
        scengen::backtest::run(&backtest_config)
    })?;
    let var_config = VarBacktestConfig {
        scenarios: every_file,
        ..VarBacktestConfig::default()
    };
    let var_backtest = demo.stage("var-backtest", &var_config.out, || {
        scengen::var_backtest::run(&var_config)
    })?;
    let forecast_config = ForecastBacktestConfig {
        scenarios: var_config.scenarios.clone(),
        portfolio: Some(EXAMPLE_PORTFOLIO.into()),
        seed,
        ..ForecastBacktestConfig::default()
    };
    let forecast = demo.stage("forecast-backtest", &forecast_config.out, || {
        scengen::forecast_backtest::run(&forecast_config)
    })?;

    print_comparison(&outcomes);
    print!("{}", risk_table(&outcomes));
    println!("\ncondition numbers of the covariance estimators (train days of each regime)");
    print_condition_numbers(&covariance);
    println!("\nminimum-variance backtest\n{}", backtest.summary());
    println!(
        "\nVaR backtest of the example portfolio\n{}",
        var_backtest.summary()
    );
    println!(
        "\nforecast backtest: mean scores as of each week (* best)\n{}",
        forecast.summary()
    );
    println!();
    for line in &demo.timings {
        println!("{line}");
    }
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

impl Demo {
    /// Runs an analysis stage, writes its report into `out` and times both.
    fn stage<R: StageReport>(
        &mut self,
        name: &str,
        out: &Path,
        run: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let t = Instant::now();
        let report = run()?;
        report.write(out)?;
        self.timings.push(format!(
            "[{name}] {:.1} s -> {}/report.html",
            t.elapsed().as_secs_f64(),
            out.display()
        ));
        Ok(report)
    }

    /// Generates every set of one regime, then its risk and its evaluation.
    fn regime(&mut self, set: &WindowSet, regime: usize, label: &str) -> Result<RegimeOutcome> {
        let (diffusion_file, mut rows, files) = self.generate(label)?;
        // A regime without held-out windows gets no real reference: its paths are still scored
        // for risk, and there is nothing to evaluate them against.
        let held_out = !set
            .select(Some(regime), SplitChoice::Test, self.test_from)
            .is_empty();
        let risk_config = RiskConfig {
            scenarios: files.clone(),
            real: held_out.then(|| self.windows.clone()),
            test_from: self.test_from,
            seed: self.seed,
            out: Path::new("reports/risk").join(label),
            ..RiskConfig::default()
        };
        let risk = self.stage(&format!("risk {label}"), &risk_config.out, || {
            scengen::risk::run(&risk_config)
        })?;
        let evaluation = if held_out {
            let config = EvaluateConfig {
                real: self.windows.clone(),
                regime: label.to_string(),
                test_from: self.test_from,
                synthetic: files.clone(),
                out: default_out(label),
                ..EvaluateConfig::default()
            };
            let report = self.stage(&format!("evaluate {label}"), &config.out, || {
                scengen::evaluate::run(&config)
            })?;
            Some(report.summary())
        } else {
            self.timings.push(format!(
                "[evaluate {label}] skipped (no held-out window from {DEFAULT_TEST_FROM})"
            ));
            None
        };
        for (name, split) in [
            ("real test", SplitChoice::Test),
            ("real train", SplitChoice::Train),
        ] {
            let idx = set.select(Some(regime), split, self.test_from);
            if !idx.is_empty() {
                let summary = summarize_paths(&set.gather(&idx), set.window, set.assets.len());
                rows.push((name.to_string(), summary));
            }
        }
        Ok(RegimeOutcome {
            label: label.to_string(),
            rows,
            evaluation,
            risk,
            diffusion_file,
            files: files.into_iter().map(|(path, _)| path).collect(),
        })
    }

    /// The diffusion model's and every classical generator's scenario file of one regime, with
    /// their headline figures.
    #[allow(clippy::type_complexity)]
    fn generate(
        &mut self,
        label: &str,
    ) -> Result<(
        PathBuf,
        Vec<(String, DailySummary)>,
        Vec<(PathBuf, Option<String>)>,
    )> {
        let t = Instant::now();
        let out = default_scenario_file(label, None);
        generate(&GenerateConfig {
            model: self.model.clone(),
            regime: Some(label.to_string()),
            seed: self.seed,
            out: out.clone(),
            progress: true,
            ..GenerateConfig::default()
        })?;
        self.timings.push(format!(
            "[generate {label} diffusion] {:.1} s -> {}",
            t.elapsed().as_secs_f64(),
            out.display()
        ));
        let mut rows = vec![("diffusion".to_string(), summarize_file(&out)?)];
        let mut files = vec![(out.clone(), Some("diffusion".to_string()))];
        for method in [Method::Gaussian, Method::Bootstrap, Method::Fhs] {
            let t = Instant::now();
            let file = default_scenario_file(label, Some(method.name()));
            generate_baseline(&BaselineConfig {
                method,
                data: self.windows.clone(),
                regime: label.to_string(),
                seed: self.seed,
                test_from: self.test_from,
                out: file.clone(),
                ..BaselineConfig::default()
            })?;
            self.timings.push(format!(
                "[generate {label} {}] {:.1} s -> {}",
                method.name(),
                t.elapsed().as_secs_f64(),
                file.display()
            ));
            rows.push((method.name().to_string(), summarize_file(&file)?));
            files.push((file, Some(method.name().to_string())));
        }
        Ok((out, rows, files))
    }
}

/// Every regime's headline figures, then each regime's evaluation summary.
fn print_comparison(outcomes: &[RegimeOutcome]) {
    println!(
        "\n{:<10} {:<11} {:>8} {:>10} {:>10}",
        "regime", "source", "EW vol", "ACF|r| 1", "mean corr"
    );
    for outcome in outcomes {
        for (name, s) in &outcome.rows {
            println!(
                "{:<10} {name:<11} {:>7.1}% {:>10.3} {:>10.3}",
                outcome.label,
                s.equal_weight_vol * 100.0,
                s.abs_acf1,
                s.mean_correlation
            );
        }
    }
    for evaluation in outcomes.iter().filter_map(|o| o.evaluation.as_ref()) {
        println!("\n{evaluation}");
    }
}

fn print_condition_numbers(covariance: &CovarianceReport) {
    for e in &covariance.estimates {
        println!(
            "{:<10} {:<19} {:>10.1}",
            e.regime, e.method, e.condition_number
        );
    }
}

/// The example portfolio's 10-day 99% VaR and CVaR under every set of every regime.
fn risk_table(outcomes: &[RegimeOutcome]) -> String {
    let Some(first) = outcomes.first() else {
        return String::new();
    };
    let mut t = format!(
        "\n10-day loss of {} at 99% (gross {:.1} million)\n{:<10} {:<11} {:>12} {:>12}\n",
        EXAMPLE_PORTFOLIO,
        first.risk.gross / 1e6,
        "regime",
        "source",
        "VaR",
        "CVaR"
    );
    for r in outcomes.iter().map(|o| &o.risk) {
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

fn summarize_file(path: &Path) -> Result<DailySummary> {
    let s = read_scenarios(path)?;
    Ok(summarize_paths(&s.values, s.window, s.assets.len()))
}
