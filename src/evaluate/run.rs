//! `scengen evaluate`: score scenario files against the real windows of their regime, next to a
//! real-vs-real noise floor ([`report`](super::report) writes the result).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::headline::{energy_distance_row, headline, HeadlineRow};
use super::memorization::{memorization, Memorization};
use super::metrics::{set_metrics, Paths, Reference, SetMetrics};
use crate::data::{default_test_from, DailyPanel, SplitChoice, WindowSet, DEFAULT_WINDOWS};
use crate::error::{Error, Result};
use crate::io::format_date;
use crate::report::REPORTS;
use crate::scenarios::{generator_settings, read_scenarios, set_labels, ScenarioSet};
use crate::stats::{energy_distance_with_spread, energy_spread, mean, std_dev};

/// Settings of one evaluation.
#[derive(Debug, Clone)]
pub struct EvaluateConfig {
    pub real: PathBuf,
    pub regime: String,
    pub split: SplitChoice,
    pub test_from: i32,
    /// Scenario files with an optional label (default: the file stem).
    pub synthetic: Vec<(PathBuf, Option<String>)>,
    /// The label of one of the sets: every other set's energy distance to it is reported (the
    /// sampler sweep's reference is the model's own 1,000-step DDPM set).
    pub distance_to: Option<String>,
    /// Days whose windows are left out of the reference (and of its noise floor): how much of
    /// a gap one event makes, such as a crash inside windows whose regime was set before it.
    pub without: Vec<i32>,
    pub out: PathBuf,
}

/// The defaults: the test windows (from [`default_test_from`]) of [`DEFAULT_WINDOWS`]. The
/// regime and the scenario files have none; `out` is `reports/<regime>` ([`default_out`]).
impl Default for EvaluateConfig {
    fn default() -> Self {
        Self {
            real: DEFAULT_WINDOWS.into(),
            regime: String::new(),
            split: SplitChoice::Test,
            test_from: default_test_from(),
            synthetic: Vec::new(),
            distance_to: None,
            without: Vec::new(),
            out: PathBuf::new(),
        }
    }
}

/// Where a regime's evaluation goes unless told otherwise: `reports/<regime>`.
pub fn default_out(regime: &str) -> PathBuf {
    Path::new(REPORTS).join(regime)
}

/// One scored set.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredSet {
    pub label: String,
    pub file: Option<String>,
    pub method: Option<String>,
    /// How the file was generated ([`generator_settings`]); empty for the noise floor.
    pub generator: BTreeMap<String, String>,
    pub metrics: SetMetrics,
    pub memorization: Memorization,
    /// The two-sample energy distance of its paths to the `distance_to` set's
    /// ([`crate::stats::energy_distance`], paths as window x assets vectors); none for that set
    /// itself, the noise floor, or without `distance_to`.
    pub energy_distance: Option<f64>,
}

/// Everything `metrics.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub regime: String,
    pub split: String,
    pub test_from: String,
    pub real_file: String,
    pub assets: Vec<String>,
    pub window: usize,
    pub reference_windows: usize,
    /// The days whose windows were left out (`without`) and how many windows that removed.
    pub without: Vec<String>,
    pub left_out_windows: usize,
    pub reference_distinct_days: usize,
    pub reference_non_overlapping_windows: usize,
    pub reference: SetMetrics,
    pub reference_memorization: Memorization,
    pub sets: Vec<ScoredSet>,
    /// The label the sets' energy distances are measured to.
    pub distance_to: Option<String>,
    pub noise_floor: ScoredSet,
    pub headline: Vec<HeadlineRow>,
    pub p_values_note: &'static str,
}

const P_VALUES_NOTE: &str = "Real daily returns enter the tests once per distinct day and window-horizon returns only from non-overlapping windows, so no real observation is counted twice. Consecutive real days are still dependent (volatility clustering), so p-values are indicative, not exact.";

/// Runs the evaluation and writes its outputs; returns what was written.
pub fn run(config: &EvaluateConfig) -> Result<Evaluation> {
    if config.synthetic.is_empty() {
        return Err(Error::option(
            "synthetic",
            "",
            "give at least one scenario file",
        ));
    }
    let (labels, distance_to) = labels_and_target(config)?;
    let set = WindowSet::read(&config.real)?;
    let (n, window) = (set.assets.len(), set.window);
    let split_name = format!("{:?}", config.split).to_lowercase();
    let (indices, left_out) = reference_windows(config, &set, &split_name)?;
    let scenarios = read_sets(config, &set, labels)?;

    let real_values = set.gather(&indices);
    let distinct = DailyPanel::from_windows_subset(&set, &indices);
    let non_overlapping = set.gather(&non_overlapping(&set, &indices));
    let reference = Reference {
        paths: Paths {
            values: &real_values,
            window,
            assets: n,
        },
        distinct_days: &distinct.values,
        non_overlapping: Paths {
            values: &non_overlapping,
            window,
            assets: n,
        },
        correlation: super::correlation_matrix(&distinct.values, n),
    };
    let (train_values, center, scale) = train_standardisation(&set, config.test_from);
    let memo = |values: &[f64]| memorization(values, &train_values, window * n, &center, &scale);

    let reference_metrics = set_metrics(&reference.paths, &reference, &set.assets);
    let reference_memorization = memo(&real_values)?;
    let mut sets = Vec::new();
    for (label, s) in &scenarios {
        let paths = Paths {
            values: &s.values,
            window,
            assets: n,
        };
        sets.push(ScoredSet {
            label: label.clone(),
            file: Some(s.path.display().to_string()),
            method: s.metadata.get(crate::io::meta::METHOD).cloned(),
            generator: generator_settings(&s.metadata),
            metrics: set_metrics(&paths, &reference, &set.assets),
            memorization: memo(&s.values)?,
            energy_distance: None,
        });
    }
    if let Some(target) = distance_to {
        add_energy_distances(&mut sets, &scenarios, target, window * n);
    }
    let noise_floor = noise_floor(&set, &indices, &memo)?;
    let headline = summary_rows(
        &reference_metrics,
        &sets,
        &noise_floor,
        distance_to.is_some(),
    );
    Ok(Evaluation {
        regime: config.regime.clone(),
        split: split_name,
        test_from: format_date(config.test_from),
        real_file: config.real.display().to_string(),
        assets: set.assets.clone(),
        window,
        reference_windows: indices.len(),
        without: config.without.iter().map(|&d| format_date(d)).collect(),
        left_out_windows: left_out,
        reference_distinct_days: distinct.len(),
        reference_non_overlapping_windows: non_overlapping.len() / (window * n),
        reference: reference_metrics,
        reference_memorization,
        sets,
        distance_to: config.distance_to.clone(),
        noise_floor,
        headline,
        p_values_note: P_VALUES_NOTE,
    })
}

/// The headline table of `sets` and the noise floor, with the energy distances' row when they
/// were measured.
fn summary_rows(
    reference: &SetMetrics,
    sets: &[ScoredSet],
    floor: &ScoredSet,
    with_distances: bool,
) -> Vec<HeadlineRow> {
    fn scored(s: &ScoredSet) -> (&SetMetrics, f64) {
        (&s.metrics, s.memorization.share_ratio_below_third)
    }
    let scored_sets: Vec<(&SetMetrics, f64)> = sets.iter().map(scored).collect();
    let mut rows = headline(reference, &scored_sets, scored(floor));
    if with_distances {
        let distances: Vec<Option<f64>> = sets.iter().map(|s| s.energy_distance).collect();
        rows.push(energy_distance_row(&distances));
    }
    rows
}

/// Each scenario file's label, and the index of the one `distance_to` names.
fn labels_and_target(config: &EvaluateConfig) -> Result<(Vec<String>, Option<usize>)> {
    let labels = set_labels(&config.synthetic)?;
    let target = match &config.distance_to {
        Some(label) => Some(labels.iter().position(|l| l == label).ok_or_else(|| {
            Error::option(
                "distance-to",
                label,
                format!("no scenario file has this label; the labels are {labels:?}"),
            )
        })?),
        None => None,
    };
    Ok((labels, target))
}

/// The reference: the regime's windows in the split, less those holding a `without` day (how
/// many that left out is the second value); at least 4, or an error names the option that
/// left fewer.
fn reference_windows(
    config: &EvaluateConfig,
    set: &WindowSet,
    split_name: &str,
) -> Result<(Vec<usize>, usize)> {
    let regime = set.rule.index_of(&config.regime)?;
    let selected = set.select(Some(regime), config.split, config.test_from);
    let indices = without_days(set, &selected, &config.without, &config.real)?;
    if indices.len() < 4 {
        let (option, value) = if selected.len() < 4 {
            ("split", split_name.to_string())
        } else {
            let days: Vec<String> = config.without.iter().map(|&d| format_date(d)).collect();
            ("without", days.join(","))
        };
        return Err(Error::option(
            option,
            value,
            format!(
                "{} holds {} windows of `{}` in that split (from {}){}; at least 4 are needed",
                config.real.display(),
                indices.len(),
                config.regime,
                format_date(config.test_from),
                if option == "without" {
                    " without those days"
                } else {
                    ""
                }
            ),
        ));
    }
    let left_out = selected.len() - indices.len();
    Ok((indices, left_out))
}

/// The windows of `indices` that hold none of the days `without`; each day must be one of the
/// windows file's (`file`), so that a mistyped date is not silently a no-op, and given once.
fn without_days(
    set: &WindowSet,
    indices: &[usize],
    without: &[i32],
    file: &Path,
) -> Result<Vec<usize>> {
    for (k, &day) in without.iter().enumerate() {
        if without[..k].contains(&day) {
            return Err(Error::option("without", format_date(day), "is given twice"));
        }
        if !set.dates.contains(&day) {
            return Err(Error::option(
                "without",
                format_date(day),
                format!("is not a day of {}", file.display()),
            ));
        }
    }
    Ok(indices
        .iter()
        .copied()
        .filter(|&w| {
            let info = &set.windows[w];
            !without
                .iter()
                .any(|&day| (info.start_date..=info.end_date).contains(&day))
        })
        .collect())
}

/// Each set's energy distance to set `target` (none for the target itself).
fn add_energy_distances(
    sets: &mut [ScoredSet],
    scenarios: &[(String, ScenarioSet)],
    target: usize,
    dim: usize,
) {
    let reference = &scenarios[target].1.values;
    let spread = energy_spread(reference, dim);
    for (i, (scored, (_, s))) in sets.iter_mut().zip(scenarios).enumerate() {
        if i != target {
            scored.energy_distance = Some(energy_distance_with_spread(
                &s.values, reference, dim, spread,
            ));
        }
    }
}

/// Every scenario file with its label, checked against the real windows: the same assets,
/// path length and regime.
fn read_sets(
    config: &EvaluateConfig,
    set: &WindowSet,
    labels: Vec<String>,
) -> Result<Vec<(String, ScenarioSet)>> {
    config
        .synthetic
        .iter()
        .zip(labels)
        .map(|((path, _), label)| {
            let s = read_scenarios(path)?;
            if s.assets != set.assets {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "assets {:?} differ from the real windows' {:?}",
                        s.assets, set.assets
                    ),
                ));
            }
            if s.window != set.window {
                return Err(Error::bad_file(
                    path,
                    format!(
                        "paths of {} days, the real windows have {}",
                        s.window, set.window
                    ),
                ));
            }
            if s.regime != config.regime {
                return Err(Error::bad_file(
                    path,
                    format!("holds regime `{}`, not `{}`", s.regime, config.regime),
                ));
            }
            Ok((label, s))
        })
        .collect()
}

/// The train windows of every regime (what memorisation is measured against), with each
/// asset's mean and standard deviation over them.
fn train_standardisation(set: &WindowSet, test_from: i32) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = set.assets.len();
    let train_values = set.gather(&set.select(None, SplitChoice::Train, test_from));
    let (center, scale) = (0..n)
        .map(|a| {
            let col: Vec<f64> = train_values.iter().skip(a).step_by(n).copied().collect();
            (mean(&col), std_dev(&col, 1))
        })
        .unzip();
    (train_values, center, scale)
}

/// Windows of `indices` that share no day: each starts after the previous one ends.
fn non_overlapping(set: &WindowSet, indices: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for &w in indices {
        if out
            .last()
            .is_none_or(|&p| set.windows[w].start_date > set.windows[p].end_date)
        {
            out.push(w);
        }
    }
    out
}

/// The earlier half of the real windows scored against the later half (windows of the later
/// half that share a day with the earlier half are dropped).
fn noise_floor(
    set: &WindowSet,
    indices: &[usize],
    memo: &dyn Fn(&[f64]) -> candle_core::Result<Memorization>,
) -> Result<ScoredSet> {
    let (n, window) = (set.assets.len(), set.window);
    let half = indices.len() / 2;
    let first = &indices[..half];
    let boundary = set.windows[first[first.len() - 1]].end_date;
    let second: Vec<usize> = indices[half..]
        .iter()
        .copied()
        .filter(|&w| set.windows[w].start_date > boundary)
        .collect();
    let second = if second.is_empty() {
        indices[half..].to_vec()
    } else {
        second
    };
    let a = set.gather(first);
    let b = set.gather(&second);
    let b_days = DailyPanel::from_windows_subset(set, &second);
    let b_non = set.gather(&non_overlapping(set, &second));
    let reference = Reference {
        paths: Paths {
            values: &b,
            window,
            assets: n,
        },
        distinct_days: &b_days.values,
        non_overlapping: Paths {
            values: &b_non,
            window,
            assets: n,
        },
        correlation: super::correlation_matrix(&b_days.values, n),
    };
    Ok(ScoredSet {
        label: "noise floor (real vs real)".into(),
        file: None,
        method: None,
        generator: BTreeMap::new(),
        metrics: set_metrics(
            &Paths {
                values: &a,
                window,
                assets: n,
            },
            &reference,
            &set.assets,
        ),
        memorization: memo(&a)?,
        energy_distance: None,
    })
}
