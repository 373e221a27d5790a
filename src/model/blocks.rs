//! Building blocks of the 1D U-Net. Only ops with a working backward pass in candle 0.11 are
//! used: the project's own [`GroupNorm`] (candle_nn's, with cheaper gradients) and [`Conv1d`],
//! `ops::softmax` (not `softmax_last_dim`), and nearest upsampling (as a broadcast) followed by
//! a convolution (not `conv_transpose1d`). Every op also runs on candle's CUDA backend.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};

use super::conv::{per_channel, Conv1d};

fn conv(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Conv1d> {
    Conv1d::new(c_in, c_out, k, stride, vb)
}

/// Sinusoidal embedding of (possibly fractional) timesteps, as in Ho et al. (2020):
/// `(batch,)` -> `(batch, dim)`, the first half sines, the second cosines.
pub fn timestep_embedding(t: &Tensor, dim: usize) -> Result<Tensor> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (-(10000f32.ln()) * i as f32 / half as f32).exp())
        .collect();
    let freqs = Tensor::from_vec(freqs, (1, half), t.device())?;
    let args = t.unsqueeze(1)?.broadcast_mul(&freqs)?;
    Tensor::cat(&[args.sin()?, args.cos()?], 1)
}

/// Group normalisation of (batch, channels, len) with a learned scale and shift per channel
/// (`weight`, `bias`: candle_nn's names, layout and initial values, so saved models load either
/// way). candle_nn's `GroupNorm` computes the same values; this one broadcasts the scale and
/// shift with [`per_channel`], which made their gradients cheap to sum.
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl GroupNorm {
    const EPS: f64 = 1e-5;

    pub fn new(groups: usize, channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?,
            groups,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, l) = x.dims3()?;
        let per_group = c / self.groups * l;
        let grouped = x.reshape((b, self.groups, per_group))?;
        let mean = (grouped.sum_keepdim(2)? / per_group as f64)?;
        let centred = grouped.broadcast_sub(&mean)?;
        let variance = (centred.sqr()?.sum_keepdim(2)? / per_group as f64)?;
        let normed = centred
            .broadcast_div(&(variance + Self::EPS)?.sqrt()?)?
            .reshape((b, c, l))?;
        normed
            .broadcast_mul(&per_channel(&self.weight, (b, c, l))?)?
            .broadcast_add(&per_channel(&self.bias, (b, c, l))?)
    }
}

/// GroupNorm, SiLU and a k = 3 convolution, twice, with the embedding projected and added
/// between them; a 1x1 convolution on the skip path when the channel count changes.
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv1d,
    emb_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv1d,
    skip: Option<Conv1d>,
}

impl ResBlock {
    pub fn new(
        c_in: usize,
        c_out: usize,
        emb: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        Ok(Self {
            norm1: GroupNorm::new(groups, c_in, vb.pp("norm1"))?,
            conv1: conv(c_in, c_out, 3, 1, vb.pp("conv1"))?,
            emb_proj: linear(emb, c_out, vb.pp("emb_proj"))?,
            norm2: GroupNorm::new(groups, c_out, vb.pp("norm2"))?,
            conv2: conv(c_out, c_out, 3, 1, vb.pp("conv2"))?,
            skip: if c_in != c_out {
                Some(conv(c_in, c_out, 1, 1, vb.pp("skip"))?)
            } else {
                None
            },
        })
    }

    /// `x`: (batch, c_in, len); `emb`: (batch, emb) already passed through SiLU.
    pub fn forward(&self, x: &Tensor, emb: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x)?.silu()?)?;
        let h = h.broadcast_add(&self.emb_proj.forward(emb)?.unsqueeze(2)?)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?.silu()?)?;
        match &self.skip {
            Some(s) => s.forward(x)? + h,
            None => x + h,
        }
    }
}

/// Multi-head self-attention over time with a residual connection.
pub struct SelfAttention {
    norm: GroupNorm,
    qkv: Conv1d,
    out: Conv1d,
    heads: usize,
}

impl SelfAttention {
    pub fn new(channels: usize, heads: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: GroupNorm::new(groups, channels, vb.pp("norm"))?,
            qkv: conv(channels, 3 * channels, 1, 1, vb.pp("qkv"))?,
            out: conv(channels, channels, 1, 1, vb.pp("out"))?,
            heads,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, l) = x.dims3()?;
        let d = c / self.heads;
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?;
        // (b, 3c, l) -> three (b * heads, l, d)
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(1, i * c, c)?
                .reshape((b * self.heads, d, l))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let h = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, c, l))?;
        x + self.out.forward(&h)?
    }
}

/// Halves the length with a stride-2 convolution.
pub struct Downsample(Conv1d);

impl Downsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(conv(channels, channels, 3, 2, vb.pp("conv"))?))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(x)
    }
}

/// Doubles the length: nearest-neighbour repeat, then a k = 3 convolution.
pub struct Upsample(Conv1d);

impl Upsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(conv(channels, channels, 3, 1, vb.pp("conv"))?))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.0.forward(&repeat_each_twice(x)?)
    }
}

/// (b, c, l) -> (b, c, 2l) with every element repeated: nearest-neighbour upsampling by 2.
/// Built as a broadcast rather than `upsample_nearest1d`, which candle 0.11 does not run on CUDA
/// and whose backward overwrites the gradient already accumulated for its input; the broadcast's
/// backward sums, on every backend. The values are the same bit for bit.
fn repeat_each_twice(x: &Tensor) -> Result<Tensor> {
    let (b, c, l) = x.dims3()?;
    x.unsqueeze(3)?
        .broadcast_as((b, c, l, 2))?
        .reshape((b, c, 2 * l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn repeat_each_twice_is_nearest_upsampling_with_a_summing_backward() {
        let values: Vec<f32> = (0..2 * 3 * 5).map(|i| (i as f32 * 0.37).sin()).collect();
        let x = Var::from_vec(values, (2, 3, 5), &Device::Cpu).unwrap();
        let up = repeat_each_twice(&x).unwrap();
        let reference = x.upsample_nearest1d(10).unwrap();
        assert_eq!(
            up.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        // d/dx of sum(w * up(x)) is w[2i] + w[2i + 1].
        let w: Vec<f32> = (0..2 * 3 * 10).map(|i| i as f32).collect();
        let w = Tensor::from_vec(w.clone(), (2, 3, 10), &Device::Cpu).unwrap();
        let grads = (up * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g = grads.get(&x).unwrap().flatten_all().unwrap();
        let w = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let expected: Vec<f32> = w.chunks(2).map(|p| p[0] + p[1]).collect();
        assert_eq!(g.to_vec1::<f32>().unwrap(), expected);
    }
}
