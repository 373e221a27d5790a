//! Small dense matrices, row-major `Vec<f64>`: covariance and correlation of row-major samples,
//! the Cholesky factor used to draw correlated normals, and the one f64 matrix product (on
//! `gemm`'s kernels) for operands laid out inside larger arrays.

/// Covariance of `rows` (row-major, `n` columns) with `ddof` degrees of freedom removed.
pub fn covariance_matrix(rows: &[f64], n: usize, ddof: usize) -> Vec<f64> {
    let count = rows.len() / n;
    let mean: Vec<f64> = (0..n)
        .map(|a| rows.iter().skip(a).step_by(n).sum::<f64>() / count as f64)
        .collect();
    let mut cov = vec![0.0; n * n];
    for r in rows.chunks(n) {
        for i in 0..n {
            let di = r[i] - mean[i];
            for j in 0..=i {
                cov[i * n + j] += di * (r[j] - mean[j]);
            }
        }
    }
    let denom = (count - ddof) as f64;
    for i in 0..n {
        for j in 0..=i {
            let c = cov[i * n + j] / denom;
            cov[i * n + j] = c;
            cov[j * n + i] = c;
        }
    }
    cov
}

/// Correlation matrix from a covariance matrix.
pub fn correlation_from_covariance(cov: &[f64], n: usize) -> Vec<f64> {
    let mut corr = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            corr[i * n + j] = cov[i * n + j] / (cov[i * n + i] * cov[j * n + j]).sqrt();
        }
    }
    corr
}

/// Lower-triangular L with L Lᵀ = `a`, or `None` when `a` is not positive definite.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + j] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// Solves A x = b for a symmetric positive-definite A through its Cholesky factor; `None` when
/// A is not positive definite.
pub fn solve_spd(a: &[f64], n: usize, b: &[f64]) -> Option<Vec<f64>> {
    let l = cholesky(a, n)?;
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}

/// Eigen-decomposition of a symmetric matrix with faer: eigenvalues in ascending order, and the
/// eigenvectors as the columns of a row-major matrix (column k belongs to eigenvalue k).
pub fn symmetric_eigen(m: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mat = faer::Mat::<f64>::from_fn(n, n, |i, j| m[i * n + j]);
    let evd = mat
        .as_ref()
        .self_adjoint_eigen(faer::Side::Lower)
        .expect("a symmetric matrix has a real eigen-decomposition");
    let values: Vec<f64> = (0..n).map(|k| evd.S().column_vector()[k]).collect();
    let u = evd.U();
    let vectors = (0..n * n).map(|idx| u[(idx / n, idx % n)]).collect();
    (values, vectors)
}

/// M^p of a symmetric positive semi-definite matrix through its eigen-decomposition, each
/// eigenvalue floored at `floor` first.
pub fn symmetric_power(m: &[f64], n: usize, p: f64, floor: f64) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(m, n);
    let powered: Vec<f64> = values.iter().map(|v| v.max(floor).powf(p)).collect();
    compose_eigen(&vectors, &powered, n)
}

/// U diag(λ) Uᵀ (U row-major, eigenvectors in columns).
pub fn compose_eigen(vectors: &[f64], lambda: &[f64], n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|k| {
            let (i, j) = (k / n, k % n);
            (0..n)
                .map(|c| vectors[i * n + c] * lambda[c] * vectors[j * n + c])
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symmetric_square_root_squares_back_and_inverts() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let root = symmetric_power(&a, 3, 0.5, 0.0);
        let inverse_root = symmetric_power(&a, 3, -0.5, 0.0);
        for i in 0..3 {
            for j in 0..3 {
                let square: f64 = (0..3).map(|k| root[i * 3 + k] * root[k * 3 + j]).sum();
                let identity: f64 = (0..3)
                    .map(|k| root[i * 3 + k] * inverse_root[k * 3 + j])
                    .sum();
                assert!((square - a[i * 3 + j]).abs() < 1e-12);
                assert!((identity - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn cholesky_reconstructs_its_matrix() {
        let a = [4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0];
        let l = cholesky(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((v - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }
}

/// A `rows` x `cols` matrix inside `data`: entry (i, j) at `i * row_stride + j * col_stride`.
/// A transpose is the same data with the strides swapped.
#[derive(Debug, Clone, Copy)]
pub struct Strided<'a> {
    pub data: &'a [f64],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl Strided<'_> {
    /// Whether every entry lies inside `data`.
    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// `out` (`lhs.rows` x `rhs.cols`, row-major, overwritten) = `lhs` · `rhs`, on the calling
/// thread with the widest vector kernels the CPU has.
pub fn product_into(out: &mut [f64], lhs: Strided, rhs: Strided) {
    assert!(lhs.cols == rhs.rows && lhs.fits() && rhs.fits());
    assert!(out.len() >= lhs.rows * rhs.cols);
    if lhs.rows == 0 || rhs.cols == 0 {
        return;
    }
    // SAFETY: both operands' entries lie inside their slices and `out` holds the product, as
    // asserted; `out` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            out.as_mut_ptr(),
            1,
            rhs.cols as isize,
            false,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
