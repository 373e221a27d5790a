//! The Gaussian part of the noise prediction, and the network inputs that let the network
//! correct it: fit, closed form, sampling, gradients.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use scengen::data::WindowSet;
use scengen::io::parse_date;
use scengen::model::{GaussianPrior, IdiosyncraticJumps, Layout};
use scengen::model::{SeededInit, UNet1d, UNetConfig};
use scengen::rng::SeededRng;
use scengen::stats::{excess_kurtosis, variance};
use scengen::train::{fit_normalisation, Dataset};

/// Two classes of 3 assets, windows of 4 days padded to 6: class 0 holds days a and b, class 1
/// day c (twice), so every mean and covariance is known by hand.
#[test]
fn the_prior_fits_each_class_and_inverts_the_noising_exactly() {
    let (assets, padded, window) = (3, 6, 4);
    let days = [[1.0f32, 2.0, 0.0], [3.0, -2.0, 1.0], [0.5, 0.5, 0.5]];
    // Window 0 (class 0): a, b, a, b; window 1 (class 1): c four times.
    let mut values = vec![0.0f32; 2 * assets * padded];
    for d in 0..window {
        for a in 0..assets {
            values[a * padded + d] = days[d % 2][a];
            values[assets * padded + a * padded + d] = days[2][a];
        }
    }
    let prior = GaussianPrior::fit(&values, &[0, 1], 2, assets, padded, window);
    assert_eq!(prior.classes(), 3);
    assert_eq!(prior.means[0], vec![2.0, 0.0, 0.5]);
    assert_eq!(prior.means[1], vec![0.5, 0.5, 0.5]);
    // Class 0: deviations ±(1, -2, 0.5) four times, ddof 1.
    let dev = [1.0, -2.0, 0.5];
    for i in 0..3 {
        for j in 0..3 {
            let want = 4.0 * dev[i] * dev[j] / 3.0;
            assert!((prior.covariances[0][i * 3 + j] - want).abs() < 1e-12);
            assert_eq!(prior.covariances[1][i * 3 + j], 0.0);
        }
    }
    // The pooled class holds all eight days.
    let pooled_mean: Vec<f64> = (0..3)
        .map(|a| (2.0 * (days[0][a] + days[1][a]) + 4.0 * days[2][a]) as f64 / 8.0)
        .collect();
    for (got, want) in prior.means[2].iter().zip(&pooled_mean) {
        assert!((got - want).abs() < 1e-6);
    }

    // (ᾱ Σ + σ² I) ε / σ = x − √ᾱ μ, day by day, for the class of each sample; zero padding.
    let mut rng = SeededRng::new(3, 0);
    let x = rng.normals_f32(3 * assets * padded);
    let (ab, classes) = ([0.5f64, 0.3, 0.6], [0u32, 1, 2]);
    let eps = prior_eps(
        &prior.predictor(window),
        &x,
        (3, assets, padded),
        &ab,
        &classes,
    );
    for b in 0..3 {
        let c = classes[b] as usize;
        let sigma = (1.0 - ab[b]).sqrt();
        let at = |v: &[f32], a: usize, d: usize| v[b * assets * padded + a * padded + d] as f64;
        for d in 0..padded {
            for i in 0..assets {
                if d >= window {
                    assert_eq!(at(&eps, i, d), 0.0, "padding");
                    continue;
                }
                // The floor on eigenvalues (1e-4) is the only departure from Σ.
                let lhs: f64 = (0..assets)
                    .map(|j| {
                        let m = ab[b] * prior.covariances[c][i * 3 + j]
                            + if i == j { sigma * sigma } else { 0.0 };
                        m * at(&eps, j, d) / sigma
                    })
                    .sum();
                let rhs = at(&x, i, d) - ab[b].sqrt() * prior.means[c][i];
                assert!(
                    (lhs - rhs).abs() < 2e-3,
                    "sample {b} day {d} asset {i}: {lhs} vs {rhs}"
                );
            }
        }
    }
}

/// Sampling with the prior alone reproduces each regime's mean and covariance, fitted on the
/// embedded data's train windows: the sampler and ε_G agree with each other.
#[test]
fn sampling_with_the_prior_alone_gives_each_regimes_gaussian() {
    let dir = tempfile::tempdir().unwrap();
    let set = WindowSet::read(&embedded_windows(dir.path())).unwrap();
    let test_from = parse_date("--test-from", "2016-01-01").unwrap();
    let train = set.select(None, scengen::data::SplitChoice::Train, test_from);
    let config = UNetConfig::small(set.assets.len(), set.window, set.rule.labels.len());
    let norm = fit_normalisation(&set, &train);
    let data = Dataset::from_windows(&set, &train, &norm, config.padded_len());
    let prior = GaussianPrior::fit(
        &data.values,
        &data.regimes,
        config.regimes,
        config.assets,
        config.padded_len(),
        config.window,
    );
    let net = PriorOnly {
        prior: prior.predictor(config.window),
        config: config.clone(),
    };
    let (n, assets, padded) = (600, config.assets, config.padded_len());
    let high_vix = 2;
    // DPM-Solver++ 50 steps, log-SNR; DDIM with 50 uniform steps is first order and loses 7% of this
    // variance (9% Frobenius error), quadratic spacing 12%.
    let x = sample_prior_alone(&net, n, high_vix, 11);
    let labels = vec![0u32; n];
    let sampled = GaussianPrior::fit(&x, &labels, 1, assets, padded, config.window);
    let (want, got) = (
        &prior.covariances[high_vix as usize],
        &sampled.covariances[0],
    );
    // Not the pooled covariance: high-vix variances are about twice the train average.
    let variance = |m: &[f64]| (0..assets).map(|a| m[a * assets + a]).sum::<f64>() / 20.0;
    let frobenius = |m: &[f64]| m.iter().map(|v| v * v).sum::<f64>().sqrt();
    let diff: Vec<f64> = want.iter().zip(got).map(|(a, b)| a - b).collect();
    let relative = frobenius(&diff) / frobenius(want);
    // 18,000 sampled days of 20 assets: 2.7% here, about the sampling error.
    assert!(relative < 0.05, "relative covariance error {relative}");
    let pooled = variance(&prior.covariances[config.regimes]);
    assert!(
        variance(got) > 1.5 * pooled,
        "{} vs pooled {pooled}",
        variance(got)
    );
    for (g, w) in sampled.means[0].iter().zip(&prior.means[high_vix as usize]) {
        assert!((g - w).abs() < 0.05, "mean {g} vs {w}");
    }
}

/// With the amplitude input and the linear path, every parameter still receives a gradient
/// (the linear path's gains start at zero, so they are set first).
#[test]
fn the_amplitude_input_and_linear_path_learn() {
    let config = UNetConfig {
        amplitude_input: true,
        linear_path: 2,
        factors: 0,
        ..UNetConfig::small(3, 6, 2)
    };
    let vm = VarMap::new();
    let net = UNet1d::new(&config, SeededInit::var_builder(&vm, 4, &Device::Cpu)).unwrap();
    {
        let data = vm.data().lock().unwrap();
        let gains = &data["lin.gains.weight"];
        let ones = Tensor::ones(gains.shape(), DType::F32, &Device::Cpu).unwrap();
        gains.set(&(ones * 0.1).unwrap()).unwrap();
    }
    let mut rng = SeededRng::new(5, 0);
    let (b, padded) = (4, config.padded_len());
    let x = Tensor::from_vec(
        rng.normals_f32(b * 3 * padded),
        (b, 3, padded),
        &Device::Cpu,
    )
    .unwrap();
    let t = Tensor::new(&[3f32, 500., 999., 0.], &Device::Cpu).unwrap();
    let r = Tensor::new(&[0u32, 1, 2, 1], &Device::Cpu).unwrap();
    let loss = net
        .forward(&x, &t, &r)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    assert_every_variable_learns(&vm, &grads);
    let data = vm.data().lock().unwrap();
    // time.0 takes the sinusoid and the 3 + 1 amplitude features.
    assert_eq!(data["time.0.weight"].dims(), &[128, 16 + 4]);
}

/// `windows` windows of `assets` equicorrelated (0.3) unit-variance normal days, `window` days
/// padded to `padded`, with a jump of standard deviation `jump` on each (asset, day) with
/// probability `rate`; asset-major as the network reads them.
fn jumpy_windows(
    (windows, assets, window, padded): (usize, usize, usize, usize),
    rate: f64,
    jump: f64,
    seed: u64,
) -> Vec<f32> {
    let mut rng = SeededRng::new(seed, 0);
    let mut values = vec![0.0f32; windows * assets * padded];
    for w in values.chunks_exact_mut(assets * padded) {
        for d in 0..window {
            let market = rng.normal();
            for a in 0..assets {
                let mut x = 0.3f64.sqrt() * market + 0.7f64.sqrt() * rng.normal();
                let (u, z) = (rng.uniform(), rng.normal());
                if u < rate {
                    x += jump * z;
                }
                w[a * padded + d] = x as f32;
            }
        }
    }
    values
}

/// Asset `a`'s days of every window, pooled.
fn asset_days(values: &[f32], layout: Layout, padded: usize, a: usize) -> Vec<f64> {
    values
        .chunks_exact(layout.assets * padded)
        .flat_map(|w| (0..layout.days).map(move |d| f64::from(w[a * padded + d])))
        .collect()
}

/// Jumps of 2.5 times the days' standard deviation on 3% of the days: EM finds their rate and
/// size, taking them out leaves days without fat tails, and adding drawn jumps back restores
/// each asset's variance and kurtosis (without them the kurtosis would stay near 0).
#[test]
fn idiosyncratic_jumps_are_found_taken_out_and_drawn_back() {
    let (windows, assets, window, padded) = (1500, 6, 30, 32);
    let (rate, jump) = (0.03, 2.5);
    let mut values = jumpy_windows((windows, assets, window, padded), rate, jump, 11);
    let labels = vec![0u32; windows];
    let layout = Layout::windows(assets, window, padded);
    let jumps = IdiosyncraticJumps::fit(&values, &labels, 1, layout);
    let fitted = &jumps.regimes[0];
    for (a, variance) in fitted.day_variances().iter().enumerate() {
        assert!(
            (fitted.rate[a] - rate).abs() < 0.008,
            "rate {}",
            fitted.rate[a]
        );
        // A jump's variance, at the windows' level.
        let size = variance / fitted.rate[a];
        assert!(
            (size / (jump * jump) - 1.0).abs() < 0.2,
            "jump variance {size}"
        );
    }
    let original: Vec<Vec<f64>> = (0..assets)
        .map(|a| asset_days(&values, layout, padded, a))
        .collect();
    jumps.remove(&mut values, &labels, layout);
    for (a, original) in original.iter().enumerate() {
        let smooth = asset_days(&values, layout, padded, a);
        assert!(excess_kurtosis(original) > 2.0);
        assert!(
            excess_kurtosis(&smooth).abs() < 0.5,
            "{}",
            excess_kurtosis(&smooth)
        );
    }
    let mut rng = SeededRng::new(5, 0);
    for w in values.chunks_exact_mut(assets * padded) {
        fitted.add(w, layout, &mut rng);
    }
    for (a, original) in original.iter().enumerate() {
        let drawn = asset_days(&values, layout, padded, a);
        let (k0, k1) = (excess_kurtosis(original), excess_kurtosis(&drawn));
        let ratio = variance(&drawn, 1) / variance(original, 1);
        // Taking out each day's expected jump also takes a little of the ordinary days'
        // residuals (the posterior gives every day some chance of a jump), so the drawn-back
        // panel is 4-5% less variable and its kurtosis 15-27% higher (measured on this seed).
        assert!(
            (0.8..1.35).contains(&(k1 / k0)),
            "kurtosis {k1} against {k0}"
        );
        assert!((ratio - 1.0).abs() < 0.07, "variance ratio {ratio}");
    }
}

/// Normal days have no jumps to take out: each asset's variance moves by less than 3%.
#[test]
fn normal_days_keep_their_variance_when_jumps_are_taken_out() {
    let (windows, assets, window, padded) = (1000, 6, 30, 32);
    let mut values = jumpy_windows((windows, assets, window, padded), 0.0, 0.0, 12);
    let labels = vec![0u32; windows];
    let layout = Layout::windows(assets, window, padded);
    let original: Vec<f64> = (0..assets)
        .map(|a| variance(&asset_days(&values, layout, padded, a), 1))
        .collect();
    let jumps = IdiosyncraticJumps::fit(&values, &labels, 1, layout);
    jumps.remove(&mut values, &labels, layout);
    for (a, before) in original.iter().enumerate() {
        let after = variance(&asset_days(&values, layout, padded, a), 1);
        assert!(
            (after / before - 1.0).abs() < 0.03,
            "{after} against {before}"
        );
    }
}
