//! Building blocks of the 1D U-Net. Only ops with a working backward pass in candle 0.11 are
//! used: `group_norm`, `ops::softmax` (not `softmax_last_dim`), nearest upsampling followed by a
//! convolution (not `conv_transpose1d`), and the project's own [`Conv1d`].

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{group_norm, linear, GroupNorm, Linear, VarBuilder};

use super::conv::Conv1d;

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
            norm1: group_norm(groups, c_in, 1e-5, vb.pp("norm1"))?,
            conv1: conv(c_in, c_out, 3, 1, vb.pp("conv1"))?,
            emb_proj: linear(emb, c_out, vb.pp("emb_proj"))?,
            norm2: group_norm(groups, c_out, 1e-5, vb.pp("norm2"))?,
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
            norm: group_norm(groups, channels, 1e-5, vb.pp("norm"))?,
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

/// Doubles the length: nearest-neighbour repeat, then a k = 3 convolution. Its input must have
/// no other consumer (candle's upsample backward overwrites the input's gradient).
pub struct Upsample(Conv1d);

impl Upsample {
    pub fn new(channels: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(conv(channels, channels, 3, 1, vb.pp("conv"))?))
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let l = x.dim(2)?;
        self.0.forward(&x.upsample_nearest1d(2 * l)?)
    }
}
