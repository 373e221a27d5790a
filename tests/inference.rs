//! The fast CPU inference path against candle's forward pass, on several architectures with
//! every weight perturbed away from its initial value (so that norm scales and shifts, biases
//! and embeddings all matter).

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use scengen::model::{FastUNet, SeededInit, UNet1d, UNetConfig};
use scengen::rng::SeededRng;

fn perturbed_network(config: &UNetConfig, seed: u64) -> (UNet1d, HashMap<String, Tensor>) {
    let vm = VarMap::new();
    let net = UNet1d::new(config, SeededInit::var_builder(&vm, seed, &Device::Cpu)).unwrap();
    let mut rng = SeededRng::new(seed, 99);
    let mut tensors = HashMap::new();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let v: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let noisy: Vec<f32> = v.iter().map(|x| x + 0.2 * rng.normal() as f32).collect();
        let t = Tensor::from_vec(noisy, var.shape(), &Device::Cpu).unwrap();
        var.set(&t).unwrap();
        tensors.insert(name.clone(), t);
    }
    (net, tensors)
}

fn architectures() -> Vec<UNetConfig> {
    vec![
        // The default model of the embedded data.
        UNetConfig::small(20, 30, 3),
        // The default model's shape with the amplitude input and the linear path.
        UNetConfig {
            amplitude_input: true,
            linear_path: 4,
            factors: 0,
            ..UNetConfig::small(20, 30, 3)
        },
        // The same as a diffusion factor model: the candle network runs its encoder and decoder,
        // the fast one has them folded into its first and last convolutions.
        UNetConfig {
            amplitude_input: true,
            linear_path: 4,
            factors: 4,
            ..UNetConfig::small(20, 30, 3)
        },
        // Attention on every level, two blocks per level, an odd window padded to 16, the
        // amplitude input and a linear path of rank 2.
        UNetConfig {
            assets: 5,
            window: 13,
            regimes: 2,
            base_channels: 8,
            channel_mults: vec![1, 2, 3],
            blocks_per_level: 2,
            attention_levels: vec![0, 1, 2],
            heads: 2,
            groups: 4,
            embed_dim: 32,
            amplitude_input: true,
            linear_path: 2,
            factors: 0,
        },
        // A single level: no resampling at all.
        UNetConfig {
            assets: 3,
            window: 8,
            regimes: 1,
            base_channels: 4,
            channel_mults: vec![1],
            blocks_per_level: 1,
            attention_levels: vec![],
            heads: 1,
            groups: 2,
            embed_dim: 8,
            amplitude_input: false,
            linear_path: 0,
            factors: 0,
        },
    ]
}

#[test]
fn the_fast_forward_equals_the_candle_forward() {
    for (k, config) in architectures().into_iter().enumerate() {
        let (net, tensors) = perturbed_network(&config, 10 + k as u64);
        let fast = FastUNet::new(&config, &tensors).unwrap();
        // Batches that split unevenly over threads, timesteps and regimes mixed, the null
        // regime included.
        for batch in [1usize, 7, 64] {
            let size = config.assets * config.padded_len();
            let mut rng = SeededRng::new(k as u64, batch as u64);
            let mut x = rng.normals_f32(batch * size);
            // Zero the padding days, as the samplers do.
            for (i, v) in x.iter_mut().enumerate() {
                if i % config.padded_len() >= config.window {
                    *v = 0.0;
                }
            }
            let t: Vec<f32> = (0..batch).map(|i| [999.0, 500.0, 3.0][i % 3]).collect();
            let regimes: Vec<u32> = (0..batch)
                .map(|i| (i % (config.regimes + 1)) as u32)
                .collect();
            let want: Vec<f32> = net
                .forward(
                    &Tensor::from_vec(
                        x.clone(),
                        (batch, config.assets, config.padded_len()),
                        &Device::Cpu,
                    )
                    .unwrap(),
                    &Tensor::from_vec(t.clone(), batch, &Device::Cpu).unwrap(),
                    &Tensor::from_vec(regimes.clone(), batch, &Device::Cpu).unwrap(),
                )
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got = fast.forward(&x, &t, &regimes);
            assert_eq!(got.len(), want.len());
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(scale > 0.1, "architecture {k}: degenerate output");
            assert!(
                worst <= 1e-4 * scale,
                "architecture {k}, batch {batch}: max difference {worst} at scale {scale}"
            );
            // And again: recycled buffers give the same answer.
            assert_eq!(fast.forward(&x, &t, &regimes), got);
        }
    }
}
