//! Training: fit the U-Net to predict the noise added to standardised train windows, with
//! regime dropout for classifier-free guidance, AdamW, clipping, an EMA of the weights, and early
//! stopping on a validation set taken from the end of the train period.

mod dataset;
mod optim;

pub use dataset::{fit_normalisation, split_train_validation, Dataset};
pub use optim::{learning_rate, AdamW, Ema};

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;

use crate::data::WindowSet;
use crate::diffusion::{add_noise, predict_eps, GaussianPrior, NoiseSchedule, ScheduleKind};
use crate::error::{Error, Result};
use crate::io::{check_folder_target, format_date, sha256_file, write_text, AtomicDir};
use crate::model::{
    parameter_count, ModelCard, SeededInit, TrainingRecord, UNet1d, UNetConfig, CONFIG_FILE,
    WEIGHTS_FILE,
};
use crate::rng::SeededRng;

/// Rank of the default network's cross-asset linear path (see [`UNetConfig::linear_path`]).
pub const DEFAULT_LINEAR_PATH: usize = 4;

/// Persistent volatility levels and day shocks of the default prior (24 states), chosen by the
/// log-likelihood of the embedded data's held-out days (2016 on): 8 levels fit every regime
/// 0.12–0.25 nats a day better than 4, and 12 or 24 levels add at most 0.04.
pub const DEFAULT_VOLATILITY_LEVELS: usize = 8;
pub const DEFAULT_VOLATILITY_SHOCKS: usize = 3;
/// Most states (levels x shocks) the prior may have: every network evaluation mixes the states'
/// predictions, after a recursion that costs levels² + states per day and window.
pub const MAX_VOLATILITY_STATES: usize = 36;
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
    pub device: Device,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
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
            schedule: ScheduleKind::Cosine,
            timesteps: 1000,
            architecture: None,
            base_channels: None,
            amplitude_input: true,
            linear_path: DEFAULT_LINEAR_PATH,
            factors: 0,
            gaussian_prior: true,
            volatility_levels: DEFAULT_VOLATILITY_LEVELS,
            volatility_shocks: DEFAULT_VOLATILITY_SHOCKS,
            device: Device::Cpu,
            progress: false,
        }
    }
}

impl TrainConfig {
    /// Checks the settings that no later step would catch with a clear message.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::option(name, v, "must be a positive number"))
            }
        };
        positive("--lr", self.learning_rate)?;
        if self.epochs == 0 {
            return Err(Error::option("--epochs", 0, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::option("--batch-size", 0, "must be at least 1"));
        }
        // 0 would stop at the first epoch without a better validation loss, as 1 does.
        if self.patience == 0 {
            return Err(Error::option("--patience", 0, "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.regime_dropout) {
            return Err(Error::option(
                "--regime-dropout",
                self.regime_dropout,
                "must lie in [0, 1)",
            ));
        }
        for (option, count) in [
            ("--volatility-levels", self.volatility_levels),
            ("--volatility-shocks", self.volatility_shocks),
        ] {
            if count == 0 {
                return Err(Error::option(option, count, "must be at least 1"));
            }
            if count > 1 && !self.gaussian_prior {
                return Err(Error::option(
                    option,
                    count,
                    "needs the Gaussian prior (--gaussian-prior true), or 1",
                ));
            }
        }
        let states = self.volatility_levels * self.volatility_shocks;
        if states > MAX_VOLATILITY_STATES {
            return Err(Error::option(
                "--volatility-levels",
                self.volatility_levels,
                format!(
                    "times --volatility-shocks {} gives {states} states, more than {MAX_VOLATILITY_STATES}",
                    self.volatility_shocks
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
    // The folder is written at the end; a bad --out should fail now, not after the training.
    let written = [CONFIG_FILE, WEIGHTS_FILE, LOSS_LOG].map(String::from);
    check_folder_target(&config.out, &written)?;
    let started = Instant::now();
    let set = WindowSet::read(&config.data)?;
    let (fit_idx, val_idx) =
        split_train_validation(&set, config.test_from, config.validation_fraction);
    if fit_idx.len() < config.batch_size.min(16) || val_idx.is_empty() {
        return Err(Error::option(
            "--test-from",
            format_date(config.test_from),
            format!(
                "leaves {} training and {} validation windows in {}",
                fit_idx.len(),
                val_idx.len(),
                config.data.display()
            ),
        ));
    }
    let norm = fit_normalisation(&set, &fit_idx);
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
                "--channels",
                channels,
                format!(
                    "must be a positive number divisible by {} (GroupNorm groups) and {} (attention heads)",
                    arch.groups, arch.heads
                ),
            ));
        }
    }
    if arch.factors > arch.assets {
        return Err(Error::option(
            "--factors",
            arch.factors,
            format!(
                "exceeds the {} assets of {}: a factor model needs fewer factors than assets",
                arch.assets,
                config.data.display()
            ),
        ));
    }
    arch.validate()?;
    let padded = arch.padded_len();
    let fit = Dataset::from_windows(&set, &fit_idx, &norm, padded);
    let val = Dataset::from_windows(&set, &val_idx, &norm, padded);
    let schedule = NoiseSchedule::new(config.schedule, config.timesteps);
    let device = &config.device;

    // The trained network and its EMA twin, both initialised from the seed.
    let varmap = VarMap::new();
    let mut net = UNet1d::new(&arch, SeededInit::var_builder(&varmap, config.seed, device))?;
    let ema_map = VarMap::new();
    let mut ema_net = UNet1d::new(
        &arch,
        SeededInit::var_builder(&ema_map, config.seed, device),
    )?;
    let prior = config.gaussian_prior.then(|| {
        let mut prior = GaussianPrior::fit(
            &fit.values,
            &fit.regimes,
            arch.regimes,
            arch.assets,
            padded,
            arch.window,
        );
        if config.volatility_levels * config.volatility_shocks > 1 {
            let histories = prior.fit_volatility_states(
                &fit.values,
                &fit.regimes,
                arch.assets,
                padded,
                arch.window,
                (config.volatility_levels, config.volatility_shocks),
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
        prior
    });
    let prior_validation_log_likelihood = match &prior {
        Some(p) if !val.is_empty() => {
            p.log_likelihood_per_day(&val.values, &val.regimes, arch.assets, padded, arch.window)
        }
        _ => Vec::new(),
    };
    for (class, log_likelihood) in prior_validation_log_likelihood.iter().enumerate() {
        tracing::info!(
            class,
            log_likelihood,
            "Gaussian prior: validation log-likelihood per day"
        );
    }
    if let Some(p) = &prior {
        let predictor = p.predictor(arch.window);
        net.set_prior(predictor.clone());
        ema_net.set_prior(predictor);
    }
    let vars = sorted_vars(&varmap);
    let shadows = sorted_vars(&ema_map);
    let mut opt = AdamW::new(vars, config.weight_decay)?;
    let mut ema = Ema::new(&opt, shadows, config.ema_decay)?;
    let parameters = parameter_count(&varmap);

    let mask = pad_mask(arch.assets, arch.window, padded, device)?;
    let mut rng = SeededRng::new(config.seed, 1);
    let val_noise = ValidationDraws::new(&val, &schedule, config.seed)?;
    let steps_per_epoch = fit.len().div_ceil(config.batch_size);
    let total_steps = steps_per_epoch * config.epochs;
    let bar = progress_bar(config.progress, total_steps as u64);

    let mut history = Vec::new();
    let mut log = String::from("epoch,train_loss,validation_loss,learning_rate,seconds\n");
    let mut best: Option<(usize, f64)> = None;
    let mut step = 0;
    let mut order: Vec<usize> = (0..fit.len()).collect();
    let base_card = |record: TrainingRecord| ModelCard {
        format_version: 2,
        architecture: arch.clone(),
        schedule: config.schedule,
        timesteps: config.timesteps,
        assets: set.assets.clone(),
        labels: set.rule.labels.clone(),
        window: set.window,
        normalisation: norm.clone(),
        prior: prior.clone(),
        training: record,
    };
    let data_sha = sha256_file(&config.data)?;
    let mut card = None;
    let mut best_weights = None;
    for epoch in 1..=config.epochs {
        rng.shuffle(&mut order);
        let mut epoch_loss = 0.0;
        let mut lr = 0.0;
        for rows in order.chunks(config.batch_size) {
            let b = rows.len();
            let x0 = fit.batch(rows, device)?;
            let t: Vec<usize> = (0..b).map(|_| rng.below(schedule.len())).collect();
            let eps = (Tensor::from_vec(
                rng.normals_f32(b * arch.assets * padded),
                x0.shape(),
                device,
            )?
            .broadcast_mul(&mask))?;
            let regimes: Vec<u32> = rows
                .iter()
                .map(|&r| {
                    if rng.uniform() < config.regime_dropout {
                        arch.null_regime() as u32
                    } else {
                        fit.regimes[r]
                    }
                })
                .collect();
            let xt = add_noise(&schedule, &x0, &eps, &t)?;
            let rs = Tensor::from_vec(regimes, b, device)?;
            let pred = predict_eps(&net, &schedule, &xt, &t, &rs)?;
            let loss = masked_mse(&pred, &eps, arch.window)?;
            let loss_value = loss.to_scalar::<f32>()? as f64;
            if !loss_value.is_finite() {
                bar.finish_and_clear();
                return Err(Error::Training(format!(
                    "the loss became {loss_value} at epoch {epoch}, step {step}; nothing was \
                     written, {} is as it was",
                    config.out.display()
                )));
            }
            let (gradients, _) = opt.clipped_gradients(&loss.backward()?, config.grad_clip)?;
            lr = learning_rate(
                step,
                total_steps,
                config.warmup_steps,
                config.learning_rate,
                0.05,
            );
            opt.step(&gradients, lr)?;
            ema.update(&opt)?;
            epoch_loss += loss_value * b as f64;
            step += 1;
            bar.set_message(format!("epoch {epoch} loss {loss_value:.4}"));
            bar.inc(1);
        }
        let train_loss = epoch_loss / fit.len() as f64;
        let validation_loss = val_noise.loss(&ema_net, &val, &mask, arch.window, device)?;
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
        if best.is_none_or(|(_, b)| validation_loss < b) {
            best = Some((epoch, validation_loss));
            let record = TrainingRecord {
                data_file: config.data.display().to_string(),
                data_sha256: data_sha.clone(),
                test_from: format_date(config.test_from),
                seed: config.seed,
                epochs_run: epoch,
                best_epoch: epoch,
                train_windows: fit.len(),
                validation_windows: val.len(),
                final_train_loss: train_loss,
                final_validation_loss: validation_loss,
                best_validation_loss: validation_loss,
                wall_seconds: started.elapsed().as_secs_f64(),
                parameters,
                prior_validation_log_likelihood: prior_validation_log_likelihood.clone(),
            };
            // Kept in memory: the model folder is written once, when training ends, so a run
            // stopped early (an error, a job's timeout) leaves the previous model in place.
            best_weights = Some(snapshot(&ema_map)?);
            card = Some(base_card(record));
        } else if best.is_some_and(|(e, _)| epoch - e >= config.patience) {
            break;
        }
    }
    bar.finish_and_clear();
    // Final record: the best checkpoint's weights, with the whole run's history.
    let mut card = card.expect("at least one epoch ran");
    let last = history.last().expect("history");
    card.training.epochs_run = last.epoch;
    card.training.final_train_loss = last.train_loss;
    card.training.final_validation_loss = last.validation_loss;
    card.training.wall_seconds = started.elapsed().as_secs_f64();
    let weights = best_weights.expect("saved with the card");
    write_model_dir(config, &card, &weights, &log)?;
    Ok(TrainReport {
        out: config.out.clone(),
        card,
        history,
    })
}

/// (name, var) sorted by name, so optimiser state and EMA pairs line up deterministically.
fn sorted_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("varmap")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// 1 on the window's days, 0 on the padding, shaped (1, assets, padded) for broadcasting.
pub fn pad_mask(
    assets: usize,
    window: usize,
    padded: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let row: Vec<f32> = (0..padded)
        .map(|d| if d < window { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(row.repeat(assets), (1, assets, padded), device)
}

/// Mean squared error over the window's days only (the padding is not data).
fn masked_mse(pred: &Tensor, target: &Tensor, window: usize) -> candle_core::Result<Tensor> {
    (pred.narrow(2, 0, window)? - target.narrow(2, 0, window)?)?
        .sqr()?
        .mean_all()
}

/// Fixed timesteps and noise for the validation windows, so that validation losses of different
/// epochs are comparable.
struct ValidationDraws {
    t: Vec<usize>,
    noise: Vec<f32>,
    schedule: NoiseSchedule,
}

impl ValidationDraws {
    fn new(val: &Dataset, schedule: &NoiseSchedule, seed: u64) -> candle_core::Result<Self> {
        let mut rng = SeededRng::new(seed, 2);
        let t = (0..val.len()).map(|_| rng.below(schedule.len())).collect();
        let noise = rng.normals_f32(val.values.len());
        Ok(Self {
            t,
            noise,
            schedule: schedule.clone(),
        })
    }

    fn loss(
        &self,
        net: &UNet1d,
        val: &Dataset,
        mask: &Tensor,
        window: usize,
        device: &Device,
    ) -> candle_core::Result<f64> {
        let size = val.assets * val.padded;
        let mut total = 0.0;
        let rows: Vec<usize> = (0..val.len()).collect();
        for chunk in rows.chunks(512) {
            let b = chunk.len();
            let x0 = val.batch(chunk, device)?;
            let eps = Tensor::from_vec(
                self.noise[chunk[0] * size..(chunk[0] + b) * size].to_vec(),
                x0.shape(),
                device,
            )?
            .broadcast_mul(mask)?;
            let t: Vec<usize> = chunk.iter().map(|&r| self.t[r]).collect();
            let xt = add_noise(&self.schedule, &x0, &eps, &t)?;
            let rs = Tensor::from_vec(
                chunk.iter().map(|&r| val.regimes[r]).collect::<Vec<_>>(),
                b,
                device,
            )?;
            let pred = predict_eps(net, &self.schedule, &xt, &t, &rs)?;
            total += masked_mse(&pred, &eps, window)?.to_scalar::<f32>()? as f64 * b as f64;
        }
        Ok(total / val.len() as f64)
    }
}

/// The per-epoch loss log in a model folder.
const LOSS_LOG: &str = "loss.csv";

fn write_model_dir(
    config: &TrainConfig,
    card: &ModelCard,
    weights: &HashMap<String, Tensor>,
    log: &str,
) -> Result<()> {
    let dir = AtomicDir::new(&config.out)?;
    card.save(dir.path(), weights)?;
    write_text(&dir.path().join(LOSS_LOG), log)?;
    dir.commit()?;
    Ok(())
}

/// A copy of every variable's current value (the EMA weights of the best epoch so far).
fn snapshot(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap.data().lock().expect("varmap");
    Ok(data
        .iter()
        .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
        .collect::<candle_core::Result<_>>()?)
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar
}
