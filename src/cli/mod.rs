//! The `scengen` command line: options are parsed here and handed to the library; nothing in
//! this module computes anything.

mod backtest;
mod covariance;
mod distill;
mod evaluate;
mod forecast;
mod ingest;
mod model;
mod risk;
mod run;
mod sampling;

use std::path::Path;

use clap::{Parser, Subcommand};

use scengen::error::{Error, Result};
use scengen::io::OutputLock;
use scengen::report::StageReport;

/// Financial market scenarios from diffusion models.
#[derive(Debug, Parser)]
#[command(name = "scengen", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether the command runs the network on candle's CPU ops (`--engine candle`), which
    /// spread over candle's own thread pool; the default engine runs it on scengen's threads.
    pub fn runs_candle_network(&self) -> bool {
        let sampling = match &self.command {
            Command::Generate(args) => &args.sampling,
            Command::Bench(args) => &args.sampling,
            _ => return false,
        };
        matches!(sampling.engine, sampling::EngineArg::Candle)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a Parquet panel and write regime-labelled rolling windows of log returns.
    Ingest(ingest::IngestArgs),
    /// Train the regime-conditioned diffusion model on a windows file.
    Train(model::TrainArgs),
    /// Fine-tune a trained model so that a few-step sampler draws its default sampler's
    /// scenarios.
    Distill(distill::DistillArgs),
    /// Generate scenario paths for one regime.
    Generate(model::GenerateArgs),
    /// Score scenario files against real windows of their regime; write an HTML report and JSON.
    Evaluate(evaluate::EvaluateArgs),
    /// Covariance matrices of every estimator per regime: Parquet, JSON, HTML.
    Covariance(covariance::CovarianceArgs),
    /// Out-of-sample minimum-variance portfolios from every covariance estimator.
    Backtest(backtest::BacktestArgs),
    /// VaR, CVaR and stress P&L of a portfolio over scenario paths: JSON, Parquet, HTML.
    Risk(risk::RiskArgs),
    /// Test a portfolio's VaR from each generator's scenarios against real P&L, day by day.
    VarBacktest(risk::VarBacktestArgs),
    /// Score every generator's scenarios, as of each day, against what happened next.
    ForecastBacktest(forecast::ForecastBacktestArgs),
    /// Measure generation speed (median of several runs) and print JSON.
    Bench(model::BenchArgs),
    /// Run the whole pipeline on the embedded data.
    Demo(DemoArgs),
    /// Write a synthetic panel with a known factor structure and its index (for benches).
    Synthetic(ingest::SyntheticArgs),
    /// Run a nightly pipeline described in a TOML file; only what changed runs again.
    Run(run::RunArgs),
}

/// Options of `scengen demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seed for every random draw of the demo.
    #[arg(long, default_value_t = scengen::rng::DEFAULT_SEED)]
    pub seed: u64,
}

/// Runs the parsed command. The library names a setting it refuses by its config field; here
/// it is reported under the flag that sets it. Each command holds its output's lock from the
/// start, so a second run aimed at the same output fails at once rather than after its work.
pub fn run(cli: Cli) -> Result<()> {
    run_command(cli).map_err(|error| match error {
        Error::InvalidOption {
            option,
            value,
            reason,
        } => Error::InvalidOption {
            option: flag_of(&option),
            value,
            reason,
        },
        other => other,
    })
}

/// The flag that sets a config field (`batch_size` → `--batch-size`). A name the edge gave
/// already (`--from`) or one no flag sets (`validation fraction`) is kept.
fn flag_of(setting: &str) -> String {
    match setting {
        s if s.starts_with("--") || s.contains(' ') => s.to_string(),
        "learning_rate" => "--lr".to_string(),
        "base_channels" => "--channels".to_string(),
        s => format!("--{}", s.replace('_', "-")),
    }
}

fn run_command(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(args) => {
            let (config, out) = args.into_config()?;
            let report = scengen::generate::bench(&config)?;
            let json = serde_json::to_string_pretty(&report).expect("report serialises");
            println!("{json}");
            if let Some(path) = out {
                scengen::io::write_text_atomic(&path, &json)?;
            }
            Ok(())
        }
        Command::Demo(args) => crate::demo::run(args.seed),
        Command::Run(args) => run::run(args),
        Command::Synthetic(args) => {
            let config = args.into_config();
            let _panel = OutputLock::acquire(&config.out)?;
            let _index = OutputLock::acquire(&config.index_out)?;
            scengen::data::write_synthetic_panel(&config)?;
            println!(
                "wrote {} and {}",
                config.out.display(),
                config.index_out.display()
            );
            Ok(())
        }
        stage => {
            let job = Job::of(stage)?.expect("bench, demo and run are handled above");
            print!("{}", job.perform()?);
            Ok(())
        }
    }
}

/// One stage's run, its flags checked and turned into the library's config.
pub(crate) enum Job {
    Ingest(scengen::data::IngestConfig),
    Train(scengen::train::TrainConfig),
    Distill(scengen::distill::DistillConfig),
    Generate(model::GenerateJob),
    Evaluate(scengen::evaluate::EvaluateConfig),
    Covariance(scengen::covariance::CovarianceConfig),
    Backtest(scengen::backtest::BacktestConfig),
    Risk(scengen::risk::RiskConfig),
    VarBacktest(scengen::var_backtest::VarBacktestConfig),
    ForecastBacktest(scengen::forecast_backtest::ForecastBacktestConfig),
}

impl Job {
    /// The stage a command runs; `None` for the commands that are not one stage.
    pub(crate) fn of(command: Command) -> Result<Option<Job>> {
        Ok(Some(match command {
            Command::Ingest(args) => Job::Ingest(args.into_config()?),
            Command::Train(args) => Job::Train(args.into_config()?),
            Command::Distill(args) => Job::Distill(args.into_config()?),
            Command::Generate(args) => Job::Generate(args.into_job()?),
            Command::Evaluate(args) => Job::Evaluate(args.into_config()?),
            Command::Covariance(args) => Job::Covariance(args.into_config()?),
            Command::Backtest(args) => Job::Backtest(args.into_config()?),
            Command::Risk(args) => Job::Risk(args.into_config()?),
            Command::VarBacktest(args) => Job::VarBacktest(args.into_config()?),
            Command::ForecastBacktest(args) => Job::ForecastBacktest(args.into_config()?),
            Command::Bench(_) | Command::Demo(_) | Command::Run(_) | Command::Synthetic(_) => {
                return Ok(None)
            }
        }))
    }

    /// The output it writes.
    pub(crate) fn out(&self) -> &Path {
        match self {
            Job::Ingest(c) => &c.out,
            Job::Train(c) => &c.out,
            Job::Distill(c) => &c.out,
            Job::Generate(model::GenerateJob::Diffusion(c)) => &c.out,
            Job::Generate(model::GenerateJob::Baseline(c)) => &c.out,
            Job::Evaluate(c) => &c.out,
            Job::Covariance(c) => &c.out,
            Job::Backtest(c) => &c.out,
            Job::Risk(c) => &c.out,
            Job::VarBacktest(c) => &c.out,
            Job::ForecastBacktest(c) => &c.out,
        }
    }

    /// Without progress bars, for unattended runs.
    pub(crate) fn quiet(mut self) -> Self {
        match &mut self {
            Job::Train(c) => c.progress = false,
            Job::Distill(c) => c.progress = false,
            Job::Generate(model::GenerateJob::Diffusion(c)) => c.progress = false,
            _ => {}
        }
        self
    }

    /// Runs the stage, holding its output's lock from the start, so a second run aimed at the
    /// same output fails at once rather than after its work. Returns what it has to say.
    pub(crate) fn perform(self) -> Result<String> {
        let _writing = OutputLock::acquire(self.out())?;
        match self {
            Job::Ingest(c) => Ok(scengen::data::ingest(&c)?.to_string()),
            Job::Train(c) => Ok(scengen::train::train(&c)?.to_string()),
            Job::Distill(c) => Ok(scengen::distill::distill(&c)?.to_string()),
            Job::Generate(model::GenerateJob::Diffusion(c)) => {
                wrote(scengen::generate::generate(&c)?)
            }
            Job::Generate(model::GenerateJob::Baseline(c)) => {
                wrote(scengen::baselines::generate_baseline(&c)?)
            }
            Job::Evaluate(c) => finish(&scengen::evaluate::run(&c)?, &c.out),
            Job::Covariance(c) => finish(&scengen::covariance::run(&c)?, &c.out),
            Job::Backtest(c) => finish(&scengen::backtest::run(&c)?, &c.out),
            Job::Risk(c) => finish(&scengen::risk::run(&c)?, &c.out),
            Job::VarBacktest(c) => finish(&scengen::var_backtest::run(&c)?, &c.out),
            Job::ForecastBacktest(c) => finish(&scengen::forecast_backtest::run(&c)?, &c.out),
        }
    }
}

fn wrote(path: std::path::PathBuf) -> Result<String> {
    Ok(format!("wrote {}\n", path.display()))
}

/// Writes an analysis stage's report into `out`; its summary and where it went, as text.
fn finish<R: StageReport>(report: &R, out: &Path) -> Result<String> {
    let folder = report.write(out)?;
    Ok(format!(
        "{}wrote {} into {}\n",
        report.summary(),
        R::FILES.join(", "),
        folder.display()
    ))
}

/// A day number as a flag's `YYYY-MM-DD` value.
fn date(day: i32) -> String {
    scengen::io::format_date(day)
}

/// A list as a flag's comma-separated value.
fn list<T: std::fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Pairs scenario files (given with `option`) with their `--label`s: none, or one per file.
fn labelled(
    option: &str,
    files: Vec<std::path::PathBuf>,
    labels: Vec<String>,
) -> Result<Vec<(std::path::PathBuf, Option<String>)>> {
    if !labels.is_empty() && labels.len() != files.len() {
        return Err(scengen::Error::option(
            "--label",
            labels.join(","),
            format!("{} labels for {} {option} files", labels.len(), files.len()),
        ));
    }
    let labels = labels.into_iter().map(Some).chain(std::iter::repeat(None));
    Ok(files.into_iter().zip(labels).collect())
}

/// Splits a comma-separated value of `option`. An empty entry is refused rather than
/// dropped: `0.95,,0.99` or a trailing comma is more likely a lost value than an intended one.
fn split_list(option: &str, text: &str) -> Result<Vec<String>> {
    if text.trim().is_empty() {
        return Err(scengen::Error::option(option, text, "the list is empty"));
    }
    let entries: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(position) = entries.iter().position(String::is_empty) {
        return Err(scengen::Error::option(
            option,
            text,
            format!(
                "entry {} of {} is empty (two commas in a row, or one at an end)",
                position + 1,
                entries.len()
            ),
        ));
    }
    Ok(entries)
}

/// Parses a comma-separated list of numbers for `option`.
fn parse_numbers(option: &str, text: &str) -> Result<Vec<f64>> {
    split_list(option, text)?
        .iter()
        .map(|t| {
            t.parse::<f64>()
                .map_err(|_| scengen::Error::option(option, text, format!("`{t}` is not a number")))
        })
        .collect()
}

/// Parses a comma-separated list of whole numbers of days for `option`.
fn parse_days(option: &str, text: &str) -> Result<Vec<usize>> {
    parse_numbers(option, text)?
        .into_iter()
        .map(|h| {
            if h.fract() == 0.0 && (1.0..=u16::MAX as f64).contains(&h) {
                Ok(h as usize)
            } else {
                Err(scengen::Error::option(
                    option,
                    text,
                    format!("`{h}` is not a whole number of days"),
                ))
            }
        })
        .collect()
}
