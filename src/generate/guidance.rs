//! Classifier-free guidance: ε = ε(x, t, ∅) + w · (ε(x, t, c) − ε(x, t, ∅)), both halves in one
//! batched forward pass.

use candle_core::{DType, Result, Tensor};

use crate::diffusion::NoiseSchedule;
use crate::model::{predict_eps, Denoiser};

/// Predicted noise for `x` (batch, assets, len) at schedule index `t` for regime `regime`, guided
/// with weight `w`. w = 1 is plain conditional sampling (one pass), w = 0 unconditional.
pub fn guided_eps(
    net: &dyn Denoiser,
    schedule: &NoiseSchedule,
    x: &Tensor,
    t: usize,
    regime: u32,
    w: f64,
) -> Result<Tensor> {
    let b = x.dim(0)?;
    let device = x.device();
    let null = net.config().null_regime() as u32;
    let single = |label: u32| -> Result<Tensor> {
        let rs = Tensor::full(label, b, device)?;
        predict_eps(net, schedule, x, &vec![t; b], &rs)
    };
    if w == 1.0 {
        return single(regime);
    }
    if w == 0.0 {
        return single(null);
    }
    let xx = Tensor::cat(&[x, x], 0)?;
    let labels: Vec<u32> = (0..2 * b)
        .map(|i| if i < b { regime } else { null })
        .collect();
    let rs = Tensor::from_vec(labels, 2 * b, device)?.to_dtype(DType::U32)?;
    let eps = predict_eps(net, schedule, &xx, &vec![t; 2 * b], &rs)?;
    let cond = eps.narrow(0, 0, b)?;
    let uncond = eps.narrow(0, b, b)?;
    uncond.clone() + ((cond - uncond)? * w)?
}
