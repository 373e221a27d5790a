//! `scengen generate` (the diffusion model) and `scengen bench`: the pipeline that owns the
//! sampling loop and classifier-free guidance. It draws scenario paths from a trained model for
//! one regime, batch by batch, and streams them to a scenario file ([`crate::scenarios`]).

mod as_of;
mod bench;
mod guidance;
mod start_days;

pub use as_of::{
    market_levels, standardised_days, CovarianceTarget, LevelSets, MarketState, CORRELATION_LAMBDA,
};
pub use bench::{bench, peak_rss_mib, BenchConfig, BenchReport};
pub use guidance::guided_eps;
pub use start_days::TrainStarts;

use std::collections::BTreeMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};

use crate::data::AsOf;
use crate::diffusion::{NoiseSchedule, Sampler, SamplerKind};
use crate::error::{Error, Result};
use crate::model::{load_model, pad_mask, Denoiser, Engine, Layout, LoadedModel, DEFAULT_MODEL};
use crate::report::progress_bar;
use crate::rng::{SeededRng, DEFAULT_SEED};
use crate::scenarios::{
    batches_of, check_path_count, default_scenario_file, ScenarioWriter, Shard, DEFAULT_PATHS,
    DEFAULT_REGIME,
};

/// Default classifier-free guidance weight of a model without a Gaussian prior.
pub const DEFAULT_GUIDANCE: f64 = 1.5;

/// The guidance weight to use when none is given: 1 (plain conditional sampling) for a model
/// with a Gaussian prior, whose regime Gaussians guidance would extrapolate (high-vix EW
/// volatility 38% at 1.5 against 29% real), [`DEFAULT_GUIDANCE`] otherwise.
pub fn default_guidance(card: &crate::model::ModelCard) -> f64 {
    if card.prior.is_some() {
        1.0
    } else {
        DEFAULT_GUIDANCE
    }
}

/// Checks that each count given on the command line is at least 1. A batch size of 0 would
/// otherwise run one path per batch, hundreds of times slower, without a word.
fn check_counts(counts: &[(&str, usize)]) -> Result<()> {
    match counts.iter().find(|(_, v)| *v == 0) {
        Some((option, _)) => Err(Error::option(option, 0, "must be at least 1")),
        None => Ok(()),
    }
}

/// Checks a guidance weight given on the command line.
fn check_guidance(guidance: Option<f64>) -> Result<()> {
    match guidance {
        Some(w) if !w.is_finite() || w < 0.0 => {
            Err(Error::option("guidance", w, "must be a finite number >= 0"))
        }
        _ => Ok(()),
    }
}

/// Default sampler: SDE-DPM-Solver++(2M), 100 evaluations spread evenly in log-SNR. The
/// deterministic DPM-Solver++ converges by 50 steps to the model's probability-flow ODE, whose
/// paths have thinner tails and lower correlation than the model's ancestral (DDPM) chain; the
/// SDE form reaches DDPM's distribution at a tenth of its evaluations, and on the embedded data
/// it is nearer the held-out windows on correlation, kurtosis, clustering and the spread of path
/// volatility in every regime (docs/samplers.md), for about twice the
/// time.
pub const DEFAULT_SAMPLER: SamplerKind = SamplerKind::SdeDpmSolver {
    steps: 100,
    spacing: crate::diffusion::Spacing::LogSnr,
};

/// The sampler a model runs with unless another is asked for: the one its weights were
/// distilled for (`scengen distill`), or [`DEFAULT_SAMPLER`].
pub fn model_sampler(card: &crate::model::ModelCard) -> SamplerKind {
    card.distilled
        .as_ref()
        .map_or(DEFAULT_SAMPLER, |d| d.sampler)
}

/// Paths per network batch when none is given: 1,000 on the CPU (the fast engine splits them
/// into cache-sized sub-batches anyway), 5,000 on CUDA, where larger batches mean fewer kernel
/// launches per path and the tensors stay small (the default model's widest activation for
/// 5,000 guided windows, 10,000 rows x 32 channels x 32 days, is 41 MB).
pub fn default_batch_size(device: &Device) -> usize {
    if device.is_cuda() {
        5_000
    } else {
        1_000
    }
}

/// Settings of one `generate` run with the diffusion model.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub model: PathBuf,
    /// The regime's label; with `as_of`, the regime in force after its close when `None`.
    pub regime: Option<String>,
    /// Paths as of a market close (the model's windows started from the state at that close)
    /// instead of from the regime's own starting states.
    pub as_of: Option<AsOf>,
    /// Without `as_of`: a windows file whose regime train days the paths start from, each
    /// from a day drawn at random ([`TrainStarts`]); `None` starts them from the chain's
    /// fitted first-day levels.
    pub start_days: Option<PathBuf>,
    pub n: usize,
    /// `None`: the model's own, [`model_sampler`].
    pub sampler: Option<SamplerKind>,
    /// `None`: the model's [`default_guidance`].
    pub guidance: Option<f64>,
    pub seed: u64,
    pub out: PathBuf,
    pub batch_size: usize,
    pub device: Device,
    /// Which network implementation runs inference.
    pub engine: Engine,
    pub progress: bool,
    /// Which part of the run's paths to write (the whole run by default): path ids stay the
    /// run's, so the parts together are the unsharded file's paths, value for value.
    pub shard: Shard,
}

/// The defaults: 10,000 paths of high-vix from [`DEFAULT_MODEL`] with the default sampler and the
/// model's own guidance, in batches of 1,000 on the CPU, to `scenarios/high-vix.parquet`.
impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            regime: Some(DEFAULT_REGIME.into()),
            as_of: None,
            start_days: None,
            n: DEFAULT_PATHS,
            sampler: None,
            guidance: None,
            seed: DEFAULT_SEED,
            out: default_scenario_file(DEFAULT_REGIME, None),
            batch_size: default_batch_size(&Device::Cpu),
            device: Device::Cpu,
            engine: Engine::Auto,
            progress: false,
            shard: Shard::default(),
        }
    }
}

/// What a set of paths is drawn with: the regime's index, the sampler, the guidance weight and
/// the seed whose stream p path p draws from.
#[derive(Debug, Clone, Copy)]
pub struct PathDraw {
    pub regime: usize,
    pub sampler: SamplerKind,
    pub guidance: f64,
    pub seed: u64,
}

/// Draws the paths `paths` (their global indices) and returns them de-standardised:
/// `paths.len() * window * assets` daily log returns, path-major, then day, then asset. Path p
/// draws its noise from stream p of the seed, so it does not depend on the batch it falls in.
/// `bar` advances by one per path and network evaluation.
pub fn sample_paths(
    model: &LoadedModel,
    net: &dyn Denoiser,
    draw_with: &PathDraw,
    paths: std::ops::Range<usize>,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f64>> {
    let ids: Vec<usize> = paths.collect();
    sample_path_ids(model, net, draw_with, &ids, bar)
}

/// [`sample_paths`] for any set of path ids.
pub fn sample_path_ids(
    model: &LoadedModel,
    net: &dyn Denoiser,
    draw_with: &PathDraw,
    paths: &[usize],
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f64>> {
    let PathDraw {
        regime,
        sampler: sampler_kind,
        guidance,
        seed,
    } = *draw_with;
    let device = &model.device;
    let card = &model.card;
    let arch = &card.architecture;
    let (n_assets, window, padded) = (arch.assets, arch.window, arch.padded_len());
    let schedule = NoiseSchedule::new(card.schedule, card.timesteps);
    let mut sampler = sampler_kind.build(&schedule, Some(card.normalisation.clip));
    let b = paths.len();
    let size = n_assets * padded;
    let mut rngs: Vec<SeededRng> = paths
        .iter()
        .map(|&p| SeededRng::new(seed, p as u64))
        .collect();
    // Paths draw from their own streams, so the draws split over the cores give the same
    // numbers. On one thread they were about 4% of the CPU time of an SDE sampler's run, with
    // the other core idle meanwhile.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = b.div_ceil(threads).max(MIN_PATHS_PER_NOISE_THREAD);
    let draw = |rngs: &mut [SeededRng]| -> candle_core::Result<Tensor> {
        let mut v = vec![0.0f32; b * size];
        std::thread::scope(|scope| {
            for (values, rngs) in v.chunks_mut(chunk * size).zip(rngs.chunks_mut(chunk)) {
                scope.spawn(move || {
                    for (path, r) in values.chunks_mut(size).zip(rngs) {
                        r.fill_normals_f32(path);
                    }
                });
            }
        });
        Tensor::from_vec(v, (b, n_assets, padded), device)
    };
    let mask = pad_mask(n_assets, window, padded, device)?;
    let x = draw(&mut rngs)?.broadcast_mul(&mask)?;
    let process = ReverseProcess {
        net,
        schedule: &schedule,
        mask: &mask,
        regime: regime as u32,
        guidance,
        draws_x0: sampler_kind.draws_x0(),
    };
    let x = process.run(sampler.as_mut(), x, || draw(&mut rngs), bar)?;
    let mut x: Vec<f32> = x.flatten_all()?.to_vec1()?;
    // Each asset's own jumps, which the model learnt without, from the path's stream after
    // the sampler's draws.
    if let Some(jumps) = &card.jumps {
        let layout = Layout::windows(n_assets, window, padded);
        for (path, rng) in x.chunks_exact_mut(size).zip(&mut rngs) {
            jumps.regimes[regime].add(path, layout, rng);
        }
    }
    let norm = &card.normalisation;
    let mut out = Vec::with_capacity(b * window * n_assets);
    for p in 0..b {
        for day in 0..window {
            for a in 0..n_assets {
                let z = x[p * size + a * padded + day] as f64;
                out.push(z * norm.std[a] + norm.mean[a]);
            }
        }
    }
    if let Some(bad) = out.iter().position(|v| !v.is_finite()) {
        return Err(Error::Generation(format!(
            "a non-finite return in path {}; the model in {} is unusable",
            paths[bad / (window * n_assets)],
            model.dir.display()
        )));
    }
    Ok(out)
}

/// One regime's reverse process through a network: the loop every sampler runs.
pub struct ReverseProcess<'a> {
    pub net: &'a dyn Denoiser,
    pub schedule: &'a NoiseSchedule,
    /// 1 on the window's days, 0 on the padding ([`pad_mask`]).
    pub mask: &'a Tensor,
    pub regime: u32,
    pub guidance: f64,
    /// Take each stochastic step at a draw of x_0 from the prior's posterior around the
    /// network's estimate ([`SamplerKind::draws_x0`]).
    pub draws_x0: bool,
}

impl ReverseProcess<'_> {
    /// From `x`, drawn at the sampler's noisiest level, through each of its network evaluations
    /// to the sample; `noise` gives the fresh draws of a stochastic sampler, and `bar` moves by
    /// the batch's paths at each evaluation. Differentiable when the network is.
    pub fn run(
        &self,
        sampler: &mut dyn Sampler,
        mut x: Tensor,
        mut noise: impl FnMut() -> candle_core::Result<Tensor>,
        bar: &indicatif::ProgressBar,
    ) -> candle_core::Result<Tensor> {
        let b = x.dim(0)?;
        for i in 0..sampler.timesteps().len() {
            let t = sampler.timesteps()[i];
            let mut eps = guided_eps(self.net, self.schedule, &x, t, self.regime, self.guidance)?;
            let fresh = if sampler.needs_noise(i) {
                if self.draws_x0 {
                    eps = self.at_drawn_x0(&x, t, eps, &mut noise)?;
                }
                Some(noise()?)
            } else {
                None
            };
            x = sampler
                .step(i, &x, &eps, fresh.as_ref())?
                .broadcast_mul(self.mask)?;
            bar.inc(b as u64);
        }
        Ok(x)
    }
}

impl ReverseProcess<'_> {
    /// The noise prediction `eps` at level `t` moved to agree with an x_0 drawn from the
    /// prior's posterior around the estimate it implies: x̃_0 = x̂_0 + δ is
    /// ε̃ = ε̂ − √ᾱ / √(1 − ᾱ) δ. A sampler's posterior step at x̂_0 draws from the process
    /// only when x_0 given x_t is certain, as it nearly is after many small steps; after a few
    /// large ones its paths had a fifth of the variance and their idiosyncratic parts least.
    fn at_drawn_x0(
        &self,
        x: &Tensor,
        t: usize,
        eps: Tensor,
        noise: &mut impl FnMut() -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        let prior = self.net.prior().ok_or_else(|| {
            candle_core::Error::Msg("drawing x_0 needs a model with a fitted prior".into())
        })?;
        let alpha_bar = self.schedule.alpha_bars[t];
        let (signal, sigma) = (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
        let (normals, picks) = (noise()?, noise()?);
        let deviation =
            prior.x0_deviation(x, (signal, sigma), self.regime as usize, &normals, &picks)?;
        eps - (deviation * (signal / sigma))?.broadcast_mul(self.mask)?
    }
}

/// Checks `sampler`'s settings against `card`'s model: its schedule, and a prior to draw x_0
/// from where the sampler draws it.
pub fn check_sampler(sampler: &SamplerKind, card: &crate::model::ModelCard) -> Result<()> {
    sampler.validate(card.timesteps)?;
    if sampler.draws_x0() && card.prior.is_none() {
        return Err(Error::option(
            "sampler",
            "posterior-draw",
            "draws x_0 from the model's prior, and this model has none (trained with \
             --gaussian-prior false)",
        ));
    }
    Ok(())
}

/// The fewest paths whose noise a thread of [`sample_paths`] draws.
const MIN_PATHS_PER_NOISE_THREAD: usize = 64;

/// The regime label to draw and, as of a date, the market's state there, which the model's
/// prior then starts its windows from.
fn start_state(
    config: &GenerateConfig,
    model: &mut LoadedModel,
) -> Result<(String, Option<MarketState>)> {
    let Some(as_of) = &config.as_of else {
        let label = config.regime.clone().ok_or_else(|| {
            Error::option(
                "regime",
                "",
                "is needed for paths that are not as of a date",
            )
        })?;
        return Ok((label, None));
    };
    let state = as_of.state(&model.card, config.regime.as_deref())?;
    let label = config
        .regime
        .clone()
        .unwrap_or_else(|| state.regime_in_force.clone());
    if let Some(prior) = model.card.prior.clone() {
        let class = model.card.regime_index(&label)?;
        model.use_prior(&prior.starting_at(class, &state.levels));
    }
    Ok((label, Some(state)))
}

/// Generates `config.n` paths and writes them; nothing is left behind on failure.
pub fn generate(config: &GenerateConfig) -> Result<PathBuf> {
    check_path_count(config.n)?;
    config.shard.check()?;
    check_counts(&[("batch_size", config.batch_size)])?;
    check_guidance(config.guidance)?;
    let mut model = load_model(&config.model, &config.device)?;
    let sampler = config.sampler.unwrap_or_else(|| model_sampler(&model.card));
    check_sampler(&sampler, &model.card)?;
    let guidance = config
        .guidance
        .unwrap_or_else(|| default_guidance(&model.card));
    let (label, state) = start_state(config, &mut model)?;
    let regime = model.card.regime_index(&label)?;
    let mut metadata = BTreeMap::new();
    if let (Some(state), Some(as_of)) = (&state, &config.as_of) {
        metadata.insert(
            crate::io::meta::AS_OF.into(),
            crate::io::format_date(state.close),
        );
        metadata.insert(
            crate::io::meta::PRICES.into(),
            as_of.prices.display().to_string(),
        );
    }
    metadata.insert(crate::io::meta::METHOD.into(), "diffusion".into());
    metadata.insert(
        crate::io::meta::MODEL.into(),
        config.model.display().to_string(),
    );
    metadata.insert(
        crate::io::meta::MODEL_SHA256.into(),
        model.weights_sha256.clone(),
    );
    metadata.insert(
        crate::io::meta::SAMPLER.into(),
        serde_json::to_string(&sampler).expect("json"),
    );
    metadata.insert(crate::io::meta::GUIDANCE.into(), guidance.to_string());
    metadata.insert(crate::io::meta::SEED.into(), config.seed.to_string());
    // Consumers that must not look ahead (the backtest) check the training cut-off.
    metadata.insert(
        crate::io::meta::TEST_FROM.into(),
        model.card.training.test_from.clone(),
    );
    metadata.extend(config.shard.metadata(config.n));
    let mut writer = ScenarioWriter::create(
        &config.out,
        &model.card.assets,
        &label,
        model.card.window,
        metadata,
    )?;
    // Counted in network evaluations of one path, so that the bar moves at every step of a
    // batch, not once per batch of 1,000 paths.
    let evaluations = sampler.steps(model.card.timesteps) as u64;
    let paths = config.shard.paths(config.n);
    let bar = progress_bar(
        config.progress,
        paths.len() as u64 * evaluations,
        "path-steps",
    );
    let draw_with = PathDraw {
        regime,
        sampler,
        guidance,
        seed: config.seed,
    };
    // As of a close, each day's covariance is GARCH's variances with the close's correlation.
    let target = state.as_ref().map(|s| {
        CovarianceTarget::new(&model.card, regime, &s.levels, &s.variances, &s.correlation)
    });
    let starts = match (&state, &config.start_days) {
        (None, Some(windows)) => Some(TrainStarts::fit(&model.card, windows, regime)?),
        _ => None,
    };
    for paths in batches_of(paths, config.batch_size) {
        let first = paths.start as u32;
        let ids: Vec<usize> = paths.collect();
        let mut values = match &starts {
            Some(starts) => starts.draw(&mut model, config.engine, &draw_with, &ids, &bar),
            None => {
                let net = model.denoiser(config.engine)?;
                sample_path_ids(&model, net, &draw_with, &ids, &bar)
            }
        }
        .map_err(|e| e.in_stage(Error::Generation))?;
        if let Some(target) = &target {
            target.apply(&mut values);
        }
        writer.write_paths(first, &values)?;
    }
    bar.finish_and_clear();
    writer.finish()
}
