//! Training: fit the U-Net to predict the noise added to standardised train windows, with
//! regime dropout for classifier-free guidance, AdamW, clipping, an EMA of the weights, and early
//! stopping on a validation set taken from the end of the train period.

mod dataset;
mod optim;
mod trainer;

pub use dataset::{fit_normalisation, split_train_validation, Dataset};
pub use optim::{learning_rate, snapshot, sorted_vars, AdamW, Ema};

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;

use crate::data::{default_test_from, SplitChoice, WindowSet, DEFAULT_WINDOWS};
use crate::diffusion::{Objective, ScheduleKind};
use crate::error::{Error, Result};
use crate::io::{format_date, sha256_file};
use crate::model::{
    check_model_target, save_model, GaussianPrior, ModelCard, TrainingRecord, UNetConfig,
    DEFAULT_MODEL, FORMAT_VERSION, MAX_CHANNELS,
};
use crate::report::progress_bar;
use crate::rng::DEFAULT_SEED;
use trainer::Trainer;

/// Rank of the default network's cross-asset linear path (see [`UNetConfig::linear_path`]).
pub const DEFAULT_LINEAR_PATH: usize = 4;

/// Persistent volatility levels and day shocks of the default prior (24 states), chosen by the
/// log-likelihood of the embedded data's held-out days (2016 on): 8 levels fit every regime
/// 0.12–0.25 nats a day better than 4, and 12 or 24 levels add at most 0.04.
pub const DEFAULT_VOLATILITY_LEVELS: usize = 8;
pub const DEFAULT_VOLATILITY_SHOCKS: usize = 3;
/// Market shocks of the default prior (0.5, 1, 2, 4 and 8 times the market direction's scale).
pub const DEFAULT_MARKET_SHOCKS: usize = 5;
/// Most states (levels x shocks x market shocks) the prior may have: every network evaluation
/// mixes the states' predictions, after a recursion that costs levels² + states per day and
/// window.
pub const MAX_VOLATILITY_STATES: usize = 128;
/// EM steps fitting the volatility states: on the embedded data the last one gains under 2e-4
/// in log-likelihood per day (logged at `SCENGEN_LOG=info`), where 4 and 8 levels differ by
/// 0.12–0.25.
const VOLATILITY_EM_STEPS: usize = 40;

/// Every setting of a training run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub data: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    pub test_from: i32,
    pub validation_fraction: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub ema_decay: f64,
    pub regime_dropout: f64,
    pub patience: usize,
    /// The first epoch whose weights may be kept (or the last, with fewer epochs): the epochs
    /// before it are not judged on the validation loss, nor stopped by it.
    pub min_epochs: usize,
    /// What the network is trained to predict; see [`Objective`].
    pub objective: Objective,
    pub schedule: ScheduleKind,
    pub timesteps: usize,
    /// Architecture; `None` for [`UNetConfig::small`] sized to the data.
    pub architecture: Option<UNetConfig>,
    /// With `architecture` `None`: the first level's channels instead of the default.
    pub base_channels: Option<usize>,
    /// With `architecture` `None`: see [`UNetConfig::amplitude_input`].
    pub amplitude_input: bool,
    /// With `architecture` `None`: see [`UNetConfig::linear_path`].
    pub linear_path: usize,
    /// With `architecture` `None`: see [`UNetConfig::factors`].
    pub factors: usize,
    /// Predict the noise as the regimes' Gaussian part plus the network's correction.
    pub gaussian_prior: bool,
    /// Persistent volatility levels and day shocks of the Gaussian prior (1 and 1: one Gaussian
    /// per regime); see `diffusion/volatility_states.rs`.
    pub volatility_levels: usize,
    pub volatility_shocks: usize,
    /// Market shocks of the Gaussian prior (1: none); see `model/prior/volatility_states.rs`.
    pub market_shocks: usize,
    /// Fit each asset's idiosyncratic jumps, take them out of the windows the model learns
    /// from and add them to its paths (`model/jumps.rs`).
    pub idiosyncratic_jumps: bool,
    pub device: Device,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
}

/// The default model's training: 30 epochs at most (patience 8) of AdamW with warm-up and cosine
/// decay, the cosine schedule over T = 1000, the network sized to the data with the Gaussian
/// prior of 8 x 3 volatility states, the amplitude input and a rank-4 linear path, reading
/// [`DEFAULT_WINDOWS`] and writing [`DEFAULT_MODEL`].
impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: DEFAULT_WINDOWS.into(),
            out: DEFAULT_MODEL.into(),
            seed: DEFAULT_SEED,
            test_from: default_test_from(),
            validation_fraction: 0.15,
            epochs: 30,
            batch_size: 128,
            learning_rate: 2e-3,
            warmup_steps: 100,
            weight_decay: 1e-4,
            grad_clip: 1.0,
            ema_decay: 0.995,
            regime_dropout: 0.15,
            patience: 8,
            min_epochs: 10,
            objective: Objective::Epsilon,
            schedule: Objective::Epsilon.default_schedule(),
            timesteps: 1000,
            architecture: None,
            base_channels: None,
            amplitude_input: true,
            linear_path: DEFAULT_LINEAR_PATH,
            factors: 0,
            gaussian_prior: true,
            volatility_levels: DEFAULT_VOLATILITY_LEVELS,
            volatility_shocks: DEFAULT_VOLATILITY_SHOCKS,
            market_shocks: DEFAULT_MARKET_SHOCKS,
            idiosyncratic_jumps: true,
            device: Device::Cpu,
            progress: false,
        }
    }
}

impl TrainConfig {
    /// The defaults, reading `data` and writing `out`.
    pub fn new(
        data: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
        seed: u64,
        test_from: i32,
    ) -> Self {
        Self {
            data: data.into(),
            out: out.into(),
            seed,
            test_from,
            ..Self::default()
        }
    }
}

impl TrainConfig {
    /// The prior's volatility states: levels x shocks x market shocks.
    pub fn states(&self) -> usize {
        self.volatility_levels * self.volatility_shocks * self.market_shocks
    }

    /// Checks the settings that no later step would catch with a clear message.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::option(name, v, "must be a positive number"))
            }
        };
        positive("learning_rate", self.learning_rate)?;
        if self.epochs == 0 {
            return Err(Error::option("epochs", 0, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::option("batch_size", 0, "must be at least 1"));
        }
        // 0 would stop at the first epoch without a better validation loss, as 1 does.
        if self.patience == 0 {
            return Err(Error::option("patience", 0, "must be at least 1"));
        }
        if self.min_epochs == 0 {
            return Err(Error::option("min_epochs", 0, "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.regime_dropout) {
            return Err(Error::option(
                "regime_dropout",
                self.regime_dropout,
                "must lie in [0, 1)",
            ));
        }
        for (option, count) in [
            ("volatility_levels", self.volatility_levels),
            ("volatility_shocks", self.volatility_shocks),
            ("market_shocks", self.market_shocks),
        ] {
            if count == 0 {
                return Err(Error::option(option, count, "must be at least 1"));
            }
            if count > 1 && !self.gaussian_prior {
                return Err(Error::option(
                    option,
                    count,
                    "needs the Gaussian prior, or 1",
                ));
            }
        }
        let states = self.states();
        if states > MAX_VOLATILITY_STATES {
            return Err(Error::option(
                "volatility_levels",
                self.volatility_levels,
                format!(
                    "times {} volatility shocks and {} market shocks gives {states} states, more \
                     than {MAX_VOLATILITY_STATES}",
                    self.volatility_shocks, self.market_shocks
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) || self.validation_fraction == 0.0 {
            return Err(Error::option(
                "validation fraction",
                self.validation_fraction,
                "must lie in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// One line of the loss log.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EpochLoss {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_loss: f64,
    pub learning_rate: f64,
    pub seconds: f64,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct TrainReport {
    pub out: PathBuf,
    pub card: ModelCard,
    pub history: Vec<EpochLoss>,
}

impl std::fmt::Display for TrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.card.training;
        writeln!(
            f,
            "wrote {} ({} parameters)",
            self.out.display(),
            r.parameters
        )?;
        writeln!(
            f,
            "{} train / {} validation windows, {} epochs in {:.1} s",
            r.train_windows, r.validation_windows, r.epochs_run, r.wall_seconds
        )?;
        if let (Some(first), Some(last)) = (self.history.first(), self.history.last()) {
            writeln!(f, "loss (train / validation): first {:.4} / {:.4}, last {:.4} / {:.4}, best validation {:.4} at epoch {}",
                first.train_loss, first.validation_loss, last.train_loss, last.validation_loss, r.best_validation_loss, r.best_epoch)?;
        }
        Ok(())
    }
}

/// Trains a model and writes its directory; the directory holds the EMA weights of the epoch
/// with the lowest validation loss.
pub fn train(config: &TrainConfig) -> Result<TrainReport> {
    config.validate()?;
    // The folder is written at the end; a bad out should fail now, not after the training.
    check_model_target(&config.out)?;
    let started = Instant::now();
    // Set up before the first step: the prior's fit takes seconds to minutes (80 s on the 49
    // industries), which a bar with no total still shows as time passing.
    let bar = progress_bar(config.progress, 0, "steps");
    bar.set_message("reading the windows, fitting the normalisation and the Gaussian prior");
    let set = WindowSet::read(&config.data)?;
    let (fit_idx, val_idx) = split_checked(config, &set)?;
    // The normalisation and the prior are closed-form fits of the whole train period; only the
    // network holds windows back, for early stopping. Fitted on the fitting windows alone, the
    // prior missed whatever the validation years held: on the 49 industries (train 1969-2009)
    // that was 2004-2009, the 2008 crisis, and the high-vix scenarios had 21% equal-weight
    // volatility where the train windows have 31%.
    let train_idx = set.select(None, SplitChoice::Train, config.test_from);
    let norm = fit_normalisation(&set, &train_idx);
    let arch = architecture(config, &set)?;
    let padded = arch.padded_len();
    let mut fit = Dataset::from_windows(&set, &fit_idx, &norm, padded);
    let mut val = Dataset::from_windows(&set, &val_idx, &norm, padded);
    let mut all = Dataset::from_windows(&set, &train_idx, &norm, padded);
    let jumps = config.idiosyncratic_jumps.then(|| {
        let jumps = all.fit_jumps(set.rule.labels.len());
        for data in [&mut fit, &mut val, &mut all] {
            data.remove_jumps(&jumps);
        }
        jumps
    });
    let (prior, prior_validation_log_likelihood) = fit_prior(config, &arch, &all, &val);
    drop(all);
    let mut trainer = Trainer::new(config, &arch, prior.as_ref(), &fit, &val)
        .map_err(|e| e.in_stage(Error::Training))?;
    // The most steps; early stopping may end sooner, so the time left is an upper bound.
    bar.disable_steady_tick();
    bar.set_message("");
    bar.set_length(trainer.total_steps() as u64);

    let mut history = Vec::new();
    let mut log = String::from("epoch,train_loss,validation_loss,learning_rate,seconds\n");
    let mut best: Option<(usize, f64)> = None;
    let mut record = TrainingRecord {
        train_windows: fit.len(),
        validation_windows: val.len(),
        parameters: trainer.parameters(),
        prior_validation_log_likelihood,
        ..empty_record(config)?
    };
    let mut best_weights = None;
    for epoch in 1..=config.epochs {
        let (train_loss, lr) = match trainer.epoch(epoch, &fit, &bar) {
            Ok(losses) => losses,
            Err(e) => {
                bar.finish_and_clear();
                return Err(e.in_stage(Error::Training));
            }
        };
        let validation_loss = trainer
            .validation_loss(&val)
            .map_err(|e| e.in_stage(Error::Training))?;
        let entry = EpochLoss {
            epoch,
            train_loss,
            validation_loss,
            learning_rate: lr,
            seconds: started.elapsed().as_secs_f64(),
        };
        log.push_str(&format!(
            "{epoch},{train_loss:.6},{validation_loss:.6},{lr:.6e},{:.2}\n",
            entry.seconds
        ));
        history.push(entry);
        tracing::info!(epoch, train_loss, validation_loss, "epoch finished");
        // The validation windows are the train period's last years, often another era than
        // the rest: on the 49 industries their loss was lowest after 2 epochs, when the network
        // had learnt little beyond the prior, and rose by 0.8% over the next 18 while every
        // forecast score of the years after improved (docs/model.md, *Training*). So the
        // first epochs are not judged.
        let judged = epoch >= config.min_epochs.min(config.epochs);
        if judged && best.is_none_or(|(_, b)| validation_loss < b) {
            best = Some((epoch, validation_loss));
            record.best_epoch = epoch;
            record.best_validation_loss = validation_loss;
            // Kept in memory: the model folder is written once, when training ends, so a run
            // stopped early (an error, a job's timeout) leaves the previous model in place.
            best_weights = Some(trainer.ema_weights()?);
        } else if best.is_some_and(|(e, _)| epoch - e >= config.patience) {
            break;
        }
    }
    bar.finish_and_clear();
    // The best checkpoint's weights, with the whole run's history.
    let last = history.last().expect("at least one epoch ran");
    record.epochs_run = last.epoch;
    record.final_train_loss = last.train_loss;
    record.final_validation_loss = last.validation_loss;
    record.wall_seconds = started.elapsed().as_secs_f64();
    let card = ModelCard {
        format_version: FORMAT_VERSION,
        architecture: arch,
        schedule: config.schedule,
        timesteps: config.timesteps,
        assets: set.assets.clone(),
        labels: set.rule.labels.clone(),
        window: set.window,
        normalisation: norm,
        prior,
        jumps,
        training: record,
        // The weights' hash is filled in as they are written.
        weights_sha256: None,
        distilled: None,
    };
    let weights = best_weights.expect("saved with the best epoch");
    save_model(&config.out, &card, &weights, &log)?;
    Ok(TrainReport {
        out: config.out.clone(),
        card,
        history,
    })
}

/// The record of a run that has not trained yet: its data, cut-off and seed.
fn empty_record(config: &TrainConfig) -> Result<TrainingRecord> {
    Ok(TrainingRecord {
        data_file: config.data.display().to_string(),
        data_sha256: sha256_file(&config.data)?,
        test_from: format_date(config.test_from),
        seed: config.seed,
        objective: config.objective,
        epochs_run: 0,
        best_epoch: 0,
        train_windows: 0,
        validation_windows: 0,
        final_train_loss: f64::NAN,
        final_validation_loss: f64::NAN,
        best_validation_loss: f64::NAN,
        wall_seconds: 0.0,
        parameters: 0,
        prior_validation_log_likelihood: Vec::new(),
    })
}

/// The fitting and validation windows: the train period before `test_from`, its last
/// `validation_fraction` by date held out for early stopping.
fn split_checked(config: &TrainConfig, set: &WindowSet) -> Result<(Vec<usize>, Vec<usize>)> {
    let (fit_idx, val_idx) =
        split_train_validation(set, config.test_from, config.validation_fraction);
    if fit_idx.len() < config.batch_size.min(16) || val_idx.is_empty() {
        return Err(Error::option(
            "test_from",
            format_date(config.test_from),
            format!(
                "leaves {} training and {} validation windows in {}",
                fit_idx.len(),
                val_idx.len(),
                config.data.display()
            ),
        ));
    }
    // The prior is fitted per regime: a regime without a fitting window has nothing to fit.
    let fitted: std::collections::BTreeSet<usize> =
        fit_idx.iter().map(|&w| set.windows[w].regime).collect();
    if let Some(label) = (0..set.rule.labels.len())
        .find(|r| !fitted.contains(r))
        .map(|r| &set.rule.labels[r])
    {
        return Err(Error::bad_file(
            &config.data,
            format!(
                "regime `{label}` has no training window before {}: choose thresholds that give \
                 every regime windows before the test period",
                format_date(config.test_from)
            ),
        ));
    }
    Ok((fit_idx, val_idx))
}

/// The network's architecture: the config's own, or the default sized to the data with the
/// config's choices of width, amplitude input, linear path and factors.
fn architecture(config: &TrainConfig, set: &WindowSet) -> Result<UNetConfig> {
    let arch = config.architecture.clone().unwrap_or_else(|| {
        let mut a = UNetConfig::small(set.assets.len(), set.window, set.rule.labels.len());
        a.base_channels = config.base_channels.unwrap_or(a.base_channels);
        a.amplitude_input = config.amplitude_input;
        a.linear_path = config.linear_path;
        a.factors = config.factors;
        a
    });
    if let Some(channels) = config.base_channels {
        if channels == 0 || arch.validate().is_err() {
            return Err(Error::option(
                "base_channels",
                channels,
                format!(
                    "must be a positive number divisible by {} (GroupNorm groups) and {} \
                     (attention heads), with at most {MAX_CHANNELS} channels at the widest level",
                    arch.groups, arch.heads
                ),
            ));
        }
    }
    let data = (set.assets.len(), set.window, set.rule.labels.len());
    if (arch.assets, arch.window, arch.regimes) != data {
        return Err(Error::option(
            "architecture",
            format!(
                "{} assets, {} days, {} regimes",
                arch.assets, arch.window, arch.regimes
            ),
            format!(
                "does not fit {}: {} assets, windows of {} days, {} regimes",
                config.data.display(),
                data.0,
                data.1,
                data.2
            ),
        ));
    }
    if arch.factors > arch.assets {
        return Err(Error::option(
            "factors",
            arch.factors,
            format!(
                "exceeds the {} assets of {}: a factor model needs fewer factors than assets",
                arch.assets,
                config.data.display()
            ),
        ));
    }
    arch.validate()?;
    Ok(arch)
}

/// The Gaussian prior fitted on the fitting windows (with its volatility states, by EM), and
/// its log-likelihood per day of the validation windows, per class; none without the prior.
fn fit_prior(
    config: &TrainConfig,
    arch: &UNetConfig,
    fit: &Dataset,
    val: &Dataset,
) -> (Option<GaussianPrior>, Vec<f64>) {
    if !config.gaussian_prior {
        return (None, Vec::new());
    }
    let (assets, padded, window) = (arch.assets, arch.padded_len(), arch.window);
    let mut prior = GaussianPrior::fit(
        &fit.values,
        &fit.regimes,
        arch.regimes,
        assets,
        padded,
        window,
    );
    if config.states() > 1 {
        let histories = prior.fit_volatility_states(
            &fit.values,
            &fit.regimes,
            assets,
            padded,
            window,
            (
                config.volatility_levels,
                config.volatility_shocks,
                config.market_shocks,
            ),
            VOLATILITY_EM_STEPS,
        );
        for (class, h) in histories.iter().enumerate() {
            let last = h.last().copied().unwrap_or(f64::NAN);
            let before = h.len().checked_sub(2).map_or(f64::NAN, |i| h[i]);
            tracing::info!(
                class,
                first = h.first().copied().unwrap_or(f64::NAN),
                last,
                last_step_gain = last - before,
                "volatility states: log-likelihood per day"
            );
        }
    }
    let validation = if val.is_empty() {
        Vec::new()
    } else {
        prior.log_likelihood_per_day(&val.values, &val.regimes, assets, padded, window)
    };
    for (class, log_likelihood) in validation.iter().enumerate() {
        tracing::info!(
            class,
            log_likelihood,
            "Gaussian prior: validation log-likelihood per day"
        );
    }
    (Some(prior), validation)
}
