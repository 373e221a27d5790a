//! Helpers shared by the integration tests: small Parquet panels written on the fly.
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

/// The repository root, where the embedded data lives.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn embedded_prices() -> PathBuf {
    root().join("data/sp500_20_prices.parquet")
}

pub fn embedded_index() -> PathBuf {
    root().join("data/sp500_index.parquet")
}

/// Daily log returns of the embedded S&P 500 index.
pub fn spx_log_returns() -> Vec<f64> {
    let p = scengen::data::Panel::read(&embedded_index(), "date", None).unwrap();
    p.columns[0]
        .windows(2)
        .map(|w| (w[1] / w[0]).ln())
        .collect()
}

/// Ingests the embedded prices with the default settings into `dir/windows.parquet`.
pub fn embedded_windows(dir: &Path) -> PathBuf {
    let out = dir.join("windows.parquet");
    let mut c = scengen::data::IngestConfig::embedded(&out);
    c.input = embedded_prices();
    c.signal = scengen::data::SignalSource::RealizedVol {
        path: embedded_index(),
        column: "SPX".into(),
    };
    scengen::data::ingest(&c).unwrap();
    out
}

/// A network small enough to train for an epoch in seconds on the embedded windows (20 assets,
/// 30 days, 3 regimes), for the tests that need a model of the real data.
pub fn small_embedded_arch() -> scengen::model::UNetConfig {
    scengen::model::UNetConfig {
        assets: 20,
        window: 30,
        regimes: 3,
        base_channels: 8,
        channel_mults: vec![1, 2],
        blocks_per_level: 1,
        attention_levels: vec![],
        heads: 2,
        groups: 4,
        embed_dim: 16,
        amplitude_input: false,
        linear_path: 0,
        factors: 0,
    }
}

/// Asserts that every variable of `varmap` received a finite, non-zero gradient: the check
/// that catches candle ops whose backward pass silently stops.
pub fn assert_every_variable_learns(
    varmap: &candle_nn::VarMap,
    grads: &candle_core::backprop::GradStore,
) {
    let data = varmap.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    for name in names {
        let g = grads
            .get(&data[&name])
            .unwrap_or_else(|| panic!("{name} has no gradient"));
        let norm = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm > 0.0 && norm.is_finite(),
            "{name}: gradient norm {norm}"
        );
    }
}

/// A column of a test panel.
pub enum Col {
    F64(&'static str, Vec<f64>),
    Str(&'static str, Vec<&'static str>),
}

/// Writes a panel with a `date` column of day numbers and the given columns.
pub fn write_panel(path: &Path, dates: &[i32], cols: Vec<Col>) {
    let mut fields = vec![Field::new("date", DataType::Date32, false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(dates.to_vec()))];
    for c in cols {
        match c {
            Col::F64(name, v) => {
                fields.push(Field::new(name, DataType::Float64, true));
                arrays.push(Arc::new(Float64Array::from(v)));
            }
            Col::Str(name, v) => {
                fields.push(Field::new(name, DataType::Utf8, true));
                arrays.push(Arc::new(StringArray::from(v)));
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// Consecutive day numbers starting at 2000-01-03 (10959), weekends included for simplicity.
pub fn days(n: usize) -> Vec<i32> {
    (0..n as i32).map(|i| 10959 + i).collect()
}

/// A positive random-walk price path of length n.
pub fn prices(n: usize, seed: u64) -> Vec<f64> {
    let mut p = 100.0;
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            p *= (0.04 * u).exp();
            p
        })
        .collect()
}

/// Files in `dir`, hidden temporaries included, for the "nothing left behind" checks.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// A test vector file from tests/testvectors (copies of the shared reference values).
pub fn vectors(name: &str) -> serde_json::Value {
    let path = root().join("tests/testvectors").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn as_f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Writes a windows file of i.i.d. Gaussian days with covariance `chol * chol^T` (lower
/// triangular `chol`, row-major), `count` windows of `window` days in two regimes whose
/// volatilities differ by `regime_scale`, dated from 2000 on.
pub fn write_gaussian_windows(
    path: &Path,
    chol: &[f64],
    assets: usize,
    window: usize,
    count: usize,
    regime_scale: f64,
    seed: u64,
) {
    let mut rng = scengen::rng::SeededRng::new(seed, 99);
    write_two_regime_windows(path, (assets, window, count), |regime, day| {
        let scale = if regime == 1 { regime_scale } else { 1.0 };
        let z: Vec<f64> = (0..assets).map(|_| rng.normal()).collect();
        for i in 0..assets {
            let v: f64 = (0..=i).map(|j| chol[i * assets + j] * z[j]).sum();
            day.push(0.01 * scale * v);
        }
    });
}

/// Writes a windows file of `count` windows of `window` days of `assets` assets (`A0`, `A1`,
/// …), alternating between the regimes `calm` and `stressed`, dated from 2000 on without gaps
/// between windows; `day(regime, out)` appends one day's returns.
pub fn write_two_regime_windows(
    path: &Path,
    (assets, window, count): (usize, usize, usize),
    mut day: impl FnMut(usize, &mut Vec<f64>),
) {
    use scengen::data::{RegimeRule, WindowInfo, WindowSet};
    let mut set = WindowSet {
        assets: (0..assets).map(|a| format!("A{a}")).collect(),
        rule: RegimeRule::new(vec![1.0], vec!["calm".into(), "stressed".into()]).unwrap(),
        window,
        windows: vec![],
        dates: vec![],
        returns: vec![],
        metadata: Default::default(),
    };
    for w in 0..count {
        let regime = w % 2;
        let start = 10959 + (w * (window + 1)) as i32;
        set.windows.push(WindowInfo {
            id: w as u32,
            start_date: start,
            end_date: start + window as i32 - 1,
            regime,
        });
        for d in 0..window {
            set.dates.push(start + d as i32);
            day(regime, &mut set.returns);
        }
    }
    set.write(path).unwrap();
}

/// A network that predicts nothing: the noise prediction is the prior's alone.
pub struct PriorOnly {
    pub config: scengen::model::UNetConfig,
    pub prior: scengen::model::PriorPredictor,
}

impl scengen::model::Denoiser for PriorOnly {
    fn config(&self) -> &scengen::model::UNetConfig {
        &self.config
    }

    fn forward(
        &self,
        x: &candle_core::Tensor,
        _t: &candle_core::Tensor,
        _regimes: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        x.zeros_like()
    }

    fn prior(&self) -> Option<&scengen::model::PriorPredictor> {
        Some(&self.prior)
    }
}

/// `n` windows of regime `class` sampled from `net`'s prior alone with DPM-Solver++ 50 steps,
/// log-SNR spacing (deterministic, so the only sampling error is the starting noise's),
/// unguided, as standardised `assets x padded` windows with zero padding.
pub fn sample_prior_alone(net: &PriorOnly, n: usize, class: u32, seed: u64) -> Vec<f32> {
    use candle_core::{DType, Device, Tensor};
    use scengen::diffusion::{NoiseSchedule, SamplerKind, ScheduleKind, Spacing};
    use scengen::generate::guided_eps;
    let (assets, padded, window) = (
        net.config.assets,
        net.config.padded_len(),
        net.config.window,
    );
    let schedule = NoiseSchedule::new(ScheduleKind::Cosine, 1000);
    let kind = SamplerKind::DpmSolver {
        steps: 50,
        spacing: Spacing::LogSnr,
    };
    let mut sampler = kind.build(&schedule, None);
    let mut rng = scengen::rng::SeededRng::new(seed, 0);
    let mask: Vec<f32> = (0..n * assets * padded)
        .map(|i| if i % padded < window { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (n, assets, padded), &Device::Cpu).unwrap();
    let noise = rng.normals_f32(n * assets * padded);
    let mut x =
        (Tensor::from_vec(noise, (n, assets, padded), &Device::Cpu).unwrap() * &mask).unwrap();
    for i in 0..sampler.timesteps().len() {
        let t = sampler.timesteps()[i];
        let eps = guided_eps(net, &schedule, &x, t, class, 1.0).unwrap();
        x = (sampler.step(i, &x, &eps, None).unwrap() * &mask).unwrap();
    }
    x.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// ε_G of `predictor` for the windows `x` of `shape` (batch, assets, padded) at the noise levels
/// ᾱ `alpha_bars` and the classes `classes`, one per window, on the CPU.
pub fn prior_eps(
    predictor: &scengen::model::PriorPredictor,
    x: &[f32],
    shape: (usize, usize, usize),
    alpha_bars: &[f64],
    classes: &[u32],
) -> Vec<f32> {
    use candle_core::{Device, Tensor};
    let b = shape.0;
    let col = |v: Vec<f32>| Tensor::from_vec(v, (b, 1, 1), &Device::Cpu).unwrap();
    predictor
        .eps(
            &Tensor::from_vec(x.to_vec(), shape, &Device::Cpu).unwrap(),
            &col(alpha_bars.iter().map(|a| a.sqrt() as f32).collect()),
            &col(alpha_bars.iter().map(|a| (1.0 - a).sqrt() as f32).collect()),
            &Tensor::from_vec(classes.to_vec(), b, &Device::Cpu).unwrap(),
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Runs an analysis stage as its command does (run, then write into `out`), which must fail
/// with an error `check` accepts and leave nothing at `out`.
pub fn assert_stage_fails_cleanly<R: scengen::report::StageReport>(
    result: scengen::Result<R>,
    out: &Path,
    check: impl Fn(&scengen::Error) -> bool,
) {
    let err = result
        .and_then(|report| report.write(out))
        .expect_err("bad input must fail");
    assert!(check(&err), "unexpected error: {err}");
    assert!(!out.exists(), "output left behind for: {err}");
}

/// Whether `e` refuses the setting `name` with a reason containing `text`.
pub fn option_error(e: &scengen::Error, name: &str, text: &str) -> bool {
    matches!(e, scengen::Error::InvalidOption { option, reason, .. } if option == name && reason.contains(text))
}

/// How many cases a fuzz test runs: `SCENGEN_FUZZ_CASES` when set (a longer run by hand),
/// `default` otherwise (the suite's bounded run).
pub fn fuzz_cases(default: usize) -> usize {
    std::env::var("SCENGEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f`, failing the test with `case` if it panics instead of returning.
pub fn no_panic<T>(case: &str, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .unwrap_or_else(|_| panic!("panicked on fuzz case: {case}"))
}

/// Replaces one leaf of a JSON document, chosen at random, with an awkward value (zero, a
/// negative, a huge or tiny number, a string, null, an empty array or object), or removes it,
/// or drops an array's last element. Returns what it did.
pub fn mutate_json(v: &mut serde_json::Value, rng: &mut scengen::rng::SeededRng) -> String {
    fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    pointers(child, format!("{at}/{k}"), out);
                }
            }
            serde_json::Value::Array(items) => {
                out.push(at.clone());
                for (i, child) in items.iter().enumerate() {
                    pointers(child, format!("{at}/{i}"), out);
                }
            }
            _ => out.push(at),
        }
    }
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let at = all[rng.below(all.len())].clone();
    let awkward = [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1),
        serde_json::json!(4294967296u64),
        serde_json::json!(u64::MAX),
        serde_json::json!(1e300),
        serde_json::json!(-1e300),
        serde_json::json!(1e-300),
        serde_json::json!(0.5),
        serde_json::json!("x"),
        serde_json::json!(null),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!(true),
    ];
    let target = v.pointer_mut(&at).expect("a pointer just listed");
    match (rng.below(10), target.as_array_mut()) {
        (0, Some(items)) if !items.is_empty() => {
            items.pop();
            format!("{at}: dropped the last element")
        }
        _ => {
            let value = awkward[rng.below(awkward.len())].clone();
            let text = format!("{at} = {value}");
            *target = value;
            text
        }
    }
}

/// Ingests the embedded data into `dir/windows.parquet` and trains a small model on the windows
/// before 2016 into `dir/model` for one epoch, with a prior of `levels` volatility levels (no
/// shocks): the tests that need a model of the real data, fast.
pub fn small_embedded_model(dir: &Path, levels: usize) -> PathBuf {
    small_embedded_model_with(dir, levels, |_| ())
}

/// [`small_embedded_model`] with `configure` applied to its training settings last.
pub fn small_embedded_model_with(
    dir: &Path,
    levels: usize,
    configure: impl FnOnce(&mut scengen::train::TrainConfig),
) -> PathBuf {
    let windows = dir.join("windows.parquet");
    scengen::data::ingest(&scengen::data::IngestConfig::embedded(&windows)).unwrap();
    let model = dir.join("model");
    let test_from = scengen::io::parse_date("t", "2016-01-01").unwrap();
    let mut config = scengen::train::TrainConfig::new(&windows, &model, 3, test_from);
    config.architecture = Some(small_embedded_arch());
    config.epochs = 1;
    config.volatility_levels = levels;
    config.volatility_shocks = 1;
    config.market_shocks = 1;
    configure(&mut config);
    scengen::train::train(&config).unwrap();
    model
}
