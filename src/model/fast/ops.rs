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
    /// An activation with zero padding rows, from a recycled buffer when one is free. Its
    /// valid rows hold stale values: every kernel writes all of them.
    pub fn act(&mut self, batch: usize, len: usize, ch: usize) -> Act {
        let n = batch * (len + 2) * ch;
        // The smallest free buffer that is large enough: shrinking it costs nothing, growing
        // one would zero-fill the new part.
        let fit = (0..self.0.len())
            .filter(|&i| self.0[i].len() >= n)
            .min_by_key(|&i| self.0[i].len());
        let mut data = match fit {
            Some(i) => self.0.swap_remove(i),
            None => Vec::new(),
        };
        data.truncate(n);
        data.resize(n, 0.0);
        let mut act = Act {
            batch,
            len,
            ch,
            data,
        };
        act.zero_padding();
        act
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

/// `rows` rows of `x` (each `w.c_in` wide) through the linear layer `w` (a k = 1 convolution's
/// weights): `rows * w.c_out` values, row-major.
pub fn dense_rows(x: &[f32], rows: usize, w: &ConvWeights) -> Vec<f32> {
    assert!(w.k == 1 && x.len() == rows * w.c_in);
    let mut out: Vec<f32> = (0..rows).flat_map(|_| w.bias.iter().copied()).collect();
    if rows > 0 {
        // SAFETY: out is rows x c_out and x rows x c_in, as asserted and built above.
        unsafe {
            gemm_acc(
                (rows, w.c_out, w.c_in),
                out.as_mut_ptr(),
                w.c_out,
                x.as_ptr(),
                w.c_in,
                &w.packed,
            );
        }
    }
    out
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

/// e^x for f32 without a libm call, so that loops over it vectorise: x = n ln 2 + r with
/// |r| <= ln 2 / 2, e^r by its degree-6 Taylor polynomial (relative error < 2e-7 there), times
/// 2^n assembled in the exponent bits. Inputs are clamped to [-87, 88], where f32 is normal.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer in f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // SAFETY: after the clamp n is an integer in [-126, 127]; the unchecked conversion (unlike
    // `as`, which saturates) compiles to one vector instruction.
    let n = unsafe { n.to_int_unchecked::<i32>() };
    p * f32::from_bits(((n + 127) << 23) as u32)
}

/// SiLU, y / (1 + e^(−y)).
#[inline(always)]
pub fn silu(y: f32) -> f32 {
    y / (1.0 + exp_f32(-y))
}

/// Group normalisation (biased variance, eps 1e-5, as candle's `group_norm`) with a per-channel
/// affine map, optionally followed by SiLU. Compiled three times, for AVX-512 or AVX2 + FMA
/// where the CPU has them (the default x86-64 target only assumes SSE2) and without.
pub fn group_norm(x: &Act, norm: &GroupNorm, out: &mut Act) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        return unsafe { group_norm_avx512(x, norm, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the features were just detected.
        return unsafe { group_norm_avx2(x, norm, out) };
    }
    group_norm_body(x, norm, out)
}

/// A group norm's settings and per-channel affine parameters.
pub struct GroupNorm<'a> {
    pub groups: usize,
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    /// Apply SiLU after the affine map.
    pub silu: bool,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn group_norm_avx512(x: &Act, norm: &GroupNorm, out: &mut Act) {
    group_norm_body(x, norm, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn group_norm_avx2(x: &Act, norm: &GroupNorm, out: &mut Act) {
    group_norm_body(x, norm, out)
}

#[inline(always)]
fn group_norm_body(x: &Act, norm: &GroupNorm, out: &mut Act) {
    let GroupNorm {
        groups,
        gamma,
        beta,
        silu: silu_after,
    } = *norm;
    let (ch, len) = (x.ch, x.len);
    let per = ch / groups;
    let count = (per * len) as f64;
    let mut sums = vec![0.0f32; ch];
    let mut squares = vec![0.0f32; ch];
    let mut scale = vec![0.0f32; ch];
    let mut shift = vec![0.0f32; ch];
    for b in 0..x.batch {
        let src = x.seq(b);
        // Per-channel sums over at most a few dozen rows in f32 (contiguous, vectorised),
        // combined per group in f64.
        sums.fill(0.0);
        squares.fill(0.0);
        for row in src.chunks_exact(ch) {
            for ((s, q), v) in sums.iter_mut().zip(squares.iter_mut()).zip(row) {
                *s += v;
                *q += v * v;
            }
        }
        for g in 0..groups {
            let range = g * per..(g + 1) * per;
            let mean = sums[range.clone()].iter().map(|v| *v as f64).sum::<f64>() / count;
            let sq = squares[range.clone()]
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>()
                / count;
            let inv = 1.0 / ((sq - mean * mean).max(0.0) + 1e-5).sqrt();
            for c in range {
                scale[c] = (inv * gamma[c] as f64) as f32;
                shift[c] = (beta[c] as f64 - mean * inv * gamma[c] as f64) as f32;
            }
        }
        let dst = out.seq_mut(b);
        for (drow, srow) in dst.chunks_exact_mut(ch).zip(src.chunks_exact(ch)) {
            for (((d, v), a), c) in drow.iter_mut().zip(srow).zip(&scale).zip(&shift) {
                *d = v * a + c;
            }
        }
        if silu_after {
            // While the sequence is still in the L1 cache.
            silu_in_place(dst);
        }
    }
}

/// SiLU of every value, sixteen lanes at a time with AVX-512 or eight with AVX2 + FMA where the
/// CPU has them.
pub fn silu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the feature was just detected.
        unsafe { silu_avx512(values) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the features were just detected.
        unsafe { silu_avx2(values) };
        return;
    }
    values.iter_mut().for_each(|v| *v = silu(*v));
}

/// [`exp_f32`]'s method in AVX2 lanes, and the division by 1 + e^(−y) as the hardware's
/// reciprocal estimate refined by one Newton step (relative error about 1e-7) instead of a
/// division, which would bound the loop's speed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_avx2(values: &mut [f32]) {
    use std::arch::x86_64::*;
    let set = |v: f32| _mm256_set1_ps(v);
    let lanes = values.len() / 8 * 8;
    for k in (0..lanes).step_by(8) {
        let p = values.as_mut_ptr().add(k);
        let y = _mm256_loadu_ps(p);
        let x = _mm256_min_ps(
            _mm256_max_ps(_mm256_sub_ps(set(0.0), y), set(-87.0)),
            set(88.0),
        );
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, set(std::f32::consts::LOG2_E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fnmadd_ps(n, set(0.693_359_4), x);
        let r = _mm256_fnmadd_ps(n, set(-2.121_944_4e-4), r);
        let mut poly = set(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            poly = _mm256_fmadd_ps(poly, r, set(c));
        }
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        )));
        let den = _mm256_fmadd_ps(poly, scale, set(1.0));
        let inv = _mm256_rcp_ps(den);
        let inv = _mm256_mul_ps(inv, _mm256_fnmadd_ps(den, inv, set(2.0)));
        _mm256_storeu_ps(p, _mm256_mul_ps(y, inv));
    }
    values[lanes..].iter_mut().for_each(|v| *v = silu(*v));
}

/// [`silu_avx2`] in sixteen lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn silu_avx512(values: &mut [f32]) {
    use std::arch::x86_64::*;
    let set = |v: f32| _mm512_set1_ps(v);
    let lanes = values.len() / 16 * 16;
    for k in (0..lanes).step_by(16) {
        let p = values.as_mut_ptr().add(k);
        let y = _mm512_loadu_ps(p);
        let x = _mm512_min_ps(
            _mm512_max_ps(_mm512_sub_ps(set(0.0), y), set(-87.0)),
            set(88.0),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, set(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, set(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, set(-2.121_944_4e-4), r);
        let mut poly = set(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            poly = _mm512_fmadd_ps(poly, r, set(c));
        }
        let scale = _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvtps_epi32(n),
            _mm512_set1_epi32(127),
        )));
        let den = _mm512_fmadd_ps(poly, scale, set(1.0));
        let inv = _mm512_rcp14_ps(den);
        let inv = _mm512_mul_ps(inv, _mm512_fnmadd_ps(den, inv, set(2.0)));
        _mm512_storeu_ps(p, _mm512_mul_ps(y, inv));
    }
    values[lanes..].iter_mut().for_each(|v| *v = silu(*v));
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

#[cfg(test)]
mod tests {
    /// The vector SiLU (AVX-512 or AVX2, whichever this CPU has) against the scalar one, on a
    /// length that leaves a remainder for the scalar tail and over the clamped range's edges.
    #[test]
    fn vector_silu_matches_scalar() {
        let inputs: Vec<f32> = (0..1_001).map(|i| (i as f32 - 500.0) * 0.2).collect();
        let mut vector = inputs.clone();
        super::silu_in_place(&mut vector);
        for (y, v) in inputs.iter().zip(&vector) {
            let scalar = super::silu(*y);
            assert!(
                (v - scalar).abs() <= 1e-6 * scalar.abs().max(1.0),
                "silu({y}) = {v}, scalar {scalar}"
            );
        }
    }
}
