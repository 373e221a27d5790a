//! One training run's moving parts: the network and its EMA twin initialised from the seed,
//! AdamW with warm-up and cosine decay, gradient clipping, regime dropout, and the fixed draws
//! that make validation losses of different epochs comparable.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::{learning_rate, snapshot, sorted_vars, AdamW, Dataset, Ema, TrainConfig};
use crate::diffusion::{add_noise, NoiseSchedule, Objective};
use crate::error::{Error, Result};
use crate::model::{
    pad_mask, parameter_count, predict_eps, GaussianPrior, SeededInit, UNet1d, UNetConfig,
};
use crate::rng::SeededRng;

/// Where the learning rate ends, as a share of its peak.
const FINAL_LEARNING_RATE_SHARE: f64 = 0.05;

/// The state of a training run between steps.
pub(super) struct Trainer<'a> {
    config: &'a TrainConfig,
    window: usize,
    null_regime: u32,
    schedule: NoiseSchedule,
    varmap: VarMap,
    net: UNet1d,
    ema_map: VarMap,
    ema_net: UNet1d,
    opt: AdamW,
    ema: Ema,
    mask: Tensor,
    rng: SeededRng,
    validation: ValidationDraws,
    order: Vec<usize>,
    step: usize,
    total_steps: usize,
}

impl<'a> Trainer<'a> {
    /// The network and its EMA twin from the seed (both predicting on top of `prior`), the
    /// optimiser, and the draws for `fit` and `val`.
    pub(super) fn new(
        config: &'a TrainConfig,
        arch: &UNetConfig,
        prior: Option<&GaussianPrior>,
        fit: &Dataset,
        val: &Dataset,
    ) -> Result<Self> {
        let device = &config.device;
        let schedule = NoiseSchedule::new(config.schedule, config.timesteps);
        let varmap = VarMap::new();
        let mut net = UNet1d::new(arch, SeededInit::var_builder(&varmap, config.seed, device))?;
        let ema_map = VarMap::new();
        let mut ema_net =
            UNet1d::new(arch, SeededInit::var_builder(&ema_map, config.seed, device))?;
        if let Some(p) = prior {
            let predictor = p.predictor(arch.window);
            net.set_prior(predictor.clone());
            ema_net.set_prior(predictor);
        }
        let opt = AdamW::new(sorted_vars(&varmap), config.weight_decay)?;
        let ema = Ema::new(&opt, sorted_vars(&ema_map), config.ema_decay)?;
        let mask = pad_mask(arch.assets, arch.window, arch.padded_len(), device)?;
        let validation = ValidationDraws::new(val, &schedule, config.objective, config.seed);
        Ok(Self {
            config,
            window: arch.window,
            null_regime: arch.null_regime() as u32,
            schedule,
            varmap,
            net,
            ema_map,
            ema_net,
            opt,
            ema,
            mask,
            rng: SeededRng::new(config.seed, 1),
            validation,
            order: (0..fit.len()).collect(),
            step: 0,
            total_steps: fit.len().div_ceil(config.batch_size) * config.epochs,
        })
    }

    /// Optimiser steps over the whole run, if early stopping does not end it.
    pub(super) fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// Trainable scalars of the network.
    pub(super) fn parameters(&self) -> usize {
        parameter_count(&self.varmap)
    }

    /// One pass over the fitting windows in a fresh random order; returns the mean training
    /// loss and the last learning rate.
    pub(super) fn epoch(
        &mut self,
        epoch: usize,
        fit: &Dataset,
        bar: &indicatif::ProgressBar,
    ) -> Result<(f64, f64)> {
        let mut order = std::mem::take(&mut self.order);
        self.rng.shuffle(&mut order);
        let mut epoch_loss = 0.0;
        let mut lr = 0.0;
        for rows in order.chunks(self.config.batch_size) {
            let loss;
            (loss, lr) = self.step(epoch, fit, rows)?;
            epoch_loss += loss * rows.len() as f64;
            bar.set_message(format!("epoch {epoch} loss {loss:.4}"));
            bar.inc(1);
        }
        self.order = order;
        Ok((epoch_loss / fit.len() as f64, lr))
    }

    /// One optimiser step on a batch of fitting windows: noise at random levels, the regime
    /// label dropped with the dropout probability, the loss, clipped gradients, AdamW and the
    /// EMA. Returns the batch's loss and the learning rate used.
    fn step(&mut self, epoch: usize, fit: &Dataset, rows: &[usize]) -> Result<(f64, f64)> {
        let device = &self.config.device;
        let b = rows.len();
        let x0 = fit.batch(rows, device)?;
        let t: Vec<usize> = (0..b)
            .map(|_| self.rng.below(self.schedule.len()))
            .collect();
        let noise = self.rng.normals_f32(x0.elem_count());
        let eps = Tensor::from_vec(noise, x0.shape(), device)?.broadcast_mul(&self.mask)?;
        let regimes: Vec<u32> = rows
            .iter()
            .map(|&r| {
                if self.rng.uniform() < self.config.regime_dropout {
                    self.null_regime
                } else {
                    fit.regimes[r]
                }
            })
            .collect();
        let xt = add_noise(&self.schedule, &x0, &eps, &t)?;
        let rs = Tensor::from_vec(regimes, b, device)?;
        let pred = predict_eps(&self.net, &self.schedule, &xt, &t, &rs)?;
        let scale = error_scale(self.config.objective, &self.schedule, &t, device)?;
        let loss = masked_mse(&pred, &eps, &scale, self.window)?;
        let loss_value = loss.to_scalar::<f32>()? as f64;
        if !loss_value.is_finite() {
            return Err(Error::Training(format!(
                "the loss became {loss_value} at epoch {epoch}, step {}; nothing was \
                 written, {} is as it was",
                self.step,
                self.config.out.display()
            )));
        }
        let (gradients, _) = self
            .opt
            .clipped_gradients(&loss.backward()?, self.config.grad_clip)?;
        let lr = learning_rate(
            self.step,
            self.total_steps,
            self.config.warmup_steps,
            self.config.learning_rate,
            FINAL_LEARNING_RATE_SHARE,
        );
        self.opt.step(&gradients, lr)?;
        self.ema.update(&self.opt)?;
        self.step += 1;
        Ok((loss_value, lr))
    }

    /// The EMA network's loss on the validation windows, with the same draws every epoch.
    pub(super) fn validation_loss(&self, val: &Dataset) -> Result<f64> {
        let (mask, window, device) = (&self.mask, self.window, &self.config.device);
        Ok(self
            .validation
            .loss(&self.ema_net, val, mask, window, device)?)
    }

    /// A copy of the EMA weights as they are now.
    pub(super) fn ema_weights(&self) -> Result<HashMap<String, Tensor>> {
        snapshot(&self.ema_map)
    }
}

/// Mean squared error over the window's days only (the padding is not data), each sample's
/// error multiplied by its `scale` ((batch, 1, 1)).
fn masked_mse(
    pred: &Tensor,
    target: &Tensor,
    scale: &Tensor,
    window: usize,
) -> candle_core::Result<Tensor> {
    (pred.narrow(2, 0, window)? - target.narrow(2, 0, window)?)?
        .broadcast_mul(scale)?
        .sqr()?
        .mean_all()
}

/// The square root of the objective's weight on each sample's squared noise error, shaped
/// (batch, 1, 1), at the schedule indices `t`.
fn error_scale(
    objective: Objective,
    schedule: &NoiseSchedule,
    t: &[usize],
    device: &Device,
) -> candle_core::Result<Tensor> {
    let scale: Vec<f32> = t
        .iter()
        .map(|&i| objective.eps_error_weight(schedule.alpha_bars[i]).sqrt() as f32)
        .collect();
    Tensor::from_vec(scale, (t.len(), 1, 1), device)
}

/// Fixed timesteps and noise for the validation windows, so that validation losses of different
/// epochs are comparable.
struct ValidationDraws {
    t: Vec<usize>,
    noise: Vec<f32>,
    schedule: NoiseSchedule,
    objective: Objective,
}

impl ValidationDraws {
    fn new(val: &Dataset, schedule: &NoiseSchedule, objective: Objective, seed: u64) -> Self {
        let mut rng = SeededRng::new(seed, 2);
        let t = (0..val.len()).map(|_| rng.below(schedule.len())).collect();
        let noise = rng.normals_f32(val.values.len());
        Self {
            t,
            noise,
            schedule: schedule.clone(),
            objective,
        }
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
            let scale = error_scale(self.objective, &self.schedule, &t, device)?;
            total += masked_mse(&pred, &eps, &scale, window)?.to_scalar::<f32>()? as f64 * b as f64;
        }
        Ok(total / val.len() as f64)
    }
}
