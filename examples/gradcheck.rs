use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use scengen::model::*;
fn main() {
    let cfg = UNetConfig {
        assets: 3,
        window: 6,
        regimes: 2,
        base_channels: 8,
        channel_mults: vec![1, 2],
        blocks_per_level: 1,
        attention_levels: vec![1],
        heads: 2,
        groups: 4,
        embed_dim: 16,
    };
    let vm = VarMap::new();
    let net = UNet1d::new(&cfg, SeededInit::var_builder(&vm, 1, &Device::Cpu)).unwrap();
    let x = Tensor::from_vec(
        scengen::rng::SeededRng::new(1, 0).normals_f32(4 * 3 * 8),
        (4, 3, 8),
        &Device::Cpu,
    )
    .unwrap()
    .to_dtype(DType::F32)
    .unwrap();
    let t = Tensor::new(&[3f32, 500., 999., 0.], &Device::Cpu).unwrap();
    let r = Tensor::new(&[0u32, 1, 2, 1], &Device::Cpu).unwrap();
    let loss_of = || {
        net.forward(&x, &t, &r)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
    };
    let loss = loss_of();
    let grads = loss.backward().unwrap();
    let data = vm.data().lock().unwrap();
    let mut names: Vec<_> = data.keys().cloned().collect();
    names.sort();
    for name in names {
        let var = &data[&name];
        let g = grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let idx = (0..orig.len())
            .max_by(|a, b| g[*a].abs().total_cmp(&g[*b].abs()))
            .unwrap();
        let h = 1e-2f32;
        let mut p = orig.clone();
        p[idx] += h;
        var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let lp = loss_of().to_scalar::<f32>().unwrap();
        let mut p = orig.clone();
        p[idx] -= h;
        var.set(&Tensor::from_vec(p, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let lm = loss_of().to_scalar::<f32>().unwrap();
        var.set(&Tensor::from_vec(orig.clone(), var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let num = (lp - lm) / (2.0 * h);
        println!(
            "{name:40} autograd {:+.5e} numeric {:+.5e} ratio {:.3}",
            g[idx],
            num,
            g[idx] / num
        );
    }
}
