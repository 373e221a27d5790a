//! The steps of a run file, in order: ingest, train, distill, generate (each generator and regime),
//! as-of (each generator, from the latest close), evaluate (each regime), risk (each book and regime), var-backtest (each book), covariance,
//! backtest and forecast-backtest. Every step's flags are checked here, before anything runs.

use std::path::PathBuf;

use super::{
    command_flags, flag_text, own_list, section_flags, user_files, Flags, RunFile, Source, Value,
};
use crate::cli::Job;
use scengen::data::ValueKind;
use scengen::error::Result;
use scengen::pipeline::{Input, Step};

const WINDOWS: &str = "windows.parquet";
const MODEL: &str = "model";
const DISTILLED: &str = "distilled";
const SCENARIOS: &str = "scenarios";
/// The generators of a [generate] section without `generators`: the demo's.
const GENERATORS: [&str; 4] = ["diffusion", "gaussian", "bootstrap", "fhs"];
/// The generators of an [as-of] section without `generators`: every one with a state to start
/// from.
const AS_OF_GENERATORS: [&str; 3] = ["diffusion", "fhs", "filtered-hs"];

/// The regime and price keys of [ingest] that the backtests share unless they set their own.
const SHARED_WITH_BACKTESTS: [&str; 5] = ["signal", "index", "thresholds", "labels", "date-column"];

/// A scenario set the run generates.
struct Generated {
    generator: String,
    regime: String,
    path: String,
}

pub(super) struct Plan<'t> {
    source: Source<'t>,
    /// The folder the run started in, against which the user's paths are made absolute.
    home: PathBuf,
    file: RunFile,
    test_from: Option<Value>,
    ingest: Flags,
    /// Whether the ingested panel holds returns rather than prices.
    ingest_returns: bool,
    steps: Vec<Step<'static>>,
    generated: Vec<Generated>,
}

impl<'t> Plan<'t> {
    pub(super) fn new(source: Source<'t>, file: RunFile) -> Result<Self> {
        let test_from = file
            .test_from
            .as_ref()
            .map(|v| flag_text(v).map(Value::Text))
            .map(|v| v.ok_or_else(|| source.error_in("run", "`test-from` is a date")))
            .transpose()?;
        let (ingest, _) = section_flags(source, "ingest", file.ingest.as_ref(), &["out"], &[])?;
        let home = std::env::current_dir().map_err(|e| {
            source.error_in("run", format!("the working folder cannot be read: {e}"))
        })?;
        Ok(Self {
            source,
            home,
            file,
            test_from,
            ingest: ingest.in_run("out", WINDOWS),
            ingest_returns: false,
            steps: Vec::new(),
            generated: Vec::new(),
        })
    }

    /// Every step of the run, each checked.
    pub(super) fn steps(mut self) -> Result<Vec<Step<'static>>> {
        let labels = self.ingest_step()?;
        let model = self.train_step()?;
        let model = self.distill_step(model)?;
        self.generate_steps(model.clone(), &labels)?;
        self.as_of_steps(model)?;
        self.evaluate_steps()?;
        self.risk_steps()?;
        self.var_backtest_steps()?;
        self.covariance_step()?;
        self.backtest_step("backtest", false)?;
        self.backtest_step("forecast-backtest", true)?;
        Ok(self.steps)
    }

    /// Checks `flags` as the command line they make, and adds the step that runs them with the
    /// user's files of its config among its inputs.
    fn add(
        &mut self,
        name: String,
        flags: Flags,
        mut inputs: Vec<Input>,
        out: &str,
    ) -> Result<Job> {
        let mut job = flags.job(Some(&self.file.out), &self.home, self.source)?;
        inputs.extend(
            user_files(&mut job)
                .into_iter()
                .map(|p| Input::File(p.clone())),
        );
        let outputs = vec![out.to_string()];
        let step = flags.step(name, inputs, outputs, &self.home, self.source);
        self.steps.push(step);
        Ok(job)
    }

    fn ingest_step(&mut self) -> Result<Vec<String>> {
        if self.file.ingest.is_none() {
            return Err(self.source.error_in(
                "ingest",
                "missing: the run's data (an empty [ingest] is the embedded S&P data)",
            ));
        }
        let flags = self.ingest.clone();
        let Job::Ingest(config) = self.add("ingest".into(), flags, vec![], WINDOWS)? else {
            unreachable!("an ingest section is an ingest job")
        };
        self.ingest_returns = !matches!(config.kind, ValueKind::Prices);
        Ok(config.rule.labels)
    }

    /// The train step, if any; the model folder generation reads and how it is an input.
    fn train_step(&mut self) -> Result<Option<(Value, Input)>> {
        let Some(section) = self.file.train.take() else {
            return Ok(self
                .file
                .model
                .as_ref()
                .map(|m| (Value::Text(m.display().to_string()), Input::File(m.clone()))));
        };
        if self.file.model.is_some() {
            return Err(self.source.error_in(
                "train",
                "given with a top-level `model`: train one, or use the one given",
            ));
        }
        let (flags, _) =
            section_flags(self.source, "train", Some(&section), &["data", "out"], &[])?;
        let flags = flags
            .in_run("data", WINDOWS)
            .in_run("out", MODEL)
            .or("test-from", self.test_from.as_ref());
        let inputs = vec![Input::Output(WINDOWS.into())];
        self.add("train".into(), flags, inputs, MODEL)?;
        Ok(Some((
            Value::InRun(MODEL.into()),
            Input::Output(MODEL.into()),
        )))
    }

    /// The distill step, if any: the trained (or given) model fine-tuned for a few-step
    /// sampler, which then stands in for it in every later step.
    fn distill_step(&mut self, model: Option<(Value, Input)>) -> Result<Option<(Value, Input)>> {
        let Some(section) = self.file.distill.take() else {
            return Ok(model);
        };
        let (flags, _) = section_flags(
            self.source,
            "distill",
            Some(&section),
            &["teacher", "out"],
            &[],
        )?;
        let Some((teacher, input)) = model else {
            return Err(self.source.error_in(
                "distill",
                "needs a model: a [train] section or a top-level `model`",
            ));
        };
        let flags = flags.set("teacher", teacher).in_run("out", DISTILLED);
        self.add("distill".into(), flags, vec![input], DISTILLED)?;
        Ok(Some((
            Value::InRun(DISTILLED.into()),
            Input::Output(DISTILLED.into()),
        )))
    }

    fn generate_steps(&mut self, model: Option<(Value, Input)>, labels: &[String]) -> Result<()> {
        let Some(section) = self.file.generate.take() else {
            return Ok(());
        };
        let reserved = ["data", "model", "regime", "method", "out", "shard"];
        let own = ["generators", "regimes"];
        let (base, own_values) =
            section_flags(self.source, "generate", Some(&section), &reserved, &own)?;
        let defaults = GENERATORS.iter().map(|g| g.to_string()).collect();
        let generators = own_list(self.source, "generate", &own_values, "generators", defaults)?;
        let regimes = own_list(
            self.source,
            "generate",
            &own_values,
            "regimes",
            labels.to_vec(),
        )?;
        if let Some(unknown) = regimes.iter().find(|r| !labels.contains(r)) {
            let known = labels.join(", ");
            let reason = format!("regime `{unknown}` is not one of the data's: {known}");
            return Err(self.source.error_in("generate", reason));
        }
        let base = base
            .in_run("data", WINDOWS)
            .or("test-from", self.test_from.as_ref());
        for generator in &generators {
            let model = match (&model, generator.as_str()) {
                (_, g) if g != "diffusion" => None,
                (Some(model), _) => Some(model.clone()),
                (None, _) => {
                    let reason =
                        "the diffusion generator needs a [train] section or a top-level `model`";
                    return Err(self.source.error_in("generate", reason));
                }
            };
            for regime in &regimes {
                let path = format!("{SCENARIOS}/{generator}/regime={regime}/part-0.parquet");
                let mut flags = base
                    .clone()
                    .text("method", generator)
                    .text("regime", regime)
                    .in_run("out", &path);
                let input = match &model {
                    Some((flag, input)) => {
                        flags = flags.set("model", flag.clone());
                        input.clone()
                    }
                    None => Input::Output(WINDOWS.into()),
                };
                self.add(
                    format!("generate {generator} {regime}"),
                    flags,
                    vec![input],
                    &path,
                )?;
                self.generated.push(Generated {
                    generator: generator.clone(),
                    regime: regime.clone(),
                    path,
                });
            }
        }
        Ok(())
    }

    /// `[as-of]`: each generator's scenarios from the market's state at the latest close of
    /// the ingested panel (or the section's `prices` and `as-of`), to `as-of/<generator>.parquet`.
    fn as_of_steps(&mut self, model: Option<(Value, Input)>) -> Result<()> {
        let Some(section) = self.file.as_of.take() else {
            return Ok(());
        };
        let reserved = ["data", "model", "regime", "method", "out", "shard"];
        let own = ["generators"];
        let sections = ("as-of", "generate");
        let (base, own_values) =
            command_flags(self.source, sections, Some(&section), &reserved, &own)?;
        let defaults = AS_OF_GENERATORS.iter().map(|g| g.to_string()).collect();
        let generators = own_list(self.source, "as-of", &own_values, "generators", defaults)?;
        if let Some(other) = generators
            .iter()
            .find(|g| !AS_OF_GENERATORS.contains(&g.as_str()))
        {
            let known = AS_OF_GENERATORS.join(", ");
            let reason = format!("`{other}` has no state to start from; as of a close: {known}");
            return Err(self.source.error_in("as-of", reason));
        }
        let base = self
            .panel_flags(base)
            .or("as-of", Some(&Value::Text(scengen::data::LATEST.into())))
            .in_run("data", WINDOWS)
            .or("test-from", self.test_from.as_ref());
        for generator in &generators {
            let path = format!("as-of/{generator}.parquet");
            let mut flags = base.clone().text("method", generator).in_run("out", &path);
            let input = match (&model, generator.as_str()) {
                (Some((flag, input)), "diffusion") => {
                    flags = flags.set("model", flag.clone());
                    input.clone()
                }
                (None, "diffusion") => {
                    let reason =
                        "the diffusion generator needs a [train] section or a top-level `model`";
                    return Err(self.source.error_in("as-of", reason));
                }
                _ => Input::Output(WINDOWS.into()),
            };
            self.add(format!("as-of {generator}"), flags, vec![input], &path)?;
        }
        Ok(())
    }

    /// The regimes generated, in order.
    fn regimes(&self) -> Vec<String> {
        let mut regimes: Vec<String> = Vec::new();
        for set in &self.generated {
            if !regimes.contains(&set.regime) {
                regimes.push(set.regime.clone());
            }
        }
        regimes
    }

    /// The scenario sets of `regime` as `--{option} FILE --label GENERATOR` pairs, and as inputs.
    fn sets_of(&self, mut flags: Flags, option: &str, regime: &str) -> (Flags, Vec<Input>) {
        let mut inputs = vec![Input::Output(WINDOWS.into())];
        for set in self.generated.iter().filter(|s| s.regime == regime) {
            flags = flags
                .in_run(option, &set.path)
                .text("label", &set.generator);
            inputs.push(Input::Output(set.path.clone()));
        }
        (flags, inputs)
    }

    /// A later section's flags, or `None` without the section; refused without [generate].
    fn later_section(
        &mut self,
        name: &'static str,
        section: Option<crate::cli::run::Section>,
        reserved: &[&str],
    ) -> Result<Option<Flags>> {
        let Some(section) = section else {
            return Ok(None);
        };
        if self.generated.is_empty() {
            let reason = "needs scenarios: add a [generate] section";
            return Err(self.source.error_in(name, reason));
        }
        Ok(Some(
            section_flags(self.source, name, Some(&section), reserved, &[])?.0,
        ))
    }

    fn evaluate_steps(&mut self) -> Result<()> {
        let reserved = ["real", "regime", "synthetic", "label", "out"];
        let section = self.file.evaluate.take();
        let Some(base) = self.later_section("evaluate", section, &reserved)? else {
            return Ok(());
        };
        self.regime_steps(base, None)
    }

    /// One step per generated regime over every generator's set of it and the real windows:
    /// `evaluate` (no book) into `reports/<regime>`, naming the regime; `risk` of `book` into
    /// `risk/<book>/<regime>`, which reads the regime from the sets.
    fn regime_steps(&mut self, base: Flags, book: Option<&str>) -> Result<()> {
        for regime in self.regimes() {
            let flags = base
                .clone()
                .in_run("real", WINDOWS)
                .or("test-from", self.test_from.as_ref());
            let (flags, option, name, out) = match book {
                None => (
                    flags.text("regime", &regime),
                    "synthetic",
                    format!("evaluate {regime}"),
                    format!("reports/{regime}"),
                ),
                Some(book) => (
                    flags,
                    "scenarios",
                    format!("risk {book} {regime}"),
                    format!("risk/{book}/{regime}"),
                ),
            };
            let (flags, inputs) = self.sets_of(flags, option, &regime);
            self.add(name, flags.in_run("out", &out), inputs, &out)?;
        }
        Ok(())
    }

    /// The books of [risk] and [var-backtest], each with the name of its outputs' folder.
    fn portfolios(&self, section: &str) -> Result<Vec<(PathBuf, String)>> {
        if self.file.portfolios.is_empty() {
            let reason = "needs books: a top-level `portfolios = [\"FILE.toml\", ...]`";
            return Err(self.source.error_in(section, reason));
        }
        let mut books: Vec<(PathBuf, String)> = Vec::new();
        for path in &self.file.portfolios {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.is_empty() || books.iter().any(|(_, n)| *n == name) {
                let reason = format!(
                    "portfolio {} needs a file name of its own: its outputs go under it",
                    path.display()
                );
                return Err(self.source.error_in("run", reason));
            }
            books.push((path.clone(), name));
        }
        Ok(books)
    }

    fn risk_steps(&mut self) -> Result<()> {
        let reserved = ["portfolio", "scenarios", "label", "real", "out"];
        let section = self.file.risk.take();
        let Some(base) = self.later_section("risk", section, &reserved)? else {
            return Ok(());
        };
        for (book, name) in self.portfolios("risk")? {
            let flags = base.clone().text("portfolio", book.display());
            self.regime_steps(flags, Some(&name))?;
        }
        Ok(())
    }

    /// A backtest's held-out flags from [ingest] and `test-from`, unless it sets its own: the
    /// regime signal and rule, the date column, and the panel as its prices (with `kind`, for
    /// a stage that reads returns too: var-backtest, forecast-backtest). A panel of returns
    /// gives no prices to the others.
    fn held_out(&self, section: &str, flags: Flags, reads_returns: bool) -> Result<Flags> {
        let mut flags = flags.or("from", self.test_from.as_ref());
        if reads_returns {
            flags = self.panel_flags(flags);
        } else {
            for key in SHARED_WITH_BACKTESTS {
                flags = flags.or(key, self.ingest.get(key));
            }
            if !flags.has("prices") {
                if self.ingest_returns {
                    let reason = "needs `prices`: the ingested panel holds returns";
                    return Err(self.source.error_in(section, reason));
                }
                flags = flags.or("prices", self.ingest.get("input"));
            }
        }
        Ok(flags.in_run("scenarios", SCENARIOS))
    }

    /// The ingested panel's file and how it reads (`prices`, `kind`, `returns`), and its regime
    /// signal, where `flags` do not set their own.
    fn panel_flags(&self, mut flags: Flags) -> Flags {
        for key in SHARED_WITH_BACKTESTS {
            flags = flags.or(key, self.ingest.get(key));
        }
        for (key, from) in [
            ("prices", "input"),
            ("kind", "kind"),
            ("returns", "returns"),
        ] {
            flags = flags.or(key, self.ingest.get(from));
        }
        flags
    }

    fn var_backtest_steps(&mut self) -> Result<()> {
        let section = self.file.var_backtest.take();
        let reserved = ["portfolio", "scenarios", "out"];
        let Some(base) = self.later_section("var-backtest", section, &reserved)? else {
            return Ok(());
        };
        for (book, name) in self.portfolios("var-backtest")? {
            let flags = self.held_out("var-backtest", base.clone(), true)?;
            let out = format!("var-backtest/{name}");
            let flags = flags.text("portfolio", book.display()).in_run("out", &out);
            let inputs = vec![Input::Output(SCENARIOS.into())];
            self.add(format!("var-backtest {name}"), flags, inputs, &out)?;
        }
        Ok(())
    }

    fn covariance_step(&mut self) -> Result<()> {
        let section = self.file.covariance.take();
        let reserved = ["real", "scenarios", "out"];
        let Some(flags) = self.later_section("covariance", section, &reserved)? else {
            return Ok(());
        };
        let flags = flags
            .in_run("real", WINDOWS)
            .in_run("scenarios", SCENARIOS)
            .or("test-from", self.test_from.as_ref())
            .in_run("out", "covariance");
        let inputs = vec![
            Input::Output(WINDOWS.into()),
            Input::Output(SCENARIOS.into()),
        ];
        self.add("covariance".into(), flags, inputs, "covariance")?;
        Ok(())
    }

    /// `[backtest]` or `[forecast-backtest]` (which reads returns too): one step over every
    /// scenario set, on the held-out prices.
    fn backtest_step(&mut self, name: &'static str, reads_returns: bool) -> Result<()> {
        let section = match name {
            "backtest" => self.file.backtest.take(),
            _ => self.file.forecast_backtest.take(),
        };
        // forecast-backtest can draw from a model itself; in a run it scores the run's sets.
        let reserved: &[&str] = match reads_returns {
            true => &["scenarios", "out", "model"],
            false => &["scenarios", "out"],
        };
        let Some(flags) = self.later_section(name, section, reserved)? else {
            return Ok(());
        };
        let flags = self
            .held_out(name, flags, reads_returns)?
            .in_run("out", name);
        let inputs = vec![Input::Output(SCENARIOS.into())];
        self.add(name.into(), flags, inputs, name)?;
        Ok(())
    }
}
