//! `scengen covariance`: every estimator for every regime of the given scenario files, written as
//! Parquet matrices, JSON and an HTML page of eigenvalue spectra.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{condition_number, ledoit_wolf, marchenko_pastur_clip, shrink_to_correlation};
use crate::data::{default_test_from, DailyPanel, SplitChoice, WindowSet, DEFAULT_WINDOWS};
use crate::error::{Error, Result};
use crate::report::REPORTS;
use crate::scenarios::{for_each_diffusion_set, DEFAULT_FOLDER};
use crate::stats::{
    column_variances, correlation_from_covariance, covariance_matrix, symmetric_eigen,
};

/// Settings of `scengen covariance`.
#[derive(Debug, Clone)]
pub struct CovarianceConfig {
    pub real: PathBuf,
    /// Scenario files, or folders whose `*.parquet` files are diffusion scenario files.
    pub scenarios: Vec<PathBuf>,
    pub test_from: i32,
    pub out: PathBuf,
}

/// The defaults: the train days (before [`default_test_from`]) of [`DEFAULT_WINDOWS`], the
/// diffusion files in [`DEFAULT_FOLDER`], written to `reports/covariance`.
impl Default for CovarianceConfig {
    fn default() -> Self {
        Self {
            real: DEFAULT_WINDOWS.into(),
            scenarios: vec![DEFAULT_FOLDER.into()],
            test_from: default_test_from(),
            out: Path::new(REPORTS).join("covariance"),
        }
    }
}

/// One estimator's matrix and its spectrum.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub method: String,
    pub regime: String,
    pub condition_number: f64,
    pub eigenvalues_descending: Vec<f64>,
    #[serde(skip)]
    pub matrix: Vec<f64>,
}

/// Σ = D^½ C D^½: a correlation matrix with the given variances.
pub fn with_variances(corr: &[f64], variances: &[f64]) -> Vec<f64> {
    let n = variances.len();
    (0..n * n)
        .map(|k| corr[k] * (variances[k / n] * variances[k % n]).sqrt())
        .collect()
}

/// The correlation of a synthetic panel, raw and Marchenko–Pastur clipped: computed once per
/// scenario set, then combined with whichever real variances an estimate needs.
#[derive(Debug, Clone)]
pub struct SyntheticCorrelation {
    pub raw: Vec<f64>,
    pub clipped: Vec<f64>,
}

impl SyntheticCorrelation {
    /// From synthetic daily cross-sections (row-major, `n` columns).
    pub fn from_rows(rows: &[f64], n: usize) -> Self {
        let raw = correlation_from_covariance(&covariance_matrix(rows, n, 1), n);
        let clipped = marchenko_pastur_clip(&raw, n, rows.len() / n).cleaned_correlation;
        Self { raw, clipped }
    }
}

/// The estimator names, in the order [`estimate_matrices`] returns them.
pub const METHODS: [&str; 6] = [
    "sample",
    "ledoit-wolf",
    "marchenko-pastur",
    "diffusion",
    "diffusion+mp",
    "shrunk-to-diffusion",
];

/// Every estimator's N × N covariance, in the order of [`METHODS`]: the classical ones from the
/// real daily returns `real` (row-major, `n` columns); the diffusion ones from the synthetic
/// correlation with `diffusion_variances` (the recent real variances) on the diagonal; the last
/// shrinks the real sample covariance towards the synthetic correlation (a target rather than a
/// replacement), by the Ledoit–Wolf intensity.
pub fn estimate_matrices(
    real: &[f64],
    n: usize,
    synthetic: &SyntheticCorrelation,
    diffusion_variances: &[f64],
) -> Vec<Vec<f64>> {
    let sample = covariance_matrix(real, n, 1);
    let variances: Vec<f64> = (0..n).map(|i| sample[i * n + i]).collect();
    let mp = marchenko_pastur_clip(&correlation_from_covariance(&sample, n), n, real.len() / n);
    let mp = with_variances(&mp.cleaned_correlation, &variances);
    let lw = ledoit_wolf(real, n).1;
    vec![
        sample,
        lw,
        mp,
        with_variances(&synthetic.raw, diffusion_variances),
        with_variances(&synthetic.clipped, diffusion_variances),
        shrink_to_correlation(real, n, &synthetic.raw).1,
    ]
}

/// The six estimators for one regime: the real train days of the regime (whose variances also
/// scale the synthetic correlation) and a synthetic panel.
pub fn estimates(real_days: &DailyPanel, synthetic: &[f64], regime: &str) -> Vec<Estimate> {
    let n = real_days.assets;
    let variances = column_variances(&real_days.values, n);
    let synthetic = SyntheticCorrelation::from_rows(synthetic, n);
    estimate_matrices(&real_days.values, n, &synthetic, &variances)
        .into_iter()
        .zip(METHODS)
        .map(|(matrix, method)| {
            let mut eig = symmetric_eigen(&matrix, n).0;
            eig.reverse();
            Estimate {
                method: method.into(),
                regime: regime.into(),
                condition_number: condition_number(&matrix, n),
                eigenvalues_descending: eig,
                matrix,
            }
        })
        .collect()
}

/// Every estimator's matrix for the regime of each diffusion scenario file, over the assets of
/// the real windows.
#[derive(Debug, Clone)]
pub struct CovarianceReport {
    pub assets: Vec<String>,
    pub estimates: Vec<Estimate>,
}

/// Runs every estimator for the regime of each diffusion scenario file; writes nothing (see
/// [`CovarianceReport`]'s [`crate::report::StageReport`]).
pub fn run(config: &CovarianceConfig) -> Result<CovarianceReport> {
    let set = WindowSet::read(&config.real)?;
    let n = set.assets.len();
    let mut all = Vec::new();
    for_each_diffusion_set(&config.scenarios, |s| {
        if s.assets != set.assets {
            return Err(Error::bad_file(
                &s.path,
                format!(
                    "assets {:?} differ from the real windows' {:?}",
                    s.assets, set.assets
                ),
            ));
        }
        let regime = set.rule.index_of(&s.regime)?;
        let days =
            DailyPanel::from_windows(&set, Some(regime), SplitChoice::Train, config.test_from);
        if days.len() <= n {
            return Err(Error::option(
                "test_from",
                crate::io::format_date(config.test_from),
                format!(
                    "regime `{}` has {} train days for {n} assets",
                    s.regime,
                    days.len()
                ),
            ));
        }
        all.extend(estimates(&days, &s.values, &s.regime));
        Ok(())
    })?;
    Ok(CovarianceReport {
        assets: set.assets,
        estimates: all,
    })
}
