//! The `scengen` command line: options are parsed here and handed to the library; nothing in
//! this module computes anything.

mod backtest;
mod covariance;
mod evaluate;
mod ingest;
mod model;
mod risk;

use clap::{Parser, Subcommand};

use crate::error::Result;

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
        matches!(sampling.engine, model::EngineArg::Candle)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a Parquet panel and write regime-labelled rolling windows of log returns.
    Ingest(ingest::IngestArgs),
    /// Train the regime-conditioned diffusion model on a windows file.
    Train(model::TrainArgs),
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
    /// Measure generation speed (median of several runs) and print JSON.
    Bench(model::BenchArgs),
    /// Run the whole pipeline on the embedded data.
    Demo(DemoArgs),
}

/// Options of `scengen demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seed for every random draw of the demo.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Ingest(args) => {
            let summary = crate::data::ingest(&args.into_config()?)?;
            print!("{summary}");
            Ok(())
        }
        Command::Train(args) => {
            let report = crate::train::train(&args.into_config()?)?;
            print!("{report}");
            Ok(())
        }
        Command::Generate(args) => {
            let out = match args.into_job()? {
                model::GenerateJob::Diffusion(c) => crate::sample::generate(&c)?,
                model::GenerateJob::Baseline(c) => crate::baselines::generate_baseline(&c)?,
            };
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Evaluate(args) => {
            let config = args.into_config()?;
            let e = crate::eval::evaluate(&config)?;
            print!("{}", crate::eval::summary_text(&e));
            println!(
                "wrote {}/report.html and metrics.json",
                config.out.display()
            );
            Ok(())
        }
        Command::Covariance(args) => {
            let config = args.into_config()?;
            for e in crate::covariance::covariance_report(&config)? {
                println!(
                    "{:<10} {:<19} condition number {:>10.2}",
                    e.regime, e.method, e.condition_number
                );
            }
            println!(
                "wrote {}/matrices.parquet, covariance.json and report.html",
                config.out.display()
            );
            Ok(())
        }
        Command::Backtest(args) => {
            let config = args.into_config()?;
            let b = crate::portfolio::run_backtest(&config)?;
            crate::portfolio::write_backtest(&config, &b)?;
            print!("{}", crate::portfolio::summary_text(&b));
            println!(
                "wrote {}/weights.parquet, returns.parquet, summary.json and report.html",
                config.out.display()
            );
            Ok(())
        }
        Command::Risk(args) => {
            let config = args.into_config()?;
            let report = crate::risk::run_risk(&config)?;
            print!("{}", crate::risk::summary_text(&report));
            println!(
                "wrote {}/risk.json, pnl.parquet and report.html",
                config.out.display()
            );
            Ok(())
        }
        Command::VarBacktest(args) => {
            let config = args.into_config()?;
            let b = crate::risk::run_var_backtest(&config)?;
            crate::risk::write_var_backtest(&config, &b)?;
            print!("{}", crate::risk::var_backtest_text(&b));
            println!(
                "wrote {}/var_backtest.json, forecasts.parquet and report.html",
                config.out.display()
            );
            Ok(())
        }
        Command::Bench(args) => {
            let (config, out) = args.into_config()?;
            let report = crate::sample::bench(&config)?;
            let json = serde_json::to_string_pretty(&report).expect("report serialises");
            println!("{json}");
            if let Some(path) = out {
                crate::io::write_text_atomic(&path, &json)?;
            }
            Ok(())
        }
        Command::Demo(args) => crate::demo::run(args.seed),
    }
}

/// Pairs scenario files (given with `option`) with their `--label`s: none, or one per file.
fn labelled(
    option: &str,
    files: Vec<std::path::PathBuf>,
    labels: Vec<String>,
) -> Result<Vec<(std::path::PathBuf, Option<String>)>> {
    if !labels.is_empty() && labels.len() != files.len() {
        return Err(crate::Error::option(
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
        return Err(crate::Error::option(option, text, "the list is empty"));
    }
    let entries: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if let Some(position) = entries.iter().position(String::is_empty) {
        return Err(crate::Error::option(
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
                .map_err(|_| crate::Error::option(option, text, format!("`{t}` is not a number")))
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
                Err(crate::Error::option(
                    option,
                    text,
                    format!("`{h}` is not a whole number of days"),
                ))
            }
        })
        .collect()
}
