//! The network's architecture, stored in a model's `config.json` so that the weights can be
//! rebuilt exactly.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most channels at any level of the network, and the widest embedding.
pub const MAX_CHANNELS: usize = 4096;
/// The most assets, days per window, regimes and levels (or blocks per level) a network has.
pub const MAX_ASSETS: usize = 100_000;
pub const MAX_WINDOW: usize = 10_000;
pub const MAX_REGIMES: usize = 1_000;
pub const MAX_LEVELS: usize = 16;

/// Shape of the 1D U-Net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Assets, the input and output channels.
    pub assets: usize,
    /// Days in a window; the network sees it zero-padded to `padded_len()`.
    pub window: usize,
    /// Regime labels; the embedding has one more row, the "null" class used for guidance.
    pub regimes: usize,
    /// Channels of the first level.
    pub base_channels: usize,
    /// Channel multiplier per level; each level but the last halves the length.
    pub channel_mults: Vec<usize>,
    /// Residual blocks per encoder level.
    pub blocks_per_level: usize,
    /// Levels (indices into `channel_mults`) with self-attention after each block; the
    /// bottleneck always has it.
    pub attention_levels: Vec<usize>,
    /// Attention heads.
    pub heads: usize,
    /// Groups of every GroupNorm.
    pub groups: usize,
    /// Width of the time + regime embedding.
    pub embed_dim: usize,
    /// Feed the window's observed amplitude (log mean square of x_t per asset and of their
    /// cross-sectional mean) into the time embedding's MLP. Absent in older models: false.
    #[serde(default)]
    pub amplitude_input: bool,
    /// Rank of the cross-asset linear path added to the network's output: `linear_path`
    /// learned asset-by-asset maps of x_t, mixed by gains computed from the embedding.
    /// Absent in older models: 0 (no path).
    #[serde(default)]
    pub linear_path: usize,
    /// Latent factors of a diffusion factor model (0: none): the U-Net then sees the window
    /// through a learned `factors` x `assets` encoder and its output returns through a learned
    /// `assets` x `factors` decoder, so that its correction to the noise prediction lies in a
    /// `factors`-dimensional subspace of the assets; the Gaussian prior and the linear path
    /// still act on every direction. Absent in older models: 0.
    #[serde(default)]
    pub factors: usize,
}

impl UNetConfig {
    /// The default network for `assets` x `window` windows with `regimes` labels: sized so that
    /// the demo trains on a 2-core CPU in a few minutes.
    pub fn small(assets: usize, window: usize, regimes: usize) -> Self {
        Self {
            assets,
            window,
            regimes,
            base_channels: 16,
            channel_mults: vec![1, 2, 2],
            blocks_per_level: 1,
            attention_levels: vec![],
            heads: 4,
            groups: 8,
            embed_dim: 128,
            amplitude_input: false,
            linear_path: 0,
            factors: 0,
        }
    }

    /// Length after padding to a multiple of 2^(levels - 1).
    pub fn padded_len(&self) -> usize {
        let m = 1usize << (self.channel_mults.len() - 1);
        self.window.div_ceil(m) * m
    }

    /// Inputs the amplitude adds to the time MLP: one per asset and one for their mean.
    pub fn amplitude_inputs(&self) -> usize {
        if self.amplitude_input {
            self.assets + 1
        } else {
            0
        }
    }

    /// Channels the U-Net's first and last convolutions see: the factors, or the assets.
    pub fn network_channels(&self) -> usize {
        if self.factors > 0 {
            self.factors
        } else {
            self.assets
        }
    }

    /// The index of the null (unconditional) regime class.
    pub fn null_regime(&self) -> usize {
        self.regimes
    }

    /// Checks that the pieces fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::option("model config", what, "invalid architecture"));
        if self.base_channels == 0 {
            return bad("base_channels 0".into());
        }
        // Sizes a config file could set to anything: bounded before a network is allocated
        // (a billion channels asked for 240 GB and aborted the process).
        let widest = self.channel_mults.iter().max().copied().unwrap_or(1);
        for (name, value, most) in [
            (
                "widest level's channels",
                self.base_channels.saturating_mul(widest),
                MAX_CHANNELS,
            ),
            ("embed_dim", self.embed_dim, MAX_CHANNELS),
            ("assets", self.assets, MAX_ASSETS),
            ("window", self.window, MAX_WINDOW),
            ("regimes", self.regimes, MAX_REGIMES),
            ("levels", self.channel_mults.len(), MAX_LEVELS),
            ("blocks_per_level", self.blocks_per_level, MAX_LEVELS),
            ("linear_path", self.linear_path, MAX_CHANNELS),
        ] {
            if value > most {
                return bad(format!("{name} {value}, more than {most}"));
            }
        }
        if self.channel_mults.is_empty() || self.channel_mults.contains(&0) {
            return bad(format!("channel_mults {:?}", self.channel_mults));
        }
        for m in &self.channel_mults {
            if !(self.base_channels * m).is_multiple_of(self.groups)
                || !(self.base_channels * m).is_multiple_of(self.heads)
            {
                return bad(format!(
                    "{} channels not divisible by groups {} and heads {}",
                    self.base_channels * m,
                    self.groups,
                    self.heads
                ));
            }
        }
        if self.assets == 0
            || self.window < 2
            || self.regimes == 0
            || !self.embed_dim.is_multiple_of(2)
        {
            return bad(format!(
                "assets {}, window {}, regimes {}, embed_dim {}",
                self.assets, self.window, self.regimes, self.embed_dim
            ));
        }
        if self.factors > self.assets {
            return bad(format!(
                "factors {} for {} assets",
                self.factors, self.assets
            ));
        }
        if let Some(l) = self
            .attention_levels
            .iter()
            .find(|l| **l >= self.channel_mults.len())
        {
            return bad(format!("attention level {l}"));
        }
        Ok(())
    }

    /// Multiply-add FLOPs (2 per multiply-add) of one forward pass for one window, counted
    /// from the architecture: convolutions, linear layers and attention products; element-wise
    /// ops and normalisation are left out (they are memory-bound, not FLOP-bound).
    pub fn forward_flops(&self) -> u64 {
        let conv =
            |cin: usize, cout: usize, k: usize, len: usize| (2 * cin * cout * k * len) as u64;
        let res = |cin: usize, cout: usize, len: usize| {
            conv(cin, cout, 3, len)
                + conv(cout, cout, 3, len)
                + (2 * self.embed_dim * cout) as u64
                + if cin != cout {
                    conv(cin, cout, 1, len)
                } else {
                    0
                }
        };
        let attn = |ch: usize, len: usize| {
            conv(ch, 3 * ch, 1, len) + conv(ch, ch, 1, len) + (4 * len * len * ch) as u64
        };
        let base = self.base_channels;
        let mut len = self.padded_len();
        let time_inputs = base + self.amplitude_inputs();
        let mut flops =
            (2 * time_inputs * self.embed_dim + 2 * self.embed_dim * self.embed_dim) as u64;
        let inner = self.network_channels();
        flops += conv(inner, base, 3, len);
        let mut ch = base;
        let mut skips = vec![ch];
        let last = self.channel_mults.len() - 1;
        for (i, mult) in self.channel_mults.iter().enumerate() {
            let out = base * mult;
            for _ in 0..self.blocks_per_level {
                flops += res(ch, out, len);
                if self.attention_levels.contains(&i) {
                    flops += attn(out, len);
                }
                ch = out;
                skips.push(ch);
            }
            if i < last {
                len /= 2;
                flops += conv(ch, ch, 3, len);
                skips.push(ch);
            }
        }
        flops += 2 * res(ch, ch, len) + attn(ch, len);
        for (i, mult) in self.channel_mults.iter().enumerate().rev() {
            let out = base * mult;
            for _ in 0..=self.blocks_per_level {
                let skip = skips.pop().unwrap_or(0);
                flops += res(ch + skip, out, len);
                if self.attention_levels.contains(&i) {
                    flops += attn(out, len);
                }
                ch = out;
            }
            if i > 0 {
                len *= 2;
                flops += conv(ch, ch, 3, len);
            }
        }
        // The linear path: its 1x1 maps and its gains (the amplitude features are element-wise).
        let rank = self.linear_path;
        let linear_path = conv(self.assets, rank * self.assets, 1, len)
            + (2 * self.embed_dim * rank + 2 * rank * self.assets * len) as u64;
        // The factor encoder and decoder: two assets x factors maps per day.
        let factor_maps = if self.factors > 0 {
            (4 * self.assets * self.factors * len) as u64
        } else {
            0
        };
        flops + conv(ch, inner, 3, len) + factor_maps + if rank > 0 { linear_path } else { 0 }
    }
}
