//! GARCH(1,1) with a constant mean, fitted by Gaussian quasi-maximum likelihood, with the
//! variance recursion started from the exponentially weighted backcast used by the `arch`
//! package, so that fits can be checked against it.

use crate::stats::{mean, nelder_mead, variance};

/// r_t = mu + e_t, sigma²_t = omega + alpha e²_{t-1} + beta sigma²_{t-1}.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Garch11 {
    pub mu: f64,
    pub omega: f64,
    pub alpha: f64,
    pub beta: f64,
}

/// A fit and its quality.
#[derive(Debug, Clone)]
pub struct GarchFit {
    pub params: Garch11,
    pub log_likelihood: f64,
    pub converged: bool,
    /// sigma²_t for every observation.
    pub variances: Vec<f64>,
}

impl Garch11 {
    /// RiskMetrics' exponentially weighted moving average of squared returns around zero, with
    /// decay `lambda`: the GARCH(1,1) recursion with no mean, no constant and α + β = 1.
    pub fn riskmetrics(lambda: f64) -> Self {
        Self {
            mu: 0.0,
            omega: 0.0,
            alpha: 1.0 - lambda,
            beta: lambda,
        }
    }

    /// The next conditional variance after a residual `e` at variance `var`.
    pub fn next_variance(&self, e: f64, var: f64) -> f64 {
        self.omega + self.alpha * e * e + self.beta * var
    }

    fn feasible(&self) -> bool {
        self.omega > 0.0 && self.alpha >= 0.0 && self.beta >= 0.0 && self.alpha + self.beta < 1.0
    }
}

/// arch's backcast: weights 0.94^i over the first min(75, n) squared residuals, normalised.
/// Like arch, the fit computes it once, from the residuals around the sample mean, and keeps it
/// fixed while the parameters move.
pub fn backcast(resid: &[f64]) -> f64 {
    let tau = resid.len().min(75);
    let w: Vec<f64> = (0..tau).map(|i| 0.94f64.powi(i as i32)).collect();
    let total: f64 = w.iter().sum();
    resid[..tau]
        .iter()
        .zip(&w)
        .map(|(e, w)| e * e * w)
        .sum::<f64>()
        / total
}

/// Gaussian log-likelihood and conditional variances of `r` under `p`, the recursion started
/// from `bc` for the squared residual and the variance before the first day.
pub fn log_likelihood(r: &[f64], p: &Garch11, bc: f64) -> (f64, Vec<f64>) {
    let resid: Vec<f64> = r.iter().map(|x| x - p.mu).collect();
    let mut var = Vec::with_capacity(r.len());
    let (mut prev_e2, mut prev_var) = (bc, bc);
    let mut ll = 0.0;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    for e in &resid {
        let v = p.omega + p.alpha * prev_e2 + p.beta * prev_var;
        ll -= 0.5 * (ln2pi + v.ln() + e * e / v);
        var.push(v);
        prev_e2 = e * e;
        prev_var = v;
    }
    (ll, var)
}

/// Fits by maximising the likelihood with Nelder–Mead from several starting persistences,
/// keeping the best. `converged` is false when no start converged to a feasible point.
pub fn fit_garch11(r: &[f64]) -> GarchFit {
    let m = mean(r);
    let v = variance(r, 0);
    let bc = backcast(&r.iter().map(|x| x - m).collect::<Vec<_>>());
    let objective = |x: &[f64]| {
        let p = Garch11 {
            mu: x[0],
            omega: x[1],
            alpha: x[2],
            beta: x[3],
        };
        if !p.feasible() {
            return f64::INFINITY;
        }
        let ll = log_likelihood(r, &p, bc).0;
        if ll.is_finite() {
            -ll
        } else {
            f64::INFINITY
        }
    };
    let mut best: Option<(f64, Vec<f64>, bool)> = None;
    for (alpha, beta) in [(0.1, 0.85), (0.05, 0.9), (0.15, 0.7), (0.03, 0.95)] {
        let start = [m, v * (1.0 - alpha - beta), alpha, beta];
        let scale = [0.1 * v.sqrt(), 0.5 * start[1], 0.02, 0.02];
        let mut min = nelder_mead(objective, &start, &scale, 1e-10, 4000);
        // A restart from the optimum shakes off a prematurely collapsed simplex.
        let restart_scale = [0.01 * v.sqrt(), 0.1 * min.x[1], 0.005, 0.005];
        let again = nelder_mead(objective, &min.x, &restart_scale, 1e-10, 4000);
        if again.value <= min.value {
            min = again;
        }
        if min.value.is_finite() && best.as_ref().is_none_or(|b| min.value < b.0) {
            best = Some((min.value, min.x, min.converged));
        }
    }
    let (value, x, converged) = best.unwrap_or((f64::INFINITY, vec![m, v, 0.0, 0.0], false));
    let params = Garch11 {
        mu: x[0],
        omega: x[1],
        alpha: x[2],
        beta: x[3],
    };
    let (ll, variances) = log_likelihood(r, &params, bc);
    GarchFit {
        params,
        log_likelihood: ll,
        converged: converged && value.is_finite() && params.feasible(),
        variances,
    }
}

/// A GARCH(1,1) fitted to one asset's daily log returns (decimals), in decimal units.
#[derive(Debug, Clone)]
pub struct AssetGarch {
    pub params: Garch11,
    /// The fit's log-likelihood, of the returns in percent.
    pub log_likelihood: f64,
    /// The conditional variance of each day of `returns` and of `more` after them (decimal),
    /// each from the days before it.
    pub variances: Vec<f64>,
}

/// Fits a GARCH(1,1) to `returns` (decimals; in percent, the scale the optimiser's tolerances
/// are set for) and carries its variance recursion on through `more` days after them with the
/// fitted parameters; an error names `asset` when no start converged.
pub fn fit_asset_garch(
    returns: &[f64],
    more: &[f64],
    asset: &str,
) -> crate::error::Result<AssetGarch> {
    let r: Vec<f64> = returns.iter().map(|x| 100.0 * x).collect();
    let fit = fit_garch11(&r);
    if !fit.converged {
        return Err(crate::error::Error::Fit {
            model: "GARCH(1,1)",
            reason: format!(
                "asset `{asset}` did not converge (alpha {:.4}, beta {:.4})",
                fit.params.alpha, fit.params.beta
            ),
        });
    }
    let p = fit.params;
    let variances = if more.is_empty() {
        fit.variances
    } else {
        // The fit's own backcast, so that the fitted days' variances are the fit's.
        let m = mean(&r);
        let bc = backcast(&r.iter().map(|x| x - m).collect::<Vec<_>>());
        let all: Vec<f64> = returns.iter().chain(more).map(|x| 100.0 * x).collect();
        log_likelihood(&all, &p, bc).1
    };
    Ok(AssetGarch {
        params: Garch11 {
            mu: p.mu / 100.0,
            omega: p.omega / 1e4,
            alpha: p.alpha,
            beta: p.beta,
        },
        log_likelihood: fit.log_likelihood,
        variances: variances.iter().map(|v| v / 1e4).collect(),
    })
}

/// A GARCH(1,1) per asset, fitted on a panel's first days and carried through the rest: each
/// asset's conditional variance as of any day, and its forecasts for the days after.
#[derive(Debug, Clone)]
pub struct GarchPanel {
    pub params: Vec<Garch11>,
    /// Per asset, the conditional variance of every return day, from the days before it.
    pub variances: Vec<Vec<f64>>,
    /// Per asset, its daily log returns.
    pub returns: Vec<Vec<f64>>,
}

impl GarchPanel {
    /// Fits each asset of `returns` (per asset, daily log returns) on its first `fit_days`
    /// days; an error names the asset of `assets` that did not converge.
    pub fn fit(
        returns: &[Vec<f64>],
        fit_days: usize,
        assets: &[String],
    ) -> crate::error::Result<Self> {
        let mut params = Vec::new();
        let mut variances = Vec::new();
        for (column, asset) in returns.iter().zip(assets) {
            let (fit_part, after) = column.split_at(fit_days);
            let fit = fit_asset_garch(fit_part, after, asset)?;
            params.push(fit.params);
            variances.push(fit.variances);
        }
        Ok(Self {
            params,
            variances,
            returns: returns.to_vec(),
        })
    }

    /// Each asset's conditional variance for the day after return day `t`.
    pub fn next_variances(&self, t: usize) -> Vec<f64> {
        self.params
            .iter()
            .enumerate()
            .map(|(a, p)| p.next_variance(self.returns[a][t] - p.mu, self.variances[a][t]))
            .collect()
    }

    /// Each asset's expected variance on each of the `horizon` days after return day `t`
    /// (day-major, one value per asset): E[σ²_{t+d}] = σ̄² + (α + β)^(d−1) (σ²_{t+1} − σ̄²),
    /// σ̄² = ω / (1 − α − β).
    pub fn variance_forecasts(&self, t: usize, horizon: usize) -> Vec<f64> {
        let next = self.next_variances(t);
        (0..horizon)
            .flat_map(|d| {
                self.params.iter().zip(&next).map(move |(p, next)| {
                    let persistence = p.alpha + p.beta;
                    let long_run = p.omega / (1.0 - persistence);
                    long_run + persistence.powi(d as i32) * (next - long_run)
                })
            })
            .collect()
    }
}

/// Days of the EWMA correlation's run-in before the close: at a decay of 0.97 the start's
/// weight is 0.97^250 < 0.1%.
const CORRELATION_RUN_IN: usize = 250;

impl GarchPanel {
    /// Asset a's GARCH-standardised residual on return day `d`.
    fn residuals(&self, d: usize) -> Vec<f64> {
        self.params
            .iter()
            .enumerate()
            .map(|(a, p)| (self.returns[a][d] - p.mu) / self.variances[a][d].sqrt())
            .collect()
    }

    /// The sample correlation of the standardised residuals of the first `fit_days` days.
    pub fn long_run_correlation(&self, fit_days: usize) -> Vec<f64> {
        let n = self.params.len();
        let rows: Vec<f64> = (0..fit_days).flat_map(|d| self.residuals(d)).collect();
        crate::stats::correlation_from_covariance(&crate::stats::covariance_matrix(&rows, n, 1), n)
    }

    /// The cross-asset correlation as of return day `t`: the EWMA (decay `lambda`) of the
    /// standardised residuals' outer products over the 250 days up to `t`, started from
    /// `long_run` ([`GarchPanel::long_run_correlation`]): RiskMetrics' correlation of
    /// devolatilised returns.
    pub fn correlation_at(&self, t: usize, long_run: &[f64], lambda: f64) -> Vec<f64> {
        let n = self.params.len();
        let mut q = long_run.to_vec();
        for d in (t + 1).saturating_sub(CORRELATION_RUN_IN)..=t {
            let z = self.residuals(d);
            for (k, v) in q.iter_mut().enumerate() {
                *v = lambda * *v + (1.0 - lambda) * z[k / n] * z[k % n];
            }
        }
        crate::stats::correlation_from_covariance(&q, n)
    }
}
