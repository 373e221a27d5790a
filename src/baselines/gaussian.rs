//! I.i.d. days from a multivariate normal with the mean and covariance of the regime's train
//! days.

use super::PathGenerator;
use crate::data::DailyPanel;
use crate::error::{Error, Result};
use crate::rng::SeededRng;
use crate::stats::{cholesky, covariance_matrix};

pub(super) struct Gaussian {
    mean: Vec<f64>,
    covariance: Vec<f64>,
    chol: Vec<f64>,
    n: usize,
}

impl Gaussian {
    pub(super) fn fit(days: &DailyPanel, regime: &str) -> Result<Self> {
        let n = days.assets;
        let mean = (0..n)
            .map(|a| crate::stats::mean(&days.column(a)))
            .collect();
        let covariance = covariance_matrix(&days.values, n, 1);
        let chol = cholesky(&covariance, n).ok_or_else(|| {
            Error::option(
                "regime",
                regime,
                format!(
                    "the covariance of its {} train days is not positive definite",
                    days.len()
                ),
            )
        })?;
        Ok(Self {
            mean,
            covariance,
            chol,
            n,
        })
    }
}

impl PathGenerator for Gaussian {
    fn path(&self, len: usize, rng: &mut SeededRng, out: &mut Vec<f64>) {
        let n = self.n;
        let mut z = vec![0.0; n];
        for _ in 0..len {
            z.iter_mut().for_each(|v| *v = rng.normal());
            for i in 0..n {
                let shock: f64 = (0..=i).map(|j| self.chol[i * n + j] * z[j]).sum();
                out.push(self.mean[i] + shock);
            }
        }
    }

    fn parameters(&self) -> String {
        serde_json::json!({ "mean": self.mean, "covariance": self.covariance }).to_string()
    }
}
