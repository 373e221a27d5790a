//! The one row-major fp32 matrix product outside the network's layers, on `gemm`'s kernels
//! (their widest instructions chosen at run time): the prior's projections and the bench's
//! measure of the machine's peak.

/// `out` = `lhs` (m x k) · `rhs` (k x n), all row-major, on `threads` threads (1: the calling
/// thread only, for callers that run one product per thread themselves).
pub fn matmul(
    lhs: &[f32],
    rhs: &[f32],
    (m, k, n): (usize, usize, usize),
    out: &mut Vec<f32>,
    threads: usize,
) {
    assert!(lhs.len() == m * k && rhs.len() == k * n);
    out.clear();
    out.resize(m * n, 0.0);
    if m == 0 || n == 0 {
        return;
    }
    let parallelism = match threads {
        0 | 1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: the three buffers hold exactly the extents given, as asserted and resized above.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
