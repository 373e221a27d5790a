//! The regime-conditioned 1D U-Net ε_θ(x_t, t, regime): time runs along the sequence, assets are
//! channels.

use candle_core::{Module, Result, Tensor};
use candle_nn::{embedding, linear, Embedding, Linear, VarBuilder};

use super::blocks::{timestep_embedding, Downsample, GroupNorm, ResBlock, SelfAttention, Upsample};
use super::config::UNetConfig;
use super::conv::Conv1d;
use super::factors::FactorMaps;

struct Level {
    blocks: Vec<(ResBlock, Option<SelfAttention>)>,
    resample: Option<Resample>,
}

enum Resample {
    Down(Downsample),
    Up(Upsample),
}

/// The network. Input (batch, assets, padded_len), timesteps (batch,) as f32, regimes (batch,)
/// as u32 where `config.null_regime()` means "no regime"; output has the input's shape.
pub struct UNet1d {
    config: UNetConfig,
    time_in: Linear,
    time_out: Linear,
    regime_embedding: Embedding,
    conv_in: Conv1d,
    down: Vec<Level>,
    mid: (ResBlock, SelfAttention, ResBlock),
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv1d,
    linear_path: Option<LinearPath>,
    factor_maps: Option<FactorMaps>,
    prior: Option<crate::model::PriorPredictor>,
}

/// Σ_k g_k(emb) · L_k x: the cross-asset linear map that the best Gaussian denoiser is, with its
/// dependence on the noise level and regime carried by the gains.
struct LinearPath {
    maps: Conv1d,
    gains: Linear,
    rank: usize,
}

impl UNet1d {
    pub fn new(config: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        let c = config;
        let (base, emb, groups) = (c.base_channels, c.embed_dim, c.groups);
        let attn = |level: usize, ch: usize, vb: VarBuilder| -> Result<Option<SelfAttention>> {
            if c.attention_levels.contains(&level) {
                Ok(Some(SelfAttention::new(ch, c.heads, groups, vb)?))
            } else {
                Ok(None)
            }
        };
        let conv_in = Conv1d::new(c.network_channels(), base, 3, 1, vb.pp("conv_in"))?;
        let mut ch = base;
        let mut skips = vec![ch];
        let mut down = Vec::new();
        let last = c.channel_mults.len() - 1;
        for (i, mult) in c.channel_mults.iter().enumerate() {
            let vbl = vb.pp(format!("down.{i}"));
            let out = base * mult;
            let mut blocks = Vec::new();
            for b in 0..c.blocks_per_level {
                let res = ResBlock::new(ch, out, emb, groups, vbl.pp(format!("res.{b}")))?;
                blocks.push((res, attn(i, out, vbl.pp(format!("attn.{b}")))?));
                ch = out;
                skips.push(ch);
            }
            let resample = if i < last {
                skips.push(ch);
                Some(Resample::Down(Downsample::new(ch, vbl.pp("down"))?))
            } else {
                None
            };
            down.push(Level { blocks, resample });
        }
        let mid = (
            ResBlock::new(ch, ch, emb, groups, vb.pp("mid.res.0"))?,
            SelfAttention::new(ch, c.heads, groups, vb.pp("mid.attn"))?,
            ResBlock::new(ch, ch, emb, groups, vb.pp("mid.res.1"))?,
        );
        let mut up = Vec::new();
        for (i, mult) in c.channel_mults.iter().enumerate().rev() {
            let vbl = vb.pp(format!("up.{i}"));
            let out = base * mult;
            let mut blocks = Vec::new();
            for b in 0..=c.blocks_per_level {
                let skip = skips.pop().expect("one skip per encoder output");
                let res = ResBlock::new(ch + skip, out, emb, groups, vbl.pp(format!("res.{b}")))?;
                blocks.push((res, attn(i, out, vbl.pp(format!("attn.{b}")))?));
                ch = out;
            }
            let resample = if i > 0 {
                Some(Resample::Up(Upsample::new(ch, vbl.pp("up"))?))
            } else {
                None
            };
            up.push(Level { blocks, resample });
        }
        Ok(Self {
            config: c.clone(),
            time_in: linear(base + c.amplitude_inputs(), emb, vb.pp("time.0"))?,
            time_out: linear(emb, emb, vb.pp("time.1"))?,
            regime_embedding: embedding(c.regimes + 1, emb, vb.pp("regime"))?,
            conv_in,
            down,
            mid,
            up,
            norm_out: GroupNorm::new(groups, ch, vb.pp("norm_out"))?,
            conv_out: Conv1d::new(ch, c.network_channels(), 3, 1, vb.pp("conv_out"))?,
            linear_path: if c.linear_path > 0 {
                Some(LinearPath {
                    maps: Conv1d::new(c.assets, c.linear_path * c.assets, 1, 1, vb.pp("lin.maps"))?,
                    gains: zero_linear(emb, c.linear_path, vb.pp("lin.gains"))?,
                    rank: c.linear_path,
                })
            } else {
                None
            },
            factor_maps: if c.factors > 0 {
                Some(FactorMaps::new(c, vb.pp("factors"))?)
            } else {
                None
            },
            prior: None,
        })
    }

    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Adds the Gaussian part of the noise prediction (see [`crate::model::predict_eps`]).
    pub fn set_prior(&mut self, prior: crate::model::PriorPredictor) {
        self.prior = Some(prior);
    }

    pub fn prior(&self) -> Option<&crate::model::PriorPredictor> {
        self.prior.as_ref()
    }

    /// Predicts the noise ε in `x` at timesteps `t` for `regimes`.
    pub fn forward(&self, x: &Tensor, t: &Tensor, regimes: &Tensor) -> Result<Tensor> {
        let mut temb = timestep_embedding(t, self.config.base_channels)?;
        if self.config.amplitude_input {
            temb = Tensor::cat(&[temb, amplitude(x, self.config.window)?], 1)?;
        }
        let temb = self
            .time_out
            .forward(&self.time_in.forward(&temb)?.silu()?)?;
        let emb = (temb + self.regime_embedding.forward(regimes)?)?.silu()?;

        let mut h = match &self.factor_maps {
            Some(f) => self.conv_in.forward(&f.encode(x)?)?,
            None => self.conv_in.forward(x)?,
        };
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for (res, attn) in &level.blocks {
                h = res.forward(&h, &emb)?;
                if let Some(a) = attn {
                    h = a.forward(&h)?;
                }
                skips.push(h.clone());
            }
            if let Some(Resample::Down(d)) = &level.resample {
                h = d.forward(&h)?;
                skips.push(h.clone());
            }
        }
        h = self.mid.0.forward(&h, &emb)?;
        h = self.mid.1.forward(&h)?;
        h = self.mid.2.forward(&h, &emb)?;
        for level in &self.up {
            for (res, attn) in &level.blocks {
                let skip = skips.pop().expect("skip for every decoder block");
                h = res.forward(&Tensor::cat(&[&h, &skip], 1)?, &emb)?;
                if let Some(a) = attn {
                    h = a.forward(&h)?;
                }
            }
            if let Some(Resample::Up(u)) = &level.resample {
                h = u.forward(&h)?;
            }
        }
        let mut out = self.conv_out.forward(&self.norm_out.forward(&h)?.silu()?)?;
        if let Some(f) = &self.factor_maps {
            out = f.decode(&out)?;
        }
        match &self.linear_path {
            Some(p) => {
                let (b, assets, len) = x.dims3()?;
                let maps = p.maps.forward(x)?.reshape((b, p.rank, assets, len))?;
                let gains = p.gains.forward(&emb)?.reshape((b, p.rank, 1, 1))?;
                out + maps.broadcast_mul(&gains)?.sum(1)?
            }
            None => Ok(out),
        }
    }
}

/// ln of the mean square over the window's days of each asset of `x` (batch, assets,
/// padded_len; the padding is zero) and of the assets' cross-sectional mean: (batch, assets + 1).
/// Group norms divide out each window's scale, so without this the network cannot tell a calm
/// window from a turbulent one once noise is added.
fn amplitude(x: &Tensor, window: usize) -> Result<Tensor> {
    let per_asset = (x.sqr()?.sum(2)? / window as f64)?;
    let mean = (x.mean(1)?.sqr()?.sum_keepdim(1)? / window as f64)?;
    (Tensor::cat(&[per_asset, mean], 1)? + AMPLITUDE_FLOOR)?.log()
}

/// Keeps the logarithm finite for an all-zero window.
pub(crate) const AMPLITUDE_FLOOR: f64 = 1e-4;

/// A linear layer that starts at zero, so that a new path adds nothing until it has learned
/// something (with candle's default initialisation the first epochs' loss was 6x higher).
fn zero_linear(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    let zero = candle_nn::Init::Const(0.0);
    let weight = vb.get_with_hints((outputs, inputs), "weight", zero)?;
    let bias = vb.get_with_hints(outputs, "bias", zero)?;
    Ok(Linear::new(weight, Some(bias)))
}
