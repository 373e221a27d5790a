//! `scengen bench`: how fast generation is, measured the same way every time, as JSON.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::{sample_paths, PathDraw};
use crate::diffusion::SamplerKind;
use crate::error::Result;
use crate::model::{load_model, matmul, Denoiser, Engine, UNetConfig, DEFAULT_MODEL};
use crate::rng::DEFAULT_SEED;
use crate::scenarios::{batches, DEFAULT_REGIME};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub model: PathBuf,
    pub regime: String,
    pub n: usize,
    pub batch_size: usize,
    /// `None`: the model's own, [`model_sampler`](super::model_sampler).
    pub sampler: Option<SamplerKind>,
    /// `None`: the model's [`default_guidance`](super::default_guidance).
    pub guidance: Option<f64>,
    pub engine: Engine,
    pub runs: usize,
    pub seed: u64,
    pub device: Device,
}

/// The defaults: the default model and sampler on high-vix, 2,000 paths in batches of 1,000 on
/// the CPU, the median of 3 runs.
impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            regime: DEFAULT_REGIME.into(),
            n: 2_000,
            batch_size: super::default_batch_size(&Device::Cpu),
            sampler: None,
            guidance: None,
            engine: Engine::Auto,
            runs: 3,
            seed: DEFAULT_SEED,
            device: Device::Cpu,
        }
    }
}

/// The measurement.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub parameters: usize,
    pub regime: String,
    pub paths: usize,
    pub batch_size: usize,
    pub sampler: SamplerKind,
    pub guidance: f64,
    pub engine: Engine,
    pub runs: usize,
    pub seconds_per_run: Vec<f64>,
    pub median_seconds: f64,
    pub paths_per_second: f64,
    /// The median scaled to 10,000 paths (batches are independent, so time is linear in n).
    pub seconds_per_10000_paths: f64,
    /// Network evaluations per path (two per step with guidance w != 0, 1).
    pub evaluations_per_path: usize,
    pub flops_per_forward: u64,
    /// Over the whole generation: sampler arithmetic, noise and copies included.
    pub achieved_gflops: f64,
    /// Seconds inside the network's forward passes (median run).
    pub forward_seconds_median: f64,
    /// FLOPs of the forward passes over the time spent in them.
    pub forward_gflops: f64,
    pub peak_rss_mib: Option<f64>,
    pub threads: usize,
    /// This machine's fp32 matrix-product rate, measured on [`PEAK_SIZE`]³ products on all its
    /// threads (CPU only): the peak the forward's rate is stated against.
    pub fp32_matmul_peak_gflops: Option<f64>,
    /// `forward_gflops` over that peak.
    pub forward_share_of_peak: Option<f64>,
}

/// Side of the square fp32 products that measure the machine's peak: large enough that
/// packing and threading costs vanish (16 GFLOP each, about a tenth of a second on 2 cores).
pub const PEAK_SIZE: usize = 2048;

/// Generates `n` paths `runs` times (nothing written) and reports the median.
pub fn bench(config: &BenchConfig) -> Result<BenchReport> {
    super::check_counts(&[
        ("runs", config.runs),
        ("n", config.n),
        ("batch_size", config.batch_size),
    ])?;
    super::check_guidance(config.guidance)?;
    let model = load_model(&config.model, &config.device)?;
    let sampler = config
        .sampler
        .unwrap_or_else(|| super::model_sampler(&model.card));
    super::check_sampler(&sampler, &model.card)?;
    let guidance = config
        .guidance
        .unwrap_or_else(|| super::default_guidance(&model.card));
    let regime = model.card.regime_index(&config.regime)?;
    let net = Timed {
        inner: model.denoiser(config.engine)?,
        seconds: Cell::new(0.0),
    };
    let draw_with = PathDraw {
        regime,
        sampler,
        guidance,
        seed: config.seed,
    };
    let mut times = Vec::with_capacity(config.runs);
    let mut forward_times = Vec::with_capacity(config.runs);
    for _ in 0..config.runs {
        let started = Instant::now();
        net.seconds.set(0.0);
        for paths in batches(config.n, config.batch_size) {
            sample_paths(
                &model,
                &net,
                &draw_with,
                paths,
                &indicatif::ProgressBar::hidden(),
            )?;
        }
        times.push(started.elapsed().as_secs_f64());
        forward_times.push(net.seconds.get());
    }
    let median = median_of(&times);
    let forward_median = median_of(&forward_times);
    let peak = config.device.is_cpu().then(fp32_matmul_peak_gflops);
    let guided = guidance != 0.0 && guidance != 1.0;
    let evaluations = sampler.steps(model.card.timesteps) * if guided { 2 } else { 1 };
    // The network as it runs (a factor model's maps are folded into its convolutions).
    let flops = model.network.config().forward_flops();
    let forward_gflops =
        (flops as f64 * evaluations as f64 * config.n as f64) / forward_median / 1e9;
    Ok(BenchReport {
        model: config.model.display().to_string(),
        parameters: model.card.training.parameters,
        regime: config.regime.clone(),
        paths: config.n,
        batch_size: config.batch_size,
        sampler,
        guidance,
        engine: config.engine,
        runs: config.runs,
        seconds_per_run: times,
        median_seconds: median,
        paths_per_second: config.n as f64 / median,
        seconds_per_10000_paths: median * 10_000.0 / config.n as f64,
        evaluations_per_path: evaluations,
        flops_per_forward: flops,
        achieved_gflops: (flops as f64 * evaluations as f64 * config.n as f64) / median / 1e9,
        forward_seconds_median: forward_median,
        forward_gflops,
        peak_rss_mib: peak_rss_mib(),
        threads: candle_core::utils::get_num_threads(),
        fp32_matmul_peak_gflops: peak,
        forward_share_of_peak: peak.map(|p| forward_gflops / p),
    })
}

/// The best of 3 timed fp32 products of [`PEAK_SIZE`]² matrices (after one to warm up), in
/// GFLOP/s, on every thread, through the same `gemm` kernels the network runs on (its widest
/// instructions chosen at run time: AVX-512 where the CPU has it, else AVX2 or SSE).
pub fn fp32_matmul_peak_gflops() -> f64 {
    let n = PEAK_SIZE;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.25 - 0.75).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
    let mut c = Vec::new();
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut best = f64::INFINITY;
    for round in 0..4 {
        let started = Instant::now();
        matmul(&a, &b, (n, n, n), &mut c, threads);
        if round > 0 {
            best = best.min(started.elapsed().as_secs_f64());
        }
    }
    std::hint::black_box(&c);
    2.0 * (n as f64).powi(3) / best / 1e9
}

fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// A network that adds up the wall time of its forward passes.
struct Timed<'a> {
    inner: &'a dyn Denoiser,
    seconds: Cell<f64>,
}

impl Denoiser for Timed<'_> {
    fn config(&self) -> &UNetConfig {
        self.inner.config()
    }

    fn forward(&self, x: &Tensor, t: &Tensor, regimes: &Tensor) -> candle_core::Result<Tensor> {
        let started = Instant::now();
        let out = self.inner.forward(x, t, regimes)?;
        // CUDA kernels run asynchronously: wait for them, or only the launches are timed.
        out.device().synchronize()?;
        self.seconds
            .set(self.seconds.get() + started.elapsed().as_secs_f64());
        Ok(out)
    }

    fn prior(&self) -> Option<&crate::model::PriorPredictor> {
        self.inner.prior()
    }
}

/// The process's peak resident set (VmHWM), where /proc tells it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
