//! Training and generation end to end on small models with fixed seeds: a known Gaussian is
//! learnt, runs are reproducible, and bad models or regimes fail clearly.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use common::*;
use scengen::diffusion::{SamplerKind, Spacing};
use scengen::generate::{generate, GenerateConfig, DEFAULT_SAMPLER};
use scengen::io::parse_date;
use scengen::model::{load_model, Engine, UNetConfig, CONFIG_FILE, WEIGHTS_FILE};
use scengen::scenarios::read_scenarios;
use scengen::train::{train, TrainConfig};
use scengen::Error;

/// Lower Cholesky factor of the test covariance: vols 1, 2, 0.5 (x 1%), correlations
/// 0.6 (0,1), -0.3 (0,2), 0.2 (1,2).
const CHOL: [f64; 9] = [
    1.0, 0.0, 0.0, //
    1.2, 1.6, 0.0, //
    -0.15, 0.1375, 0.4433, //
];

fn tiny_arch() -> UNetConfig {
    UNetConfig {
        assets: 3,
        window: 8,
        regimes: 2,
        base_channels: 16,
        channel_mults: vec![1, 2],
        blocks_per_level: 1,
        attention_levels: vec![],
        heads: 2,
        groups: 4,
        embed_dim: 32,
        amplitude_input: false,
        linear_path: 0,
        factors: 0,
    }
}

fn train_config(data: &Path, out: &Path, seed: u64, epochs: usize) -> TrainConfig {
    let mut c = TrainConfig::new(data, out, seed, parse_date("t", "2100-01-01").unwrap());
    c.architecture = Some(tiny_arch());
    // The network alone; the test with the prior turns it on.
    c.gaussian_prior = false;
    c.volatility_levels = 1;
    c.volatility_shocks = 1;
    c.market_shocks = 1;
    c.epochs = epochs;
    c.batch_size = 64;
    c.learning_rate = 3e-3;
    c.warmup_steps = 20;
    c.ema_decay = 0.99;
    c.patience = 100;
    c
}

fn gen_config(model: &Path, out: PathBuf, regime: &str, n: usize, seed: u64) -> GenerateConfig {
    GenerateConfig {
        model: model.to_path_buf(),
        regime: regime.into(),
        n,
        sampler: SamplerKind::Ddim {
            steps: 40,
            eta: 0.0,
            spacing: Spacing::Uniform,
        },
        guidance: Some(1.0),
        seed,
        out,
        batch_size: 500,
        device: candle_core::Device::Cpu,
        engine: Engine::Auto,
        progress: false,
        shard: Default::default(),
    }
}

/// Covariance (population) of the daily returns of a scenario set.
fn daily_covariance(values: &[f64], n: usize) -> Vec<f64> {
    let rows = values.len() / n;
    let mean: Vec<f64> = (0..n)
        .map(|a| values.iter().skip(a).step_by(n).sum::<f64>() / rows as f64)
        .collect();
    let mut cov = vec![0.0; n * n];
    for r in values.chunks(n) {
        for i in 0..n {
            for j in 0..n {
                cov[i * n + j] += (r[i] - mean[i]) * (r[j] - mean[j]) / rows as f64;
            }
        }
    }
    cov
}

#[test]
fn a_model_trained_on_gaussian_data_reproduces_its_covariance() {
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 800, 2.5, 11);
    let model = dir.path().join("model");
    let report = train(&train_config(&data, &model, 1, 60)).unwrap();
    let first = report.history.first().unwrap().validation_loss;
    let best = report.card.training.best_validation_loss;
    assert!(best < 0.8 * first, "validation loss {first} -> {best}");

    // Stated tolerance: volatilities within 20%, correlations within 0.15.
    assert_reproduces_covariance(&model, dir.path(), Some(1.0), 0.2, 0.15);
}

/// A model with the Gaussian prior gets the covariance almost exactly after two epochs (the
/// one above needs sixty for 20% / 0.15), records how well the prior fits the validation days,
/// and samples with guidance 1 when none is given.
#[test]
fn a_model_with_the_gaussian_prior_reproduces_the_covariance_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 800, 2.5, 11);
    let model = dir.path().join("model");
    let mut c = train_config(&data, &model, 1, 2);
    c.gaussian_prior = true;
    c.architecture = Some(UNetConfig {
        amplitude_input: true,
        linear_path: 2,
        factors: 0,
        ..tiny_arch()
    });
    train(&c).unwrap();
    let card = load_model(&model, &candle_core::Device::Cpu).unwrap().card;
    let prior = card.prior.as_ref().unwrap();
    assert_eq!(prior.classes(), 3);
    // The validation days are drawn from each regime's Gaussian, so their log-likelihood per
    // day is about minus its entropy, ½ (n ln 2πe + ln |Σ|).
    let recorded = &card.training.prior_validation_log_likelihood;
    assert_eq!(recorded.len(), 3);
    for (class, recorded) in recorded.iter().enumerate().take(2) {
        let chol = scengen::stats::cholesky(&prior.covariances[class], 3).unwrap();
        let log_det: f64 = (0..3).map(|i| 2.0 * chol[i * 3 + i].ln()).sum();
        let entropy =
            0.5 * (3.0 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln() + log_det);
        assert!(
            (recorded + entropy).abs() < 0.25,
            "class {class}: {recorded} vs {}",
            -entropy
        );
    }
    assert_eq!(scengen::generate::default_guidance(&card), 1.0);
    assert_reproduces_covariance(&model, dir.path(), None, 0.1, 0.08);
    let meta = read_scenarios(&dir.path().join("calm.parquet"))
        .unwrap()
        .metadata;
    assert_eq!(meta["scengen.guidance"], "1");
}

/// Generates 1,500 paths per regime with `guidance` (`None`: the model's default) and checks
/// their daily volatilities (relative) and correlations (absolute) against the data's: `CHOL`,
/// scaled by 2.5 in the stressed regime.
fn assert_reproduces_covariance(
    model: &Path,
    dir: &Path,
    guidance: Option<f64>,
    vol_tolerance: f64,
    corr_tolerance: f64,
) {
    let n = 3;
    let mut true_cov = [0.0; 9];
    for i in 0..n {
        for j in 0..n {
            true_cov[i * n + j] = (0..n)
                .map(|k| CHOL[i * n + k] * CHOL[j * n + k])
                .sum::<f64>()
                * 1e-4;
        }
    }
    for (regime, scale) in [("calm", 1.0), ("stressed", 2.5f64)] {
        let out = dir.join(format!("{regime}.parquet"));
        let mut g = gen_config(model, out.clone(), regime, 1500, 3);
        g.guidance = guidance;
        generate(&g).unwrap();
        let s = read_scenarios(&out).unwrap();
        assert_eq!((s.paths(), s.window, s.assets.len()), (1500, 8, 3));
        let cov = daily_covariance(&s.values, n);
        for i in 0..n {
            let vol = cov[i * n + i].sqrt();
            let expected = true_cov[i * n + i].sqrt() * scale;
            assert!(
                (vol / expected - 1.0).abs() < vol_tolerance,
                "{regime} asset {i}: vol {vol} vs {expected}"
            );
            for j in 0..i {
                let corr = cov[i * n + j] / (cov[i * n + i] * cov[j * n + j]).sqrt();
                let expected =
                    true_cov[i * n + j] / (true_cov[i * n + i] * true_cov[j * n + j]).sqrt();
                assert!(
                    (corr - expected).abs() < corr_tolerance,
                    "{regime} corr({i},{j}) {corr} vs {expected}"
                );
            }
        }
    }
}

#[test]
fn training_and_generation_are_reproducible_for_a_seed() {
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 200, 2.0, 5);
    let (m1, m2, m3) = (
        dir.path().join("m1"),
        dir.path().join("m2"),
        dir.path().join("m3"),
    );
    train(&train_config(&data, &m1, 9, 2)).unwrap();
    train(&train_config(&data, &m2, 9, 2)).unwrap();
    train(&train_config(&data, &m3, 10, 2)).unwrap();
    let bytes = |p: &Path| std::fs::read(p.join(WEIGHTS_FILE)).unwrap();
    assert_eq!(bytes(&m1), bytes(&m2), "same seed, same weights");
    assert_ne!(bytes(&m1), bytes(&m3), "another seed, other weights");

    let out = |name: &str| dir.path().join(name);
    let mut g = gen_config(&m1, out("a.parquet"), "stressed", 300, 4);
    g.sampler = SamplerKind::Ddim {
        steps: 10,
        eta: 0.5,
        spacing: Spacing::Uniform,
    };
    g.guidance = Some(2.0);
    generate(&g).unwrap();
    g.out = out("b.parquet");
    g.batch_size = 128; // batching does not change which noise a path draws
    generate(&g).unwrap();
    g.out = out("c.parquet");
    g.seed = 5;
    generate(&g).unwrap();
    let a = std::fs::read(out("a.parquet")).unwrap();
    assert_eq!(
        a,
        std::fs::read(out("b.parquet")).unwrap(),
        "same seed, byte-identical file"
    );
    assert_ne!(a, std::fs::read(out("c.parquet")).unwrap());

    // The default sampler draws fresh noise at every step, on all cores: still one stream per
    // path, so neither the batch size nor the thread split changes the file.
    g.sampler = DEFAULT_SAMPLER;
    g.seed = 4;
    g.out = out("sde-a.parquet");
    generate(&g).unwrap();
    g.out = out("sde-b.parquet");
    g.batch_size = 70;
    generate(&g).unwrap();
    assert_eq!(
        std::fs::read(out("sde-a.parquet")).unwrap(),
        std::fs::read(out("sde-b.parquet")).unwrap(),
        "default sampler: same seed, byte-identical file"
    );
    let meta = read_scenarios(&out("a.parquet")).unwrap().metadata;
    assert_eq!(meta["scengen.seed"], "4");
    assert_eq!(meta["scengen.guidance"], "2");
    assert!(meta["scengen.sampler"].contains("ddim"));
    assert_eq!(meta["scengen.model_sha256"].len(), 64);

    // DDPM over all steps runs and writes the same schema.
    let mut g = gen_config(&m1, out("ddpm.parquet"), "calm", 20, 1);
    g.sampler = SamplerKind::Ddpm;
    generate(&g).unwrap();
    assert_eq!(read_scenarios(&out("ddpm.parquet")).unwrap().paths(), 20);
}

/// A diffusion factor model trained on the real windows: its network's output lies in the
/// span of its decoder, also once the loaded model has folded the decoder into its last
/// convolution, and it generates scenarios of every asset.
#[test]
fn a_factor_model_on_real_windows_corrects_only_its_factor_subspace() {
    let dir = tempfile::tempdir().unwrap();
    let data = embedded_windows(dir.path());
    let model = dir.path().join("model");
    let mut c = train_config(&data, &model, 3, 1);
    c.test_from = parse_date("t", "2016-01-01").unwrap();
    c.architecture = Some(UNetConfig {
        factors: 2,
        ..small_embedded_arch()
    });
    train(&c).unwrap();

    let stored = candle_core::safetensors::load(model.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    assert_eq!(stored["factors.encoder"].dims(), [2, 20]);
    assert_eq!(stored["factors.decoder"].dims(), [20, 2]);
    let loaded = load_model(&model, &Device::Cpu).unwrap();
    assert_eq!(loaded.card.architecture.factors, 2);
    assert_eq!(loaded.network.config().factors, 0, "runs folded");

    // The output of 16 random windows, as 20 assets x (16 x 32 days): rank 2.
    let (b, len) = (16, 32);
    let x = scengen::rng::SeededRng::new(1, 0).normals_f32(b * 20 * len);
    let x = Tensor::from_vec(x, (b, 20, len), &Device::Cpu).unwrap();
    let t = Tensor::from_vec((0..b).map(|i| 60.0 * i as f32).collect(), b, &Device::Cpu).unwrap();
    let r = Tensor::from_vec((0..b as u32).map(|i| i % 4).collect(), b, &Device::Cpu).unwrap();
    let out = loaded.network.forward(&x, &t, &r).unwrap();
    let m: Vec<f64> = out
        .permute((1, 0, 2))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    let columns = b * len;
    let gram: Vec<f64> = (0..400)
        .map(|ij| {
            let (i, j) = (ij / 20, ij % 20);
            (0..columns)
                .map(|k| m[i * columns + k] * m[j * columns + k])
                .sum()
        })
        .collect();
    let (mut eigenvalues, _) = scengen::stats::symmetric_eigen(&gram, 20);
    eigenvalues.sort_by(|a, b| b.total_cmp(a));
    assert!(eigenvalues[1] > 1e-6 * eigenvalues[0], "{eigenvalues:?}");
    assert!(eigenvalues[2] < 1e-9 * eigenvalues[0], "{eigenvalues:?}");

    let out = dir.path().join("normal.parquet");
    let mut g = gen_config(&model, out.clone(), "normal", 50, 2);
    g.sampler = SamplerKind::Ddim {
        steps: 5,
        eta: 0.0,
        spacing: Spacing::Uniform,
    };
    generate(&g).unwrap();
    let set = read_scenarios(&out).unwrap();
    assert_eq!((set.paths(), set.assets.len()), (50, 20));
    assert!(set.values.iter().all(|v| v.is_finite()));
}

fn trained_tiny_model(dir: &Path) -> PathBuf {
    let data = dir.join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 200, 2.0, 5);
    let model = dir.join("model");
    train(&train_config(&data, &model, 1, 1)).unwrap();
    model
}

#[test]
fn every_file_of_a_model_folder_has_the_same_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let model = trained_tiny_model(dir.path());
    let mode = |name: &str| {
        std::fs::metadata(model.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    // The weights were private (0600) while the card was readable by others: a shared model
    // folder gave other users "Permission denied".
    assert_eq!(mode("model.safetensors"), mode("config.json"));
    assert_eq!(mode("loss.csv"), mode("config.json"));
}

#[test]
fn unknown_regime_lists_the_known_ones_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_tiny_model(dir.path());
    let out = dir.path().join("scen").join("x.parquet");
    let e = generate(&gen_config(&model, out.clone(), "crash", 10, 1)).unwrap_err();
    assert!(
        matches!(e, Error::UnknownRegime { ref known, .. } if known == "calm, stressed"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn bad_model_directories_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_tiny_model(dir.path());
    let out = dir.path().join("s.parquet");
    let expect_bad_model = |m: &Path, needle: &str| {
        let e = generate(&gen_config(m, out.clone(), "calm", 10, 1)).unwrap_err();
        assert!(matches!(e, Error::BadModel { .. }), "{e}");
        assert!(
            e.to_string().contains(needle),
            "`{e}` should mention `{needle}`"
        );
        assert!(!out.exists());
    };
    expect_bad_model(&dir.path().join("nowhere"), "config.json is missing");
    // A file given as the model folder is named as such, not as a missing config.json in it.
    let file = dir.path().join("model.toml");
    std::fs::write(&file, "").unwrap();
    expect_bad_model(&file, "is a file; a model is a folder");

    let copy = |name: &str| -> PathBuf {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in [WEIGHTS_FILE, CONFIG_FILE] {
            std::fs::copy(model.join(f), d.join(f)).unwrap();
        }
        d
    };
    let no_weights = copy("no_weights");
    std::fs::remove_file(no_weights.join(WEIGHTS_FILE)).unwrap();
    expect_bad_model(&no_weights, "model.safetensors is missing");

    // The weights' SHA-256 is in the card: one flipped bit (which raised the volatility by a
    // third and generated with exit 0) names both hashes.
    let text = std::fs::read_to_string(model.join(CONFIG_FILE)).unwrap();
    let card: serde_json::Value = serde_json::from_str(&text).unwrap();
    let recorded = card["weights_sha256"].as_str().unwrap().to_string();
    assert_eq!(
        recorded,
        scengen::io::sha256_file(model.join(WEIGHTS_FILE)).unwrap()
    );
    let flipped = copy("flipped");
    let mut w = std::fs::read(flipped.join(WEIGHTS_FILE)).unwrap();
    let last = w.len() - 3;
    w[last] ^= 0x10;
    std::fs::write(flipped.join(WEIGHTS_FILE), &w).unwrap();
    let actual = scengen::io::sha256_file(flipped.join(WEIGHTS_FILE)).unwrap();
    expect_bad_model(
        &flipped,
        &format!("has SHA-256 {actual}, but config.json records {recorded}"),
    );

    // Without a recorded hash (models written before it), unreadable weights are still named.
    let unhashed = |name: &str| -> PathBuf {
        let d = copy(name);
        let mut v = card.clone();
        v.as_object_mut().unwrap().remove("weights_sha256");
        std::fs::write(d.join(CONFIG_FILE), v.to_string()).unwrap();
        d
    };
    let corrupt = unhashed("corrupt");
    std::fs::write(corrupt.join(WEIGHTS_FILE), b"not a safetensors file").unwrap();
    expect_bad_model(&corrupt, "unreadable");

    let truncated = unhashed("truncated");
    let w = std::fs::read(truncated.join(WEIGHTS_FILE)).unwrap();
    std::fs::write(truncated.join(WEIGHTS_FILE), &w[..w.len() / 2]).unwrap();
    expect_bad_model(&truncated, "unreadable");

    let bad_json = copy("bad_json");
    std::fs::write(bad_json.join(CONFIG_FILE), "{ not json").unwrap();
    expect_bad_model(&bad_json, "config.json");

    let inconsistent = copy("inconsistent");
    let text = std::fs::read_to_string(inconsistent.join(CONFIG_FILE)).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["assets"] = serde_json::json!(["A0", "A1"]);
    std::fs::write(inconsistent.join(CONFIG_FILE), v.to_string()).unwrap();
    expect_bad_model(&inconsistent, "inconsistent");

    // A size within the bounds but not the weights' is caught against the tensors' shapes.
    let wider = copy("wider");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["architecture"]["base_channels"] = serde_json::json!(2048);
    std::fs::write(wider.join(CONFIG_FILE), v.to_string()).unwrap();
    expect_bad_model(&wider, "does not fit");

    // Every number the card holds is checked: each of these generated with exit 0 before.
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let d = copy(name);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        edit(&mut v);
        std::fs::write(d.join(CONFIG_FILE), v.to_string()).unwrap();
        expect_bad_model(&d, needle);
    };
    edited(
        "negative_clip",
        &|v| v["normalisation"]["clip"] = serde_json::json!(-1.0),
        "clip -1 is outside",
    );
    edited(
        "huge_std",
        &|v| v["normalisation"]["std"][0] = serde_json::json!(1e300),
        "normalisation std 1e300 of `A0` is outside",
    );
    edited(
        "future_format",
        &|v| v["format_version"] = serde_json::json!(99),
        "format_version 99 is not one this scengen reads",
    );
    edited(
        "duplicate_labels",
        &|v| v["labels"][1] = v["labels"][0].clone(),
        "appears twice",
    );
    edited(
        "unsafe_label",
        &|v| v["labels"][0] = serde_json::json!("../../x"),
        "label `../../x` must start with a letter or digit",
    );
    // A deleted prior changed the guidance to 1.5 and the noise prediction to the network's
    // residual alone.
    let with_prior = dir.path().join("with_prior");
    let mut c = train_config(&dir.path().join("gauss.parquet"), &with_prior, 1, 1);
    c.gaussian_prior = true;
    train(&c).unwrap();
    let text = std::fs::read_to_string(with_prior.join(CONFIG_FILE)).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("prior");
    std::fs::write(with_prior.join(CONFIG_FILE), v.to_string()).unwrap();
    expect_bad_model(
        &with_prior,
        "trained with a Gaussian prior, but its `prior` is missing",
    );

    let bad_prior = copy("bad_prior");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["prior"] = serde_json::json!({"means": [[0.0]], "covariances": [[1.0]]});
    std::fs::write(bad_prior.join(CONFIG_FILE), v.to_string()).unwrap();
    expect_bad_model(&bad_prior, "the prior does not have");

    // Sizes are bounded before anything is allocated: a billion channels asked for 240 GB and
    // aborted the process, a trillion timesteps too.
    for (field, value, needle) in [
        ("base_channels", 1_000_000_000u64, "more than 4096"),
        (
            "embed_dim",
            1_000_000_000,
            "embed_dim 1000000000, more than 4096",
        ),
    ] {
        let huge = copy(&format!("huge_{field}"));
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["architecture"][field] = serde_json::json!(value);
        std::fs::write(huge.join(CONFIG_FILE), v.to_string()).unwrap();
        expect_bad_model(&huge, needle);
    }
    let steps = copy("huge_timesteps");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["timesteps"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(steps.join(CONFIG_FILE), v.to_string()).unwrap();
    expect_bad_model(&steps, "timesteps 1000000000000 outside 2..=100000");
}

#[test]
fn bad_generation_counts_name_the_option_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_tiny_model(dir.path());
    let timesteps = load_model(&model, &candle_core::Device::Cpu)
        .unwrap()
        .card
        .timesteps;
    let out = dir.path().join("s.parquet");
    let expect_option = |g: GenerateConfig, option: &str, needle: &str| {
        let e = generate(&g).unwrap_err();
        assert!(
            matches!(e, Error::InvalidOption { option: ref o, ref reason, .. } if o == option && reason.contains(needle)),
            "{e}"
        );
        assert!(!out.exists());
    };
    let g = || gen_config(&model, out.clone(), "calm", 10, 1);
    // A folder where the file would go is named before any path is drawn.
    let e = generate(&GenerateConfig {
        out: dir.path().to_path_buf(),
        ..g()
    })
    .unwrap_err();
    assert!(e.to_string().contains("is a folder"), "{e}");
    expect_option(GenerateConfig { n: 0, ..g() }, "n", "at least 1");
    // Path ids are u32: more paths than they can number are refused before anything is drawn
    // (an unbounded n streamed until the disk was full).
    let too_many = scengen::scenarios::MAX_PATHS + 1;
    expect_option(
        GenerateConfig { n: too_many, ..g() },
        "n",
        "at most 4294967296",
    );
    expect_option(
        GenerateConfig {
            n: usize::MAX,
            ..g()
        },
        "n",
        "path ids are 32-bit",
    );
    expect_option(
        GenerateConfig {
            batch_size: 0,
            ..g()
        },
        "batch_size",
        "at least 1",
    );
    // A grid has at most T - 1 evaluations: more would run fewer than the output records.
    for steps in [timesteps, 5 * timesteps] {
        let sampler = SamplerKind::DpmSolver {
            steps,
            spacing: Spacing::LogSnr,
        };
        let most = format!("at most {}", timesteps - 1);
        expect_option(GenerateConfig { sampler, ..g() }, "steps", &most);
    }
    let sampler = SamplerKind::Ddim {
        steps: timesteps - 1,
        eta: 0.0,
        spacing: Spacing::Uniform,
    };
    generate(&GenerateConfig { sampler, ..g() }).unwrap();
    assert!(out.exists());
    // An existing file is replaced.
    generate(&g()).unwrap();
}

#[test]
fn bad_training_options_name_the_option_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 100, 2.0, 5);
    let m = dir.path().join("m");
    let expect_option = |c: TrainConfig, option: &str, value: &str| {
        let e = train(&c).unwrap_err();
        assert!(
            matches!(e, Error::InvalidOption { option: ref o, value: ref v, .. } if o == option && v == value),
            "{e}"
        );
        assert!(!m.exists());
    };
    let mut c = train_config(&data, &m, 1, 1);
    c.patience = 0;
    expect_option(c, "patience", "0");
    // An --out folder of other files fails before training (epochs: 10^6), untouched.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("notes.txt"), "keep").unwrap();
    let e = train(&train_config(&data, &theirs, 1, 1_000_000)).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { ref path, ref reason } if path == &theirs && reason.contains("(notes.txt)")),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(theirs.join("notes.txt")).unwrap(),
        "keep"
    );
    // A factor model needs fewer factors than the 3 assets.
    let mut c = train_config(&data, &m, 1, 1);
    c.architecture = None;
    c.factors = 4;
    expect_option(c, "factors", "4");
    // The default network's width: GroupNorm needs a multiple of its 8 groups.
    for channels in [0, 12, 1_000_000_000] {
        let mut c = train_config(&data, &m, 1, 1);
        c.architecture = None;
        c.base_channels = Some(channels);
        expect_option(c, "base_channels", &channels.to_string());
    }
}

#[test]
fn training_refuses_a_split_without_training_windows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 100, 2.0, 5);
    let mut c = train_config(&data, &dir.path().join("m"), 1, 1);
    c.test_from = parse_date("t", "1999-01-01").unwrap();
    let e = train(&c).unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "test_from"),
        "{e}"
    );
    assert!(!dir.path().join("m").exists());
}

#[test]
fn device_choice_names_the_option_and_falls_back_to_the_cpu() {
    let e = scengen::device::select_device("tpu").unwrap_err();
    assert!(
        matches!(e, Error::InvalidOption { ref option, .. } if option == "device"),
        "{e}"
    );
    let cuda = scengen::device::select_device("cuda");
    let auto = scengen::device::select_device("auto").unwrap();
    if !cfg!(feature = "cuda") {
        let e = cuda.unwrap_err();
        assert!(
            matches!(e, Error::InvalidOption { ref option, ref reason, .. } if option == "device" && reason.contains(".ci/build-cuda")),
            "{e}"
        );
        assert!(auto.is_cpu());
        return;
    }
    // A CUDA build: on a machine with a GPU both pick it; without one (no driver, the driver
    // stub of `.ci/build-cuda`, or no device) `cuda` is a named error and `auto` the CPU.
    match cuda {
        Ok(device) => {
            assert!(device.is_cuda());
            assert!(auto.is_cuda());
        }
        Err(e) => {
            assert!(
                matches!(e, Error::InvalidOption { ref option, ref reason, .. } if option == "device" && reason.contains("no usable GPU")),
                "{e}"
            );
            assert!(auto.is_cpu());
        }
    }
}

#[test]
fn a_diverging_loss_stops_training_with_a_message_and_no_partial_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 200, 2.0, 5);
    let model = dir.path().join("model");
    let mut c = train_config(&data, &model, 1, 3);
    c.learning_rate = 1e30;
    c.grad_clip = 1e30;
    c.warmup_steps = 1;
    let e = train(&c).unwrap_err();
    assert!(
        matches!(e, Error::Training(ref m) if m.contains("the loss became") && m.contains("nothing was written")),
        "{e}"
    );
    assert!(!model.exists(), "no model folder from a failed run");
    // Over an earlier model, a failed run leaves it as it was, even after a good first epoch:
    // the folder is written once, at the end.
    let earlier = trained_tiny_model(dir.path());
    let before: Vec<Vec<u8>> = [WEIGHTS_FILE, CONFIG_FILE]
        .iter()
        .map(|f| std::fs::read(earlier.join(f)).unwrap())
        .collect();
    // Found by trying (the default network, seed 2): this rate warms up through a finite first
    // epoch and diverges in the second.
    let mut c = train_config(&data, &earlier, 2, 6);
    c.architecture = None;
    c.learning_rate = 100.0;
    c.grad_clip = 1e30;
    c.warmup_steps = 20;
    let e = train(&c).unwrap_err();
    assert!(
        matches!(e, Error::Training(ref m) if m.contains("the loss became") && !m.contains("epoch 1,")),
        "the loss should diverge after a first good epoch: {e}"
    );
    for (f, was) in [WEIGHTS_FILE, CONFIG_FILE].iter().zip(&before) {
        assert_eq!(&std::fs::read(earlier.join(f)).unwrap(), was, "{f}");
    }
}

/// The embedded windows with the regime thresholds `thresholds` (five assets, for speed).
fn embedded_windows_with(dir: &Path, thresholds: Vec<f64>) -> PathBuf {
    let out = dir.join("windows.parquet");
    let mut c = scengen::data::IngestConfig::embedded(&out);
    c.input = embedded_prices();
    c.assets = Some(
        ["AAPL", "JPM", "XOM", "MSFT", "WMT"]
            .map(String::from)
            .to_vec(),
    );
    c.signal = scengen::data::SignalSource::RealizedVol {
        path: embedded_index(),
        column: "SPX".into(),
    };
    c.rule = scengen::data::RegimeRule::new(thresholds, c.rule.labels.clone()).unwrap();
    scengen::data::ingest(&c).unwrap();
    out
}

/// A training run on the embedded windows, small and short.
fn embedded_train_config(data: &Path, out: &Path) -> TrainConfig {
    let mut c = TrainConfig::new(data, out, 1, parse_date("t", "2016-01-01").unwrap());
    c.epochs = 1;
    // What is under test is the bookkeeping of regimes without windows, not the fit: a small
    // network and prior keep it to seconds.
    c.architecture = Some(UNetConfig {
        assets: 5,
        ..small_embedded_arch()
    });
    c.volatility_levels = 2;
    c.volatility_shocks = 1;
    c.market_shocks = 1;
    c
}

#[test]
fn a_regime_without_training_windows_is_named_instead_of_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    // Realised volatility never reaches 200: no high-vix window at all.
    let data = embedded_windows_with(dir.path(), vec![15.0, 200.0]);
    let out = dir.path().join("model");
    let e = train(&embedded_train_config(&data, &out)).unwrap_err();
    assert!(
        matches!(e, Error::BadFile { ref reason, .. } if reason.contains("regime `high-vix` has no training window before 2016-01-01")),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn a_regime_without_validation_windows_still_gives_a_loadable_model() {
    let dir = tempfile::tempdir().unwrap();
    // 75 high-vix windows, none in the validation span: the prior's validation log-likelihood
    // of that regime is NaN, which config.json holds as null.
    let data = embedded_windows_with(dir.path(), vec![15.0, 60.0]);
    let out = dir.path().join("model");
    train(&embedded_train_config(&data, &out)).unwrap();
    let card = load_model(&out, &Device::Cpu).unwrap().card;
    let recorded = &card.training.prior_validation_log_likelihood;
    assert!(recorded[2].is_nan(), "{recorded:?}");
    assert!(recorded[0].is_finite(), "{recorded:?}");
    let file = dir.path().join("high-vix.parquet");
    generate(&gen_config(&out, file.clone(), "high-vix", 5, 1)).unwrap();
    assert_eq!(read_scenarios(&file).unwrap().paths(), 5);
}

/// Fuzz: model folders with a value of config.json replaced by an awkward one (zero, negative,
/// huge, the wrong type, null), or a key removed, or bytes of model.safetensors flipped (its
/// hash dropped so the shape checks are reached), load and generate or fail with an error, and
/// never panic. Seeded: the same cases every run; `SCENGEN_FUZZ_CASES=N` runs more.
#[test]
fn mutated_model_folders_fail_with_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 200, 2.0, 5);
    let model = dir.path().join("model");
    let mut c = train_config(&data, &model, 1, 1);
    c.gaussian_prior = true;
    c.volatility_levels = 2;
    c.market_shocks = 2;
    train(&c).unwrap();
    let text = std::fs::read_to_string(model.join(CONFIG_FILE)).unwrap();
    let card: serde_json::Value = serde_json::from_str(&text).unwrap();
    let weights = std::fs::read(model.join(WEIGHTS_FILE)).unwrap();
    let header = 8 + u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let case_dir = dir.path().join("case");
    std::fs::create_dir_all(&case_dir).unwrap();
    let out = dir.path().join("s.parquet");
    let mut rng = scengen::rng::SeededRng::new(31, 4);
    let (mut loaded, mut refused) = (0, 0);
    for case in 0..fuzz_cases(400) {
        let mut v = card.clone();
        let mut w = weights.clone();
        let mut what = Vec::new();
        if rng.below(3) > 0 {
            for _ in 0..1 + rng.below(3) {
                what.push(mutate_json(&mut v, &mut rng));
            }
        }
        if what.is_empty() || rng.below(3) == 0 {
            v.as_object_mut().unwrap().remove("weights_sha256");
            // Mostly the header (names, shapes, offsets), sometimes the numbers.
            let at = if rng.below(2) == 0 {
                rng.below(header)
            } else {
                rng.below(w.len())
            };
            w[at] ^= 1 << rng.below(8);
            what.push(format!("weights byte {at} flipped"));
        }
        std::fs::write(case_dir.join(CONFIG_FILE), v.to_string()).unwrap();
        std::fs::write(case_dir.join(WEIGHTS_FILE), &w).unwrap();
        let label = format!("case {case}: {}", what.join("; "));
        let result = no_panic(&label, || {
            let mut g = gen_config(&case_dir, out.clone(), "calm", 4, 1);
            g.sampler = SamplerKind::Ddim {
                steps: 2,
                eta: 0.0,
                spacing: Spacing::Uniform,
            };
            generate(&g)
        });
        match result {
            Ok(_) => loaded += 1,
            Err(_) => {
                refused += 1;
                assert!(!out.exists(), "{label}: an output was left");
            }
        }
        let _ = std::fs::remove_file(&out);
    }
    eprintln!("model fuzz: {loaded} generated, {refused} refused, none panicked");
    assert!(
        refused > 0 && loaded > 0,
        "{loaded} loaded, {refused} refused"
    );
}

/// A synthetic panel of 40 assets with known regime covariances: one market factor with
/// correlation 0.2 and 1% daily volatility in `calm`, 0.7 and 2.5% in `stressed`, and
/// fat-tailed days (each day's returns scaled by a Student-t mixing variable, 5 degrees of
/// freedom, so that the equal-weight return's excess kurtosis is 6). A small network with the
/// default prior (8 x 3 x 5 volatility states) trained for 8 epochs, sampled with the default
/// sampler, must give, per regime:
/// each asset's daily volatility within 10% of the truth (the median error within 5%), the
/// mean pairwise correlation within 0.05, the equal-weight volatility within 10%, and an
/// equal-weight excess kurtosis above 1.5 (a Gaussian's is 0).
#[test]
fn a_synthetic_40_asset_panel_s_regime_covariances_are_reproduced() {
    let (assets, window, count) = (40, 8, 800);
    let regimes = [("calm", 0.2, 0.01), ("stressed", 0.7, 0.025)];
    let mut rng = scengen::rng::SeededRng::new(28, 4);
    let dof = 5.0;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synthetic.parquet");
    write_two_regime_windows(&data, (assets, window, count), |regime, day| {
        let (_, rho, vol) = regimes[regime];
        // Student-t: a normal over sqrt(chi-square / dof), rescaled to unit variance.
        let chi2: f64 = (0..dof as usize).map(|_| rng.normal().powi(2)).sum();
        let scale = vol * ((dof - 2.0) / chi2).sqrt();
        let market = rng.normal();
        for _ in 0..assets {
            let own = rng.normal();
            day.push(scale * (f64::sqrt(rho) * market + f64::sqrt(1.0 - rho) * own));
        }
    });
    let model = dir.path().join("model");
    let mut c = train_config(&data, &model, 1, 8);
    let defaults = TrainConfig::new(&data, &model, 1, c.test_from);
    c.gaussian_prior = true;
    c.volatility_levels = defaults.volatility_levels;
    c.volatility_shocks = defaults.volatility_shocks;
    c.market_shocks = defaults.market_shocks;
    c.architecture = Some(UNetConfig {
        assets,
        amplitude_input: true,
        linear_path: 2,
        ..tiny_arch()
    });
    train(&c).unwrap();
    for (regime, rho, vol) in regimes {
        let out = dir.path().join(format!("{regime}.parquet"));
        let g = GenerateConfig {
            sampler: DEFAULT_SAMPLER,
            guidance: None,
            ..gen_config(&model, out.clone(), regime, 800, 3)
        };
        generate(&g).unwrap();
        let s = read_scenarios(&out).unwrap();
        let cov = daily_covariance(&s.values, assets);
        let vols: Vec<f64> = (0..assets).map(|i| cov[i * assets + i].sqrt()).collect();
        let mut errors: Vec<f64> = vols.iter().map(|v| (v / vol - 1.0).abs()).collect();
        errors.sort_by(f64::total_cmp);
        assert!(
            errors[assets - 1] < 0.10 && errors[assets / 2] < 0.05,
            "{regime}: volatility errors {errors:?}"
        );
        let mut corr = 0.0;
        for i in 0..assets {
            for j in 0..i {
                corr += cov[i * assets + j] / (vols[i] * vols[j]);
            }
        }
        corr /= (assets * (assets - 1) / 2) as f64;
        assert!(
            (corr - rho).abs() < 0.05,
            "{regime}: mean correlation {corr} vs {rho}"
        );
        let ew: Vec<f64> = s
            .values
            .chunks(assets)
            .map(|day| day.iter().sum::<f64>() / assets as f64)
            .collect();
        let ew_vol_true = vol * (rho + (1.0 - rho) / assets as f64).sqrt();
        let mean = ew.iter().sum::<f64>() / ew.len() as f64;
        let m2 = ew.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / ew.len() as f64;
        let m4 = ew.iter().map(|r| (r - mean).powi(4)).sum::<f64>() / ew.len() as f64;
        assert!(
            (m2.sqrt() / ew_vol_true - 1.0).abs() < 0.10,
            "{regime}: EW volatility {} vs {ew_vol_true}",
            m2.sqrt()
        );
        let kurtosis = m4 / (m2 * m2) - 3.0;
        assert!(kurtosis > 1.5, "{regime}: EW excess kurtosis {kurtosis}");
    }
}

/// An architecture given in the library's config that does not fit the data is an error naming
/// both (it indexed past the windows' end: a panic).
#[test]
fn an_architecture_that_does_not_fit_the_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("gauss.parquet");
    write_gaussian_windows(&data, &CHOL, 3, 8, 50, 2.0, 5);
    let mut c = train_config(&data, &dir.path().join("model"), 1, 1);
    c.architecture = Some(UNetConfig {
        assets: 20,
        ..tiny_arch()
    });
    let e = train(&c).unwrap_err();
    assert!(
        option_error(&e, "architecture", "does not fit") && e.to_string().contains("3 assets"),
        "{e}"
    );
}

/// The diffusion model's shards: path p draws from stream p whichever part it falls in, so
/// three parts of 20 paths (6 / 7 / 7) are the unsharded file's paths, value for value; a part
/// outside its count is refused by name.
#[test]
fn diffusion_shards_are_the_unsharded_run() {
    use scengen::scenarios::Shard;
    let dir = tempfile::tempdir().unwrap();
    let model = trained_tiny_model(dir.path());
    let config = |out: PathBuf, shard: Shard| GenerateConfig {
        sampler: SamplerKind::Ddim {
            steps: 4,
            eta: 1.0,
            spacing: Spacing::Uniform,
        },
        batch_size: 4,
        shard,
        ..gen_config(&model, out, "stressed", 20, 9)
    };
    generate(&config(dir.path().join("whole.parquet"), Shard::default())).unwrap();
    for index in 0..3 {
        let out = dir
            .path()
            .join("parts")
            .join(format!("part-{index}.parquet"));
        generate(&config(out, Shard { index, count: 3 })).unwrap();
    }
    let whole = read_scenarios(&dir.path().join("whole.parquet")).unwrap();
    let parts = read_scenarios(&dir.path().join("parts")).unwrap();
    assert_eq!(parts.values, whole.values);
    let one = read_scenarios(&dir.path().join("parts/part-1.parquet")).unwrap();
    assert_eq!(one.paths(), 7);
    assert_eq!(one.metadata["scengen.shard"], "1/3");

    let e = generate(&config(
        dir.path().join("x.parquet"),
        Shard { index: 3, count: 3 },
    ))
    .unwrap_err();
    assert!(option_error(&e, "shard", "I from 0 to N - 1"), "{e}");
    assert!(!dir.path().join("x.parquet").exists());
}
