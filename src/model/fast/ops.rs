//! Kernels of the fast forward pass over the channels-last, row-padded layout [`Act`]:
//! convolutions as one GEMM each (the im2col matrix of a k = 3 convolution is a strided view of
//! the padded rows, so nothing is copied), group normalisation fused with SiLU, nearest
//! upsampling, channel concatenation and the bottleneck's self-attention.

/// Activations of `batch` sequences of `len` steps and `ch` channels, stored as
/// `batch * (len + 2)` rows of `ch` values: each sequence has one zero row before and after it,
/// the padding a k = 3 convolution needs. Every kernel leaves those rows zero.
pub struct Act {
    pub batch: usize,
    pub len: usize,
    pub ch: usize,
    pub data: Vec<f32>,
}

impl Act {
    pub fn rows_per_seq(&self) -> usize {
        self.len + 2
    }

    /// The valid (non-padding) rows of sequence `b`.
    pub fn seq(&self, b: usize) -> &[f32] {
        let start = (b * self.rows_per_seq() + 1) * self.ch;
        &self.data[start..start + self.len * self.ch]
    }

    pub fn seq_mut(&mut self, b: usize) -> &mut [f32] {
        let start = (b * self.rows_per_seq() + 1) * self.ch;
        let ch = self.ch;
        let len = self.len;
        &mut self.data[start..start + len * ch]
    }

    fn zero_padding(&mut self) {
        let (rows, ch) = (self.rows_per_seq(), self.ch);
        for b in 0..self.batch {
            self.data[b * rows * ch..(b * rows + 1) * ch].fill(0.0);
            self.data[(b * rows + rows - 1) * ch..(b + 1) * rows * ch].fill(0.0);
        }
    }
}

/// A reusable pool of buffers: the forward pass takes and returns them, so that steps after the
/// first allocate nothing.
#[derive(Default)]
pub struct Pool(Vec<Vec<f32>>);

impl Pool {
    /// A zero-filled activation, from a recycled buffer when one is free.
    pub fn act(&mut self, batch: usize, len: usize, ch: usize) -> Act {
        let n = batch * (len + 2) * ch;
        let mut data = self.0.pop().unwrap_or_default();
        data.clear();
        data.resize(n, 0.0);
        Act {
            batch,
            len,
            ch,
            data,
        }
    }

    pub fn give(&mut self, a: Act) {
        self.0.push(a.data);
    }
}

/// Convolution weights packed for the GEMM: `(k * c_in) x c_out`, row `j * c_in + c` holding
/// tap j of input channel c, so that a row of the padded activations and its k - 1 successors,
/// read as one contiguous span, multiply it directly.
pub struct ConvWeights {
    pub k: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub packed: Vec<f32>,
    pub bias: Vec<f32>,
}

impl ConvWeights {
    /// From candle's layout: `weight` (c_out, c_in, k) row-major, `bias` (c_out).
    pub fn pack(weight: &[f32], bias: Vec<f32>, c_out: usize, c_in: usize, k: usize) -> Self {
        let mut packed = vec![0.0; k * c_in * c_out];
        for o in 0..c_out {
            for c in 0..c_in {
                for j in 0..k {
                    packed[(j * c_in + c) * c_out + o] = weight[(o * c_in + c) * k + j];
                }
            }
        }
        Self {
            k,
            c_in,
            c_out,
            packed,
            bias,
        }
    }
}

/// dst (m x n, row stride `dst_rs`) += lhs (m x k, row stride `lhs_rs`) · rhs (k x n, packed).
///
/// # Safety
/// The pointers must address those extents; lhs rows may overlap (they are only read).
unsafe fn gemm_acc(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: &[f32],
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        true,
        lhs,
        1,
        lhs_rs as isize,
        rhs.as_ptr(),
        1,
        n as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// What a convolution's output starts from before the products are added: the bias, plus
/// optionally a per-sequence vector (the embedding projection) and a residual activation.
pub struct Init<'a> {
    pub per_seq: Option<(&'a [f32], &'a [usize])>,
    pub residual: Option<&'a Act>,
}

impl Init<'_> {
    pub const BIAS: Init<'static> = Init {
        per_seq: None,
        residual: None,
    };
}

/// A stride-1 convolution (k = 1 or 3, "same" padding) of `x` into `out` (same length).
pub fn conv(x: &Act, w: &ConvWeights, init: Init, out: &mut Act) {
    assert_eq!(
        (x.ch, out.ch, x.len, out.len),
        (w.c_in, w.c_out, out.len, x.len)
    );
    let (rows, c_out) = (x.rows_per_seq(), w.c_out);
    for b in 0..x.batch {
        let extra = init
            .per_seq
            .map(|(v, idx)| &v[idx[b] * c_out..(idx[b] + 1) * c_out]);
        let residual = init.residual.map(|r| r.seq(b));
        let seq = out.seq_mut(b);
        for (l, row) in seq.chunks_exact_mut(c_out).enumerate() {
            row.copy_from_slice(&w.bias);
            if let Some(e) = extra {
                row.iter_mut().zip(e).for_each(|(o, v)| *o += v);
            }
            if let Some(r) = residual {
                row.iter_mut()
                    .zip(&r[l * c_out..(l + 1) * c_out])
                    .for_each(|(o, v)| *o += v);
            }
        }
    }
    let total = x.batch * rows;
    // SAFETY: for k = 3, output row r + 1 reads input rows r..r + 3 (r < total - 2), all inside
    // the buffers; for k = 1, row r reads row r.
    unsafe {
        if w.k == 3 {
            gemm_acc(
                (total - 2, c_out, 3 * w.c_in),
                out.data.as_mut_ptr().add(c_out),
                c_out,
                x.data.as_ptr(),
                w.c_in,
                &w.packed,
            );
        } else {
            gemm_acc(
                (total, c_out, w.c_in),
                out.data.as_mut_ptr(),
                c_out,
                x.data.as_ptr(),
                w.c_in,
                &w.packed,
            );
        }
    }
    // Rows straddling two sequences (and 1x1 outputs of padding rows) are not outputs.
    out.zero_padding();
}

/// A stride-2 k = 3 convolution with padding 1: `len` -> `len / 2` (`len` even).
pub fn conv_stride2(x: &Act, w: &ConvWeights, scratch: &mut Vec<f32>, out: &mut Act) {
    assert!(x.len.is_multiple_of(2) && out.len == x.len / 2 && w.k == 3);
    let (half_rows, c_out) = (x.rows_per_seq() / 2, w.c_out);
    let m = x.batch * half_rows - 1;
    scratch.clear();
    scratch.resize(m * c_out, 0.0);
    // SAFETY: output m' reads input rows 2m'..2m' + 3 <= batch * rows.
    unsafe {
        gemm_acc(
            (m, c_out, 3 * w.c_in),
            scratch.as_mut_ptr(),
            c_out,
            x.data.as_ptr(),
            2 * w.c_in,
            &w.packed,
        );
    }
    // Sequence b's outputs are rows b * half_rows .. + len / 2 of the scratch.
    for b in 0..x.batch {
        let src = &scratch[b * half_rows * c_out..(b * half_rows + out.len) * c_out];
        for (row, s) in out
            .seq_mut(b)
            .chunks_exact_mut(c_out)
            .zip(src.chunks_exact(c_out))
        {
            row.iter_mut()
                .zip(s.iter().zip(&w.bias))
                .for_each(|(o, (v, bias))| *o = v + bias);
        }
    }
}

/// Group normalisation (biased variance, eps 1e-5, as candle's `group_norm`) with a per-channel
/// affine map, optionally followed by SiLU.
pub fn group_norm(x: &Act, groups: usize, gamma: &[f32], beta: &[f32], silu: bool, out: &mut Act) {
    let (ch, len) = (x.ch, x.len);
    let per = ch / groups;
    let count = (per * len) as f64;
    for b in 0..x.batch {
        let src = x.seq(b);
        let mut stats = vec![(0.0f64, 0.0f64); groups];
        for row in src.chunks_exact(ch) {
            for (g, s) in stats.iter_mut().enumerate() {
                for v in &row[g * per..(g + 1) * per] {
                    s.0 += *v as f64;
                    s.1 += (*v as f64) * (*v as f64);
                }
            }
        }
        // Per channel: y = x * scale + shift.
        let mut scale = vec![0.0f32; ch];
        let mut shift = vec![0.0f32; ch];
        for (g, (sum, sq)) in stats.iter().enumerate() {
            let mean = sum / count;
            let var = (sq / count - mean * mean).max(0.0);
            let inv = 1.0 / (var + 1e-5).sqrt();
            for c in g * per..(g + 1) * per {
                scale[c] = (inv * gamma[c] as f64) as f32;
                shift[c] = (beta[c] as f64 - mean * inv * gamma[c] as f64) as f32;
            }
        }
        let dst = out.seq_mut(b);
        for (drow, srow) in dst.chunks_exact_mut(ch).zip(src.chunks_exact(ch)) {
            for c in 0..ch {
                let y = srow[c] * scale[c] + shift[c];
                drow[c] = if silu { y / (1.0 + (-y).exp()) } else { y };
            }
        }
    }
}

/// Nearest-neighbour upsampling by 2 along the sequence.
pub fn upsample2(x: &Act, out: &mut Act) {
    let ch = x.ch;
    for b in 0..x.batch {
        let src: Vec<f32> = x.seq(b).to_vec();
        for (l, row) in out.seq_mut(b).chunks_exact_mut(ch).enumerate() {
            row.copy_from_slice(&src[(l / 2) * ch..(l / 2 + 1) * ch]);
        }
    }
}

/// Channel concatenation [a, b] (the decoder's skip connections).
pub fn concat(a: &Act, b: &Act, out: &mut Act) {
    for s in 0..a.batch {
        let (ra, rb) = (a.seq(s), b.seq(s));
        for (l, row) in out.seq_mut(s).chunks_exact_mut(a.ch + b.ch).enumerate() {
            row[..a.ch].copy_from_slice(&ra[l * a.ch..(l + 1) * a.ch]);
            row[a.ch..].copy_from_slice(&rb[l * b.ch..(l + 1) * b.ch]);
        }
    }
}

/// Multi-head attention over the sequence from packed q, k, v channels (`qkv` has 3C
/// channels: q in 0..C, k in C..2C, v in 2C..3C, head h owning channels h*d..(h+1)*d of each),
/// written to `out` (C channels).
pub fn attention(qkv: &Act, heads: usize, out: &mut Act) {
    let c = qkv.ch / 3;
    let d = c / heads;
    let len = qkv.len;
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores = vec![0.0f32; len];
    for b in 0..qkv.batch {
        let src = qkv.seq(b);
        let dst = out.seq_mut(b);
        for h in 0..heads {
            for i in 0..len {
                let q = &src[i * 3 * c + h * d..i * 3 * c + (h + 1) * d];
                let mut max = f32::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate() {
                    let k = &src[j * 3 * c + c + h * d..j * 3 * c + c + (h + 1) * d];
                    *s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
                    max = max.max(*s);
                }
                let mut total = 0.0;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let o = &mut dst[i * c + h * d..i * c + (h + 1) * d];
                o.fill(0.0);
                for (j, s) in scores.iter().enumerate() {
                    let v = &src[j * 3 * c + 2 * c + h * d..j * 3 * c + 2 * c + (h + 1) * d];
                    let wgt = s / total;
                    o.iter_mut().zip(v).for_each(|(a, b)| *a += wgt * b);
                }
            }
        }
    }
}
