//! Fast CPU inference of [`UNet1d`](super::UNet1d): the same weights (read from the same
//! safetensors names), the same function, computed without candle's CPU convolution and copy
//! ops. Activations are channels-last with zero rows between sequences ([`ops::Act`]), every
//! convolution is one GEMM (`gemm` crate) with bias, embedding and residual folded into its
//! initial value, group norm is fused with SiLU, buffers are recycled across calls, and the
//! batch is split over threads. The time + regime embedding is computed once per distinct
//! (timestep, regime) pair, of which a guided sampling step has two (once per window for a
//! network that also sees the window's amplitude). Training stays on candle.

mod ops;

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::Tensor;

use self::ops::{silu, Act, ConvWeights, Init, Pool};
use super::config::UNetConfig;

type Weights = HashMap<String, Tensor>;

/// Sequences per pass through the network within a thread: 64 windows of the default model
/// keep its largest activation (64 x 34 rows x 64 channels, 0.55 MB) in a core's L2 cache.
const CACHE_BATCH: usize = 32;

fn values(w: &Weights, name: &str) -> candle_core::Result<Vec<f32>> {
    w.get(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("missing weight `{name}`")))?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1()
}

fn conv_weights(w: &Weights, prefix: &str) -> candle_core::Result<ConvWeights> {
    let t = w
        .get(&format!("{prefix}.weight"))
        .ok_or_else(|| candle_core::Error::Msg(format!("missing weight `{prefix}.weight`")))?;
    let (c_out, c_in, k) = t.dims3()?;
    let bias = values(w, &format!("{prefix}.bias"))?;
    Ok(ConvWeights::pack(
        &values(w, &format!("{prefix}.weight"))?,
        bias,
        c_out,
        c_in,
        k,
    ))
}

/// y = W x + b with W (out, in), as candle's `Linear`, applied to many rows at once.
struct Dense(ConvWeights);

impl Dense {
    fn load(w: &Weights, prefix: &str) -> candle_core::Result<Self> {
        let weight = values(w, &format!("{prefix}.weight"))?;
        let bias = values(w, &format!("{prefix}.bias"))?;
        let (outputs, inputs) = (bias.len(), weight.len() / bias.len());
        Ok(Self(ConvWeights::pack(&weight, bias, outputs, inputs, 1)))
    }

    /// `rows` rows of inputs -> `rows` rows of outputs.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        ops::dense_rows(x, rows, &self.0)
    }
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn load(w: &Weights, prefix: &str) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: values(w, &format!("{prefix}.weight"))?,
            beta: values(w, &format!("{prefix}.bias"))?,
        })
    }
}

struct ResBlock {
    norm1: Norm,
    conv1: ConvWeights,
    emb_proj: Dense,
    norm2: Norm,
    conv2: ConvWeights,
    skip: Option<ConvWeights>,
}

struct Attention {
    norm: Norm,
    qkv: ConvWeights,
    out: ConvWeights,
}

/// One encoder or decoder level, in order.
struct Level {
    blocks: Vec<(ResBlock, Option<Attention>)>,
    down: Option<ConvWeights>,
    up: Option<ConvWeights>,
}

/// The network's weights, packed for the fast forward pass.
pub struct FastUNet {
    config: UNetConfig,
    time_in: Dense,
    time_out: Dense,
    regime_embedding: Vec<f32>,
    conv_in: ConvWeights,
    down: Vec<Level>,
    mid: (ResBlock, Attention, ResBlock),
    up: Vec<Level>,
    norm_out: Norm,
    conv_out: ConvWeights,
    pools: Mutex<Vec<Pool>>,
    prior: Option<crate::model::PriorPredictor>,
    linear_path: Option<LinearPath>,
}

/// The cross-asset linear path: `rank` 1x1 maps of the input, mixed by per-sample gains.
struct LinearPath {
    maps: ConvWeights,
    gains: Dense,
    rank: usize,
}

fn res_block(w: &Weights, p: &str) -> candle_core::Result<ResBlock> {
    Ok(ResBlock {
        norm1: Norm::load(w, &format!("{p}.norm1"))?,
        conv1: conv_weights(w, &format!("{p}.conv1"))?,
        emb_proj: Dense::load(w, &format!("{p}.emb_proj"))?,
        norm2: Norm::load(w, &format!("{p}.norm2"))?,
        conv2: conv_weights(w, &format!("{p}.conv2"))?,
        skip: if w.contains_key(&format!("{p}.skip.weight")) {
            Some(conv_weights(w, &format!("{p}.skip"))?)
        } else {
            None
        },
    })
}

fn attention(w: &Weights, p: &str) -> candle_core::Result<Attention> {
    Ok(Attention {
        norm: Norm::load(w, &format!("{p}.norm"))?,
        qkv: conv_weights(w, &format!("{p}.qkv"))?,
        out: conv_weights(w, &format!("{p}.out"))?,
    })
}

impl FastUNet {
    /// Packs the weights named as [`UNet1d::new`](super::UNet1d::new) names them; a factor
    /// model's encoder and decoder are folded into its first and last convolutions.
    pub fn new(config: &UNetConfig, w: &Weights) -> candle_core::Result<Self> {
        let (config, w) = &super::fold_factor_maps(config, w)?;
        let c = config;
        let level = |side: &str, i: usize, blocks: usize| -> candle_core::Result<Level> {
            let mut list = Vec::new();
            for b in 0..blocks {
                let p = format!("{side}.{i}");
                let attn = if c.attention_levels.contains(&i) {
                    Some(attention(w, &format!("{p}.attn.{b}"))?)
                } else {
                    None
                };
                list.push((res_block(w, &format!("{p}.res.{b}"))?, attn));
            }
            let last = c.channel_mults.len() - 1;
            Ok(Level {
                blocks: list,
                down: if side == "down" && i < last {
                    Some(conv_weights(w, &format!("down.{i}.down.conv"))?)
                } else {
                    None
                },
                up: if side == "up" && i > 0 {
                    Some(conv_weights(w, &format!("up.{i}.up.conv"))?)
                } else {
                    None
                },
            })
        };
        let levels = c.channel_mults.len();
        Ok(Self {
            config: c.clone(),
            time_in: Dense::load(w, "time.0")?,
            time_out: Dense::load(w, "time.1")?,
            regime_embedding: values(w, "regime.weight")?,
            conv_in: conv_weights(w, "conv_in")?,
            down: (0..levels)
                .map(|i| level("down", i, c.blocks_per_level))
                .collect::<candle_core::Result<_>>()?,
            mid: (
                res_block(w, "mid.res.0")?,
                attention(w, "mid.attn")?,
                res_block(w, "mid.res.1")?,
            ),
            up: (0..levels)
                .rev()
                .map(|i| level("up", i, c.blocks_per_level + 1))
                .collect::<candle_core::Result<_>>()?,
            norm_out: Norm::load(w, "norm_out")?,
            conv_out: conv_weights(w, "conv_out")?,
            pools: Mutex::new(Vec::new()),
            prior: None,
            linear_path: if c.linear_path > 0 {
                Some(LinearPath {
                    maps: conv_weights(w, "lin.maps")?,
                    gains: Dense::load(w, "lin.gains")?,
                    rank: c.linear_path,
                })
            } else {
                None
            },
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

    /// Every residual block, in no particular order.
    fn res_blocks(&self) -> impl Iterator<Item = &ResBlock> {
        self.down
            .iter()
            .chain(&self.up)
            .flat_map(|l| l.blocks.iter().map(|(r, _)| r))
            .chain([&self.mid.0, &self.mid.2])
    }

    /// The embeddings after their SiLU, one row per (timestep, regime) pair and, with the
    /// amplitude input, the window's amplitude features (`keys.len()` rows of them), as the
    /// candle network.
    fn embeddings(&self, keys: &[(f32, u32)], amplitude: &[f32]) -> Vec<f32> {
        let half = self.config.base_channels / 2;
        let features = amplitude.len() / keys.len().max(1);
        let mut inputs = Vec::with_capacity(keys.len() * (2 * half + features));
        for (k, (t, _)) in keys.iter().enumerate() {
            let freq = |i: usize| (-(10000f32.ln()) * i as f32 / half as f32).exp();
            inputs.extend((0..half).map(|i| (t * freq(i)).sin()));
            inputs.extend((0..half).map(|i| (t * freq(i)).cos()));
            inputs.extend_from_slice(&amplitude[k * features..(k + 1) * features]);
        }
        let mut h = self.time_in.apply(&inputs, keys.len());
        h.iter_mut().for_each(|v| *v = silu(*v));
        let mut e = self.time_out.apply(&h, keys.len());
        let dim = self.config.embed_dim;
        for (row, (_, regime)) in e.chunks_exact_mut(dim).zip(keys) {
            let r = *regime as usize;
            let embedding = &self.regime_embedding[r * dim..(r + 1) * dim];
            row.iter_mut()
                .zip(embedding)
                .for_each(|(a, b)| *a = silu(*a + b));
        }
        e
    }

    /// F(x, t, regime) for `x` of shape (batch, assets, padded_len) row-major (candle's layout),
    /// per-sample timesteps and regimes; returns the same shape.
    pub fn forward(&self, x: &[f32], t: &[f32], regimes: &[u32]) -> Vec<f32> {
        let batch = t.len();
        let size = self.config.assets * self.config.padded_len();
        // Each sample's index into the distinct embeddings of the call: one per (t, regime)
        // pair, or one per sample when the embedding also sees the window's amplitude.
        let (index, keys, amplitude) = if self.config.amplitude_input {
            let keys: Vec<(f32, u32)> = t.iter().copied().zip(regimes.iter().copied()).collect();
            let amplitude = x
                .chunks_exact(size)
                .flat_map(|window| amplitude_features(window, &self.config))
                .collect();
            ((0..batch).collect(), keys, amplitude)
        } else {
            let mut keys: Vec<(f32, u32)> = Vec::new();
            let index: Vec<usize> = t
                .iter()
                .zip(regimes)
                .map(|(tv, r)| {
                    let same = |k: &(f32, u32)| k.0.to_bits() == tv.to_bits() && k.1 == *r;
                    keys.iter().position(same).unwrap_or_else(|| {
                        keys.push((*tv, *r));
                        keys.len() - 1
                    })
                })
                .collect();
            (index, keys, Vec::new())
        };
        let embeddings = self.embeddings(&keys, &amplitude);
        // The linear path's gains per distinct embedding, concatenated.
        let gains: Vec<f32> = match &self.linear_path {
            Some(p) => p.gains.apply(&embeddings, keys.len()),
            None => Vec::new(),
        };
        // Each residual block's projection of each distinct embedding, once per call.
        let embeddings: Projections = self
            .res_blocks()
            .map(|r| {
                let projected = r.emb_proj.apply(&embeddings, keys.len());
                (r as *const ResBlock as usize, projected)
            })
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(batch.div_ceil(8))
            .max(1);
        let chunk = batch.div_ceil(threads);
        let mut pools = std::mem::take(&mut *self.pools.lock().expect("pool lock"));
        pools.resize_with(threads, Pool::default);
        let mut out = vec![0.0f32; batch * size];
        std::thread::scope(|scope| {
            for ((xs, os), (pool, k)) in x
                .chunks(chunk * size)
                .zip(out.chunks_mut(chunk * size))
                .zip(pools.iter_mut().zip(0..))
            {
                let idx = &index[k * chunk..k * chunk + xs.len() / size];
                let (embeddings, gains) = (&embeddings, &gains);
                scope.spawn(move || {
                    // Sub-batches small enough for their activations to stay in the core's
                    // cache between layers.
                    for ((xs, os), idx) in xs
                        .chunks(CACHE_BATCH * size)
                        .zip(os.chunks_mut(CACHE_BATCH * size))
                        .zip(idx.chunks(CACHE_BATCH))
                    {
                        self.forward_chunk(xs, idx, embeddings, gains, pool, os);
                    }
                });
            }
        });
        *self.pools.lock().expect("pool lock") = pools;
        out
    }

    /// The forward pass of one thread's share of the batch.
    fn forward_chunk(
        &self,
        x: &[f32],
        emb_index: &[usize],
        embeddings: &Projections,
        gains: &[f32],
        pool: &mut Pool,
        out: &mut [f32],
    ) {
        let c = &self.config;
        let (assets, len) = (c.assets, c.padded_len());
        let batch = emb_index.len();
        // Channels-first input -> channels-last padded rows.
        let mut input = pool.act(batch, len, assets);
        for b in 0..batch {
            let src = &x[b * assets * len..(b + 1) * assets * len];
            for (l, row) in input.seq_mut(b).chunks_exact_mut(assets).enumerate() {
                for (a, v) in row.iter_mut().enumerate() {
                    *v = src[a * len + l];
                }
            }
        }
        let mut cx = Ctx {
            pool,
            groups: c.groups,
            heads: c.heads,
            emb_index,
            embeddings,
        };
        // The encoder's outputs in the order UNet1d keeps them, conv_in's first; each is also
        // the next layer's input, read in place.
        let mut skips = vec![cx.conv(&input, &self.conv_in, Init::BIAS)];
        let maps = self
            .linear_path
            .as_ref()
            .map(|p| cx.conv(&input, &p.maps, Init::BIAS));
        cx.pool.give(input);
        let mut scratch = Vec::new();
        for level in &self.down {
            for (res, attn) in &level.blocks {
                let mut h = cx.res_block(skips.last().expect("conv_in's output"), res);
                if let Some(a) = attn {
                    h = cx.attention(h, a);
                }
                skips.push(h);
            }
            if let Some(d) = &level.down {
                let last = skips.last().expect("a block's output");
                let mut o = cx.pool.act(batch, last.len / 2, d.c_out);
                ops::conv_stride2(last, d, &mut scratch, &mut o);
                skips.push(o);
            }
        }
        let mut h = cx.res_block(skips.last().expect("the encoder's output"), &self.mid.0);
        h = cx.attention(h, &self.mid.1);
        h = {
            let next = cx.res_block(&h, &self.mid.2);
            cx.pool.give(h);
            next
        };
        for level in &self.up {
            for (res, attn) in &level.blocks {
                let skip = skips.pop().expect("a skip per decoder block");
                let mut cat = cx.pool.act(batch, h.len, h.ch + skip.ch);
                ops::concat(&h, &skip, &mut cat);
                cx.pool.give(h);
                cx.pool.give(skip);
                h = cx.res_block(&cat, res);
                cx.pool.give(cat);
                if let Some(a) = attn {
                    h = cx.attention(h, a);
                }
            }
            if let Some(u) = &level.up {
                let mut up = cx.pool.act(batch, h.len * 2, h.ch);
                ops::upsample2(&h, &mut up);
                cx.pool.give(h);
                h = cx.conv(&up, u, Init::BIAS);
                cx.pool.give(up);
            }
        }
        let normed = cx.norm(&h, &self.norm_out, true);
        cx.pool.give(h);
        let mut y = cx.conv(&normed, &self.conv_out, Init::BIAS);
        cx.pool.give(normed);
        if let (Some(p), Some(maps)) = (&self.linear_path, maps) {
            // y += Σ_k g_k · (L_k x), row by row.
            for (b, &e) in emb_index.iter().enumerate() {
                let g = &gains[e * p.rank..(e + 1) * p.rank];
                let rows = y.seq_mut(b).chunks_exact_mut(assets);
                for (row, m) in rows.zip(maps.seq(b).chunks_exact(p.rank * assets)) {
                    for (k, gk) in g.iter().enumerate() {
                        row.iter_mut()
                            .zip(&m[k * assets..(k + 1) * assets])
                            .for_each(|(o, v)| *o += gk * v);
                    }
                }
            }
            cx.pool.give(maps);
        }
        for b in 0..batch {
            let dst = &mut out[b * assets * len..(b + 1) * assets * len];
            for (l, row) in y.seq(b).chunks_exact(assets).enumerate() {
                for (a, v) in row.iter().enumerate() {
                    dst[a * len + l] = *v;
                }
            }
        }
        cx.pool.give(y);
    }
}

/// [`UNet1d`](super::UNet1d)'s amplitude input for one window (assets x padded_len,
/// channel-major, zero padding): ln of the mean square of each asset and of the assets' mean.
fn amplitude_features(x: &[f32], c: &UNetConfig) -> Vec<f32> {
    let (assets, padded, days) = (c.assets, c.padded_len(), c.window as f32);
    let floor = super::unet::AMPLITUDE_FLOOR as f32;
    let mut features: Vec<f32> = x
        .chunks_exact(padded)
        .map(|row| row.iter().map(|v| v * v).sum::<f32>() / days)
        .collect();
    let mean_square = (0..padded)
        .map(|l| {
            let m = (0..assets).map(|a| x[a * padded + l]).sum::<f32>() / assets as f32;
            m * m
        })
        .sum::<f32>()
        / days;
    features.push(mean_square);
    features.iter_mut().for_each(|v| *v = (*v + floor).ln());
    features
}

/// One thread's state during a forward pass.
struct Ctx<'a> {
    pool: &'a mut Pool,
    groups: usize,
    heads: usize,
    emb_index: &'a [usize],
    embeddings: &'a Projections,
}

/// Per residual block (keyed by its address): its embedding projection for each distinct
/// (t, regime) pair of the call, concatenated.
type Projections = HashMap<usize, Vec<f32>>;

impl Ctx<'_> {
    fn conv(&mut self, x: &Act, w: &ConvWeights, init: Init) -> Act {
        let mut o = self.pool.act(x.batch, x.len, w.c_out);
        ops::conv(x, w, init, &mut o);
        o
    }

    fn norm(&mut self, x: &Act, n: &Norm, silu: bool) -> Act {
        let mut o = self.pool.act(x.batch, x.len, x.ch);
        let norm = ops::GroupNorm {
            groups: self.groups,
            gamma: &n.gamma,
            beta: &n.beta,
            silu,
        };
        ops::group_norm(x, &norm, &mut o);
        o
    }

    /// conv2(silu(gn2(conv1(silu(gn1(x))) + proj(emb)))) + skip(x).
    fn res_block(&mut self, x: &Act, r: &ResBlock) -> Act {
        let projected = &self.embeddings[&(r as *const ResBlock as usize)];
        let a = self.norm(x, &r.norm1, true);
        let h = self.conv(
            &a,
            &r.conv1,
            Init {
                per_seq: Some((projected, self.emb_index)),
                residual: None,
            },
        );
        self.pool.give(a);
        let a = self.norm(&h, &r.norm2, true);
        self.pool.give(h);
        let projected_x = r.skip.as_ref().map(|s| self.conv(x, s, Init::BIAS));
        let out = self.conv(
            &a,
            &r.conv2,
            Init {
                per_seq: None,
                residual: Some(projected_x.as_ref().unwrap_or(x)),
            },
        );
        self.pool.give(a);
        if let Some(p) = projected_x {
            self.pool.give(p);
        }
        out
    }

    /// x + out(attention(qkv(gn(x)))); consumes `x`.
    fn attention(&mut self, x: Act, a: &Attention) -> Act {
        let n = self.norm(&x, &a.norm, false);
        let qkv = self.conv(&n, &a.qkv, Init::BIAS);
        self.pool.give(n);
        let mut heads = self.pool.act(x.batch, x.len, x.ch);
        ops::attention(&qkv, self.heads, &mut heads);
        self.pool.give(qkv);
        let out = self.conv(
            &heads,
            &a.out,
            Init {
                per_seq: None,
                residual: Some(&x),
            },
        );
        self.pool.give(heads);
        self.pool.give(x);
        out
    }
}
