//! `scengen distill`: fine-tunes a trained model's network so that a sampler of few network
//! evaluations draws what the model's default sampler draws, and writes it as a model folder
//! that `generate` runs with that sampler.
//!
//! The teacher's scenarios are drawn first, per regime, with its default sampler. The student
//! starts from the teacher's weights and is run by the few-step sampler from fresh Gaussian
//! draws; its loss is the energy distance between its paths and a batch of the teacher's
//! (Székely & Rizzo 2013), the maximum mean discrepancy of the distance kernel (Sejdinovic et
//! al. 2013) that moment-matching generators train on (Li et al. 2015), backpropagated through
//! every step of the sampler. Unlike progressive or consistency distillation, which match the
//! teacher's deterministic probability-flow map, this matches the law of its ancestral-like
//! default sampler, whose tails and correlation the ODE misses (docs/samplers.md).

mod energy;

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::diffusion::{NoiseSchedule, SamplerKind, Spacing};
use crate::error::{Error, Result};
use crate::generate::{
    check_sampler, default_guidance, sample_paths, PathDraw, ReverseProcess, DEFAULT_SAMPLER,
};
use crate::model::{
    load_model, pad_mask, read_loss_log, save_model, stored_weights, DistillRecord, LoadedModel,
    ModelCard, SeededInit, UNet1d,
};
use crate::report::progress_bar;
use crate::rng::{SeededRng, DEFAULT_SEED};
use crate::train::{learning_rate, snapshot, sorted_vars, AdamW, Ema};
use energy::{batch_energy_loss, Pool};

/// The few-step sampler a model is distilled for unless another is asked for: DPM-Solver++(2M)
/// at 10 evaluations over the log-SNR band. Its student matches the default sampler's
/// volatility and correlation on the S&P-20 and the 49 industries, not its tails. The hybrid
/// solver with its last 5 steps stochastic gets the S&P-20's tails too but not the 49
/// industries', and is 0.06 high in their low-vix correlation (docs/samplers.md, *Flow
/// matching and distillation*).
pub const DISTILLED_SAMPLER: SamplerKind = SamplerKind::DpmSolver {
    steps: 10,
    spacing: Spacing::LogSnrBand,
};

/// Decay of the moving average of the student's weights, which is what is validated and kept:
/// a batch's energy distance is a noisy loss, and 300 steps are few.
const EMA_DECAY: f64 = 0.98;

/// Every setting of a distillation run.
#[derive(Debug, Clone)]
pub struct DistillConfig {
    pub teacher: PathBuf,
    pub out: PathBuf,
    /// The student's sampler.
    pub sampler: SamplerKind,
    /// The sampler whose scenarios the student learns to draw.
    pub teacher_sampler: SamplerKind,
    /// Teacher paths per regime; a fifth of them are held out for validation.
    pub teacher_paths: usize,
    /// Student paths per optimiser step (all of one regime, taken in turn).
    pub batch_size: usize,
    /// Optimiser steps.
    pub iterations: usize,
    pub learning_rate: f64,
    /// Optimiser steps between validations.
    pub validate_every: usize,
    pub seed: u64,
    pub device: Device,
    pub progress: bool,
}

impl Default for DistillConfig {
    fn default() -> Self {
        Self {
            teacher: crate::model::DEFAULT_MODEL.into(),
            out: "models/distilled".into(),
            sampler: DISTILLED_SAMPLER,
            teacher_sampler: DEFAULT_SAMPLER,
            teacher_paths: 5_000,
            batch_size: 128,
            iterations: 300,
            learning_rate: 1e-4,
            validate_every: 25,
            seed: DEFAULT_SEED,
            device: Device::Cpu,
            progress: false,
        }
    }
}

/// What a distillation run did.
#[derive(Debug, Clone)]
pub struct DistillReport {
    pub out: PathBuf,
    pub record: DistillRecord,
}

/// Distils `config.teacher` for `config.sampler` into `config.out`; nothing is written unless
/// the run completes.
pub fn distill(config: &DistillConfig) -> Result<DistillReport> {
    check(config)?;
    crate::model::check_model_target(&config.out)?;
    let started = Instant::now();
    let mut teacher = load_model(&config.teacher, &config.device)?;
    check_sampler(&config.sampler, &teacher.card)?;
    check_sampler(&config.teacher_sampler, &teacher.card)?;
    // The student learns the teacher's paths before their idiosyncratic jumps, which its
    // paths get as the teacher's do; the card keeps them.
    let jumps = teacher.card.jumps.take();
    let pools = teacher_pools(config, &teacher)?;
    teacher.card.jumps = jumps;
    let (varmap, student) = student_network(config, &teacher)?;
    let (ema_map, ema_net) = student_network(config, &teacher)?;
    let run = Run::new(config, &teacher.card, &student, &pools)?;
    let mut rng = SeededRng::new(config.seed, 1);
    let mut opt = AdamW::new(sorted_vars(&varmap), 0.0)?;
    let mut ema = Ema::new(&opt, sorted_vars(&ema_map), EMA_DECAY)?;
    let mut checks = vec![(0, run.validation_distance(&ema_net)?)];
    let mut best = (0, checks[0].1, snapshot(&ema_map)?);
    let bar = progress_bar(config.progress, config.iterations as u64, "steps");
    for step in 1..=config.iterations {
        let loss = run.loss(step, &mut rng)?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::Training(format!(
                "the distillation loss became {value} at step {step}; nothing was written, {} \
                 is as it was",
                config.out.display()
            )));
        }
        let (gradients, _) = opt.clipped_gradients(&loss.backward()?, 1.0)?;
        let lr = learning_rate(step - 1, config.iterations, 10, config.learning_rate, 0.1);
        opt.step(&gradients, lr)?;
        ema.update(&opt)?;
        bar.inc(1);
        if step % config.validate_every == 0 || step == config.iterations {
            let distance = run.validation_distance(&ema_net)?;
            tracing::info!("distill step {step}: validation energy distance {distance:.3e}");
            checks.push((step, distance));
            if distance < best.1 {
                best = (step, distance, snapshot(&ema_map)?);
            }
        }
    }
    bar.finish_and_clear();
    let record = DistillRecord {
        sampler: config.sampler,
        teacher: config.teacher.display().to_string(),
        teacher_sha256: teacher.weights_sha256.clone(),
        teacher_sampler: config.teacher_sampler,
        teacher_paths: config.teacher_paths,
        seed: config.seed,
        steps_run: config.iterations,
        best_step: best.0,
        validation_energy_distance: checks,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    let card = ModelCard {
        distilled: Some(record.clone()),
        weights_sha256: None,
        format_version: crate::model::FORMAT_VERSION,
        ..teacher.card.clone()
    };
    save_model(&config.out, &card, &best.2, &read_loss_log(&teacher.dir)?)?;
    Ok(DistillReport {
        out: config.out.clone(),
        record,
    })
}

/// Each count at least 1, enough teacher paths to hold some out, a usable learning rate.
fn check(config: &DistillConfig) -> Result<()> {
    for (option, value) in [
        ("iterations", config.iterations),
        ("batch_size", config.batch_size),
        ("validate_every", config.validate_every),
    ] {
        if value == 0 {
            return Err(Error::option(option, 0, "must be at least 1"));
        }
    }
    if config.teacher_paths < 5 * config.batch_size.max(100) {
        return Err(Error::option(
            "teacher_paths",
            config.teacher_paths,
            format!(
                "must be at least 5 x the batch size (and 500): a fifth is held out and the \
                 rest must fill a batch of {}",
                config.batch_size
            ),
        ));
    }
    if !(config.learning_rate > 0.0 && config.learning_rate < 1.0) {
        return Err(Error::option(
            "learning_rate",
            config.learning_rate,
            "must lie in (0, 1)",
        ));
    }
    Ok(())
}

/// The teacher's paths of every regime, standardised as the network sees them.
fn teacher_pools(config: &DistillConfig, teacher: &LoadedModel) -> Result<Vec<Pool>> {
    let card = &teacher.card;
    let net = teacher.denoiser(crate::model::Engine::Auto)?;
    let regimes = card.labels.len();
    let bar = progress_bar(
        config.progress,
        (regimes * config.teacher_paths * config.teacher_sampler.steps(card.timesteps)) as u64,
        "teacher path-steps",
    );
    let pools = (0..regimes)
        .map(|regime| {
            let draw = PathDraw {
                regime,
                sampler: config.teacher_sampler,
                guidance: default_guidance(card),
                seed: config.seed,
            };
            let returns = sample_paths(teacher, net, &draw, 0..config.teacher_paths, &bar)?;
            Ok(Pool::new(card, &returns))
        })
        .collect::<Result<Vec<_>>>();
    bar.finish_and_clear();
    pools
}

/// The student: the teacher's network with trainable copies of its weights.
fn student_network(config: &DistillConfig, teacher: &LoadedModel) -> Result<(VarMap, UNet1d)> {
    let card = &teacher.card;
    let mut varmap = VarMap::new();
    let mut net = UNet1d::new(
        &card.architecture,
        SeededInit::var_builder(&varmap, config.seed, &config.device),
    )?;
    varmap.set(stored_weights(teacher)?.iter())?;
    if let Some(prior) = &card.prior {
        net.set_prior(prior.predictor(card.architecture.window));
    }
    Ok((varmap, net))
}

/// The student's forward passes: its paths for an optimiser step or for validation.
struct Run<'a> {
    config: &'a DistillConfig,
    student: &'a UNet1d,
    pools: &'a [Pool],
    schedule: NoiseSchedule,
    mask: Tensor,
    clip: f64,
    guidance: f64,
    shape: (usize, usize, usize),
}

impl<'a> Run<'a> {
    fn new(
        config: &'a DistillConfig,
        card: &ModelCard,
        student: &'a UNet1d,
        pools: &'a [Pool],
    ) -> Result<Self> {
        let a = &card.architecture;
        let shape = (a.assets, a.window, a.padded_len());
        Ok(Self {
            config,
            student,
            pools,
            schedule: NoiseSchedule::new(card.schedule, card.timesteps),
            mask: pad_mask(a.assets, a.window, a.padded_len(), &config.device)?,
            clip: card.normalisation.clip,
            guidance: default_guidance(card),
            shape,
        })
    }

    /// `net`'s paths of `regime` from `n` Gaussian draws of `rng`, (n, assets · window).
    fn paths(&self, net: &UNet1d, regime: usize, n: usize, rng: &mut SeededRng) -> Result<Tensor> {
        let (assets, window, padded) = self.shape;
        let device = &self.config.device;
        let mut normals = |_: ()| {
            Tensor::from_vec(
                rng.normals_f32(n * assets * padded),
                (n, assets, padded),
                device,
            )
        };
        let x = normals(())?.broadcast_mul(&self.mask)?;
        let process = ReverseProcess {
            net,
            schedule: &self.schedule,
            mask: &self.mask,
            regime: regime as u32,
            guidance: self.guidance,
            draws_x0: self.config.sampler.draws_x0(),
        };
        let mut sampler = self.config.sampler.build(&self.schedule, Some(self.clip));
        let hidden = indicatif::ProgressBar::hidden();
        let x = process.run(sampler.as_mut(), x, || normals(()), &hidden)?;
        Ok(x.narrow(2, 0, window)?.flatten_from(1)?)
    }

    /// The loss of optimiser step `step`: the energy distance, up to the teacher batch's own
    /// spread, between a batch of the student's paths and one of the teacher's, of the regime
    /// whose turn it is, both drawn from `rng`.
    fn loss(&self, step: usize, rng: &mut SeededRng) -> Result<Tensor> {
        let regime = step % self.pools.len();
        let b = self.config.batch_size;
        let student = self.paths(self.student, regime, b, rng)?;
        let teacher = self.pools[regime].training_batch(b, rng, &self.config.device)?;
        Ok(batch_energy_loss(&student, &teacher)?)
    }

    /// The energy distance between `net`'s paths from fixed draws and the teacher's held-out
    /// paths, summed over the regimes.
    fn validation_distance(&self, net: &UNet1d) -> Result<f64> {
        let mut total = 0.0;
        for (regime, pool) in self.pools.iter().enumerate() {
            let mut rng = SeededRng::new(self.config.seed, 2 + regime as u64);
            let n = pool.held_out_len();
            let chunk = self.config.batch_size.max(256);
            let paths = (0..n)
                .step_by(chunk)
                .map(|start| self.paths(net, regime, chunk.min(n - start), &mut rng))
                .collect::<Result<Vec<_>>>()?;
            total += pool.held_out_distance(&Tensor::cat(&paths, 0)?)?;
        }
        Ok(total)
    }
}

impl std::fmt::Display for DistillReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.record;
        writeln!(f, "wrote {}", self.out.display())?;
        let first = r
            .validation_energy_distance
            .first()
            .map_or(f64::NAN, |c| c.1);
        let best = r
            .validation_energy_distance
            .iter()
            .find(|c| c.0 == r.best_step)
            .map_or(f64::NAN, |c| c.1);
        writeln!(
            f,
            "{} steps in {:.1} s; validation energy distance to the teacher's paths {:.3e} \
             with its own weights, {:.3e} at step {} (kept)",
            r.steps_run, r.wall_seconds, first, best, r.best_step
        )
    }
}
