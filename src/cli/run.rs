//! `scengen run --config FILE`: a nightly run described in one TOML file. Each section is a
//! stage and each of its keys one of that command's flags without `--` (`n = 10000`,
//! `horizons = [1, 10]`), so a section means what the same command line means; the run sets
//! the paths between the stages itself. This module turns the file into the steps that
//! [`scengen::pipeline`] runs. Schema: docs/commands.md; example: data/nightly.toml.

mod plan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use serde::Deserialize;
use toml::Spanned;

use super::{Cli, Job};
use plan::Plan;
use scengen::error::{Error, Result};
use scengen::pipeline::{execute, Input, LogLine, Step};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The run's TOML file (schema: docs/commands.md, `scengen run`; example: data/nightly.toml).
    #[arg(long)]
    pub config: PathBuf,
}

type Section = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// The run file. Paths in it are relative to the working folder, as on a command line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RunFile {
    /// The run folder, which holds every output and the manifest.
    out: PathBuf,
    /// A model folder to generate from, instead of a [train] section.
    model: Option<PathBuf>,
    /// The held-out boundary, given to every section that has one unless it sets its own.
    test_from: Option<toml::Value>,
    /// Books for [risk] and [var-backtest].
    #[serde(default)]
    portfolios: Vec<PathBuf>,
    ingest: Option<Section>,
    train: Option<Section>,
    /// The model fine-tuned for a few-step sampler; every later step then uses it.
    distill: Option<Section>,
    generate: Option<Section>,
    /// Scenarios from the latest close of the prices, one file per generator.
    as_of: Option<Section>,
    evaluate: Option<Section>,
    risk: Option<Section>,
    var_backtest: Option<Section>,
    covariance: Option<Section>,
    backtest: Option<Section>,
    forecast_backtest: Option<Section>,
}

/// Runs the file's pipeline, printing the log's lines as its steps finish.
pub fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config).map_err(|source| Error::Io {
        path: args.config.clone(),
        source,
    })?;
    let file: RunFile = toml::from_str(&text)
        .map_err(|e| Error::bad_file(&args.config, e.to_string().trim_end()))?;
    let source = Source {
        path: &args.config,
        text: &text,
    };
    let out = file.out.clone();
    let steps = Plan::new(source, file)?.steps()?;
    let summary = execute(&out, &args.config, steps, &mut print_line)?;
    if summary.ran == 0 {
        eprintln!(
            "nothing to do: all {} steps are up to date; {} is as it was",
            summary.up_to_date,
            out.display()
        );
    } else {
        eprintln!(
            "wrote {} ({} steps ran, {} up to date; log in {})",
            summary.out.display(),
            summary.ran,
            summary.up_to_date,
            summary.out.join(scengen::pipeline::LOG_FILE).display()
        );
    }
    Ok(())
}

fn print_line(line: &LogLine) {
    println!(
        "{}",
        serde_json::to_string(line).expect("a log line serialises")
    );
}

/// The run file's text, for messages that name a line.
#[derive(Clone, Copy)]
struct Source<'t> {
    path: &'t Path,
    text: &'t str,
}

impl Source<'_> {
    /// An error at the byte offset `at` of the file.
    fn error_at(&self, at: usize, reason: impl std::fmt::Display) -> Error {
        let line = self.text[..at.min(self.text.len())].matches('\n').count() + 1;
        Error::bad_file(self.path, format!("line {line}: {reason}"))
    }

    /// An error in section `section`.
    fn error_in(&self, section: &str, reason: impl std::fmt::Display) -> Error {
        Error::bad_file(self.path, format!("[{section}]: {reason}"))
    }
}

/// A value on a stage's command line: as given, a path in the run folder (joined to it only
/// when the folder is known), or a switch that takes no value.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    InRun(String),
    Switch,
}

/// A stage's command line, its run-folder paths kept apart until the folder is known.
#[derive(Debug, Clone)]
struct Flags {
    command: &'static str,
    items: Vec<(String, Value)>,
}

impl Flags {
    fn set(mut self, flag: &str, value: Value) -> Self {
        self.items.push((flag.to_string(), value));
        self
    }

    fn text(self, flag: &str, value: impl ToString) -> Self {
        self.set(flag, Value::Text(value.to_string()))
    }

    fn in_run(self, flag: &str, path: &str) -> Self {
        self.set(flag, Value::InRun(path.to_string()))
    }

    fn has(&self, flag: &str) -> bool {
        self.items.iter().any(|(f, _)| f == flag)
    }

    fn get(&self, flag: &str) -> Option<&Value> {
        self.items.iter().find(|(f, _)| f == flag).map(|(_, v)| v)
    }

    /// Sets `flag` unless the section set it.
    fn or(self, flag: &str, value: Option<&Value>) -> Self {
        match value {
            Some(value) if !self.has(flag) => self.set(flag, value.clone()),
            _ => self,
        }
    }

    /// The command line with the run folder at `root`.
    fn render(&self, root: Option<&Path>) -> Vec<String> {
        let mut line = vec!["scengen".to_string(), self.command.to_string()];
        for (flag, value) in &self.items {
            line.push(format!("--{flag}"));
            match value {
                Value::Text(text) => line.push(text.clone()),
                Value::InRun(path) => line.push(match root {
                    Some(root) => root.join(path).display().to_string(),
                    None => path.clone(),
                }),
                Value::Switch => {}
            }
        }
        line
    }

    /// What decides the stage's outputs, its paths in the run folder as written in the file.
    fn settings(&self) -> String {
        self.render(None)[1..].join(" ")
    }

    /// The stage's job, its flags checked as the command's own: with the run folder at `root`,
    /// or with its paths relative to the run folder (the working folder of a step), and the
    /// user's files made absolute against `home`, the folder the run started in.
    fn job(&self, root: Option<&Path>, home: &Path, source: Source<'_>) -> Result<Job> {
        let cli = Cli::try_parse_from(self.render(root)).map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            source.error_in(self.command, first.trim_start_matches("error: "))
        })?;
        let job = Job::of(cli.command).map_err(|e| match e {
            Error::InvalidOption { .. } => source.error_in(self.command, e),
            other => other,
        })?;
        let mut job = job.expect("sections are stages");
        for path in user_files(&mut job) {
            *path = home.join(&*path);
        }
        Ok(job)
    }

    /// A step running this stage.
    fn step(
        self,
        name: String,
        inputs: Vec<Input>,
        outputs: Vec<String>,
        home: &Path,
        source: Source<'_>,
    ) -> Step<'static> {
        let settings = self.settings();
        let (path, text, home) = (
            source.path.to_path_buf(),
            source.text.to_string(),
            home.to_path_buf(),
        );
        Step {
            name,
            settings,
            inputs,
            outputs,
            action: Box::new(move || {
                let source = Source {
                    path: &path,
                    text: &text,
                };
                self.job(None, &home, source)?.quiet().perform().map(drop)
            }),
        }
    }
}

/// The user's files a stage's config reads, which a step must see as absolute paths (its
/// inputs from earlier steps are paths in the run folder, named apart).
fn user_files(job: &mut Job) -> Vec<&mut PathBuf> {
    match job {
        Job::Ingest(c) => vec![&mut c.input, signal_path(&mut c.signal)],
        Job::Risk(c) => vec![&mut c.portfolio],
        Job::VarBacktest(c) => vec![&mut c.portfolio, &mut c.prices, signal_path(&mut c.signal)],
        Job::Backtest(c) => vec![&mut c.prices, signal_path(&mut c.signal)],
        Job::ForecastBacktest(c) => {
            let mut files = vec![&mut c.prices, signal_path(&mut c.signal)];
            files.extend(c.portfolio.as_mut());
            files
        }
        Job::Generate(job) => {
            let as_of = match job {
                crate::cli::model::GenerateJob::Diffusion(c) => c.as_of.as_mut(),
                crate::cli::model::GenerateJob::Baseline(c) => c.as_of.as_mut(),
            };
            match as_of {
                Some(a) => vec![&mut a.prices, signal_path(&mut a.signal)],
                None => Vec::new(),
            }
        }
        Job::Train(_) | Job::Distill(_) | Job::Evaluate(_) | Job::Covariance(_) => Vec::new(),
    }
}

fn signal_path(signal: &mut scengen::data::SignalSource) -> &mut PathBuf {
    use scengen::data::SignalSource::{Level, RealizedVol};
    match signal {
        RealizedVol { path, .. } | Level { path, .. } => path,
    }
}

/// The flags of section `name`, after checking every key against the command's flags; keys in
/// `own` are the run's (`generators`, `regimes`) and come back apart, keys in `reserved` are
/// the run's to set and are refused.
fn section_flags(
    source: Source<'_>,
    name: &'static str,
    section: Option<&Section>,
    reserved: &[&str],
    own: &[&str],
) -> Result<(Flags, BTreeMap<String, toml::Value>)> {
    command_flags(source, (name, name), section, reserved, own)
}

/// [`section_flags`] of section `name` whose keys are the flags of another `command`.
fn command_flags(
    source: Source<'_>,
    (name, command): (&'static str, &'static str),
    section: Option<&Section>,
    reserved: &[&str],
    own: &[&str],
) -> Result<(Flags, BTreeMap<String, toml::Value>)> {
    let cli = Cli::command();
    let sub = cli
        .find_subcommand(command)
        .expect("every section runs a subcommand");
    let mut flags = Flags {
        command,
        items: Vec::new(),
    };
    let mut own_values = BTreeMap::new();
    for (key, value) in section.into_iter().flatten() {
        let (at, key_name) = (key.span().start, key.get_ref().as_str());
        if own.contains(&key_name) {
            own_values.insert(key_name.to_string(), value.get_ref().clone());
            continue;
        }
        if reserved.contains(&key_name) {
            return Err(source.error_at(
                at,
                format!("`{key_name}` in [{name}] is set by the run, which links the stages"),
            ));
        }
        let Some(arg) = sub.get_arguments().find(|a| a.get_long() == Some(key_name)) else {
            let mut known: Vec<&str> = sub
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|k| !reserved.contains(k) && *k != "help")
                .chain(own.iter().copied())
                .collect();
            known.sort();
            return Err(source.error_at(
                at,
                format!(
                    "unknown key `{key_name}` in [{name}]; its keys are: {}",
                    known.join(", ")
                ),
            ));
        };
        let Some(text) = flag_text(value.get_ref()) else {
            return Err(source.error_at(
                value.span().start,
                format!("`{key_name}` takes a string, number, boolean, date or list of them"),
            ));
        };
        flags = match (arg.get_action().takes_values(), text.as_str()) {
            (true, _) => flags.text(key_name, text),
            (false, "true") => flags.set(key_name, Value::Switch),
            (false, "false") => flags,
            (false, _) => {
                return Err(
                    source.error_at(value.span().start, format!("`{key_name}` is true or false"))
                )
            }
        };
    }
    Ok((flags, own_values))
}

/// A TOML value as a flag's text: lists comma-separated, as on the command line.
fn flag_text(value: &toml::Value) -> Option<String> {
    Some(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(flag_text)
            .collect::<Option<Vec<_>>>()?
            .join(","),
        toml::Value::Table(_) => return None,
    })
}

/// A list of the run's own (`generators = ["diffusion", "fhs"]`), or `default`.
fn own_list(
    source: Source<'_>,
    section: &str,
    own: &BTreeMap<String, toml::Value>,
    key: &str,
    default: Vec<String>,
) -> Result<Vec<String>> {
    let Some(value) = own.get(key) else {
        return Ok(default);
    };
    let list = match value {
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    match list {
        Some(list) if !list.is_empty() => Ok(list),
        _ => Err(source.error_in(section, format!("`{key}` is a non-empty list of names"))),
    }
}
