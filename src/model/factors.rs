//! The diffusion factor model's encoder and decoder: learned linear maps between the assets and
//! a few latent factors, around the U-Net. The network's correction to the noise prediction then
//! lies in the decoder's column space (the factor subspace), as in the score decomposition of
//! diffusion factor models, while the Gaussian prior and the linear path cover every direction.
//!
//! Both maps are linear and bias-free, so they fold exactly into the first and last
//! convolutions (`conv_in` sees E x, and E applied to a zero-padded day is zero); a loaded factor
//! model therefore runs as an ordinary network of rank-limited weights, on either engine.

use std::collections::HashMap;

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::config::UNetConfig;

/// Encoder `factors` x `assets` and decoder `assets` x `factors`.
pub struct FactorMaps {
    encoder: Tensor,
    decoder: Tensor,
}

const ENCODER: &str = "factors.encoder";
const DECODER: &str = "factors.decoder";

impl FactorMaps {
    pub fn new(config: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        let (k, n) = (config.factors, config.assets);
        // Unit-variance factors from unit-variance assets, and back.
        let map = |outputs: usize, inputs: usize, name: &str| {
            let stdev = 1.0 / (inputs as f64).sqrt();
            vb.get_with_hints((outputs, inputs), name, Init::Randn { mean: 0.0, stdev })
        };
        Ok(Self {
            encoder: map(k, n, "encoder")?,
            decoder: map(n, k, "decoder")?,
        })
    }

    /// (batch, assets, len) -> (batch, factors, len).
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.encoder.broadcast_matmul(x)
    }

    /// (batch, factors, len) -> (batch, assets, len).
    pub fn decode(&self, f: &Tensor) -> Result<Tensor> {
        self.decoder.broadcast_matmul(f)
    }
}

/// The same network without its factor maps: `conv_in`'s weights multiplied by the encoder,
/// `conv_out`'s weights and bias by the decoder. Returns the architecture with `factors` 0 and
/// its weights; a network without factors is returned as it is.
pub fn fold_factor_maps(
    config: &UNetConfig,
    weights: &HashMap<String, Tensor>,
) -> Result<(UNetConfig, HashMap<String, Tensor>)> {
    if config.factors == 0 {
        return Ok((config.clone(), weights.clone()));
    }
    let get = |name: &str| {
        weights
            .get(name)
            .cloned()
            .ok_or_else(|| candle_core::Error::Msg(format!("missing weight `{name}`")))
    };
    let (encoder, decoder) = (get(ENCODER)?, get(DECODER)?);
    let mut folded = weights.clone();
    folded.remove(ENCODER);
    folded.remove(DECODER);

    // conv_in: W'[o, a, j] = Σ_f W[o, f, j] E[f, a].
    let w_in = get("conv_in.weight")?;
    let (c_out, k, taps) = w_in.dims3()?;
    let w_in = w_in
        .permute((0, 2, 1))?
        .reshape((c_out * taps, k))?
        .matmul(&encoder)?
        .reshape((c_out, taps, config.assets))?
        .permute((0, 2, 1))?
        .contiguous()?;
    folded.insert("conv_in.weight".into(), w_in);

    // conv_out: W'[a, c, j] = Σ_f D[a, f] W[f, c, j], b' = D b.
    let w_out = get("conv_out.weight")?;
    let (k, c_in, taps) = w_out.dims3()?;
    let w_out = decoder
        .matmul(&w_out.reshape((k, c_in * taps))?)?
        .reshape((config.assets, c_in, taps))?;
    let b_out = decoder
        .matmul(&get("conv_out.bias")?.reshape((k, 1))?)?
        .reshape(config.assets)?;
    folded.insert("conv_out.weight".into(), w_out);
    folded.insert("conv_out.bias".into(), b_out);

    let mut plain = config.clone();
    plain.factors = 0;
    Ok((plain, folded))
}
