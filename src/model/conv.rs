//! A 1D convolution built from ordinary tensor ops (zero padding, shifted views, one matmul).
//! candle 0.11's `conv1d` computes wrong kernel gradients for these shapes (bias gradients are
//! right, weight gradients are off by large factors against finite differences; see
//! `tests/diffusion.rs`), so training uses this one. The weights keep candle's layout and names
//! (`weight`: (out, in, k), `bias`: (out)).

use candle_core::{Module, Result, Tensor};
use candle_nn::init::DEFAULT_KAIMING_NORMAL;
use candle_nn::VarBuilder;

/// Convolution over the last axis of (batch, in, len) with `k` odd, padding `k / 2`, and
/// stride 1 or 2.
#[derive(Debug, Clone)]
pub struct Conv1d {
    weight: Tensor,
    bias: Tensor,
    k: usize,
    stride: usize,
}

impl Conv1d {
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        assert!(
            k % 2 == 1 && (stride == 1 || stride == 2),
            "odd kernels, stride 1 or 2"
        );
        let weight = vb.get_with_hints((c_out, c_in, k), "weight", DEFAULT_KAIMING_NORMAL)?;
        let bound = 1.0 / ((c_in * k) as f64).sqrt();
        let bias = vb.get_with_hints(
            c_out,
            "bias",
            candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Self::from_weights(weight, bias, stride))
    }

    fn from_weights(weight: Tensor, bias: Tensor, stride: usize) -> Self {
        let k = weight.dim(2).expect("rank-3 weight");
        Self {
            weight,
            bias,
            k,
            stride,
        }
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl Module for Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.weight.is_variable() {
            // Frozen weights (a loaded model): candle's forward is right and faster.
            return self.forward_candle(x);
        }
        self.forward_unfolded(x)
    }
}

impl Conv1d {
    /// The convolution through candle's `conv1d` (no trustworthy backward).
    pub fn forward_candle(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv1d(&self.weight, self.k / 2, self.stride, 1, 1)?;
        y.broadcast_add(&self.bias.unsqueeze(1)?)
    }

    /// The convolution from padding, shifted views and one matmul (correct backward).
    pub fn forward_unfolded(&self, x: &Tensor) -> Result<Tensor> {
        let l = x.dim(2)?;
        let cols = if self.k == 1 {
            x.clone()
        } else {
            let pad = self.k / 2;
            let padded = x.pad_with_zeros(2, pad, pad)?;
            let taps: Vec<Tensor> = (0..self.k)
                .map(|j| padded.narrow(2, j, l))
                .collect::<Result<_>>()?;
            Tensor::cat(&taps, 1)?
        };
        // Rebuilt on every call: the weight variable changes in place during training.
        let (c_out, c_in, k) = self.weight.dims3()?;
        let flat = self.weight.permute((0, 2, 1))?.reshape((c_out, k * c_in))?;
        // One (c_out, k c_in) x (k c_in, b l) product for the whole batch. Broadcast over the
        // batch instead, the weight's gradient would be summed over it in candle's reduction
        // loop for leading dimensions (a division per element), about a third of training time.
        let b = cols.dim(0)?;
        let cols = cols.transpose(0, 1)?.reshape((k * c_in, b * l))?;
        let y = flat
            .matmul(&cols)?
            .reshape((c_out, b, l))?
            .transpose(0, 1)?;
        let y = if self.stride == 2 {
            let (b, c, _) = y.dims3()?;
            let even = l.div_ceil(2);
            let y = if l % 2 == 1 {
                y.pad_with_zeros(2, 0, 1)?
            } else {
                y
            };
            y.reshape((b, c, even, 2))?.narrow(3, 0, 1)?.squeeze(3)?
        } else {
            y
        };
        y.broadcast_add(&per_channel(&self.bias, y.dims3()?)?)
    }
}

/// A per-channel vector `v` (c) broadcast to (b, c, l) in two steps, (1, c, 1) -> (b, c, 1) ->
/// (b, c, l), for training. candle sums a broadcast's gradient over all broadcast dimensions at
/// once, with a division per element unless they are the trailing ones; in two steps the large
/// sum runs over the trailing dimension (vectorised) and the other over only b c elements.
pub fn per_channel(v: &Tensor, (b, c, l): (usize, usize, usize)) -> Result<Tensor> {
    v.reshape((1, c, 1))?
        .broadcast_as((b, c, 1))?
        .broadcast_as((b, c, l))
}
