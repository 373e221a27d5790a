use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use scengen::model::*;
use std::time::Instant;
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (ch, batch, blocks) = (args[0], args[1], args[2]);
    let mut cfg = UNetConfig::small(20, 30, 3);
    cfg.base_channels = ch;
    cfg.blocks_per_level = blocks;
    if args.len() > 3 {
        cfg.channel_mults = if args[3] == 2 {
            vec![1, 2]
        } else {
            vec![1, 2, 2]
        };
    }
    let vm = VarMap::new();
    let net = UNet1d::new(&cfg, SeededInit::var_builder(&vm, 1, &Device::Cpu)).unwrap();
    let lp = cfg.padded_len();
    let x = Tensor::zeros((batch, 20, lp), DType::F32, &Device::Cpu).unwrap();
    let t = Tensor::full(10f32, batch, &Device::Cpu).unwrap();
    let r = Tensor::full(1u32, batch, &Device::Cpu).unwrap();
    let _ = net.forward(&x, &t, &r).unwrap();
    let mut times = vec![];
    for _ in 0..5 {
        let s = Instant::now();
        let y = net.forward(&x, &t, &r).unwrap();
        let _ = y.sum_all().unwrap().to_scalar::<f32>();
        times.push(s.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "ch {ch} batch {batch} blocks {blocks} params {} : {:.3} s per forward, {:.1} us/sample",
        parameter_count(&vm),
        times[2],
        times[2] / batch as f64 * 1e6
    );
}
