//! Distinct days behind a selection of windows: overlapping windows share days, and a stage that
//! needs daily returns (baselines, evaluation) counts each real day once, knowing which days
//! follow each other without a gap.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use super::windows::{SplitChoice, WindowSet};

/// Daily returns of distinct days in date order, with the contiguous stretches they form.
#[derive(Debug, Clone)]
pub struct DailyPanel {
    pub assets: usize,
    pub dates: Vec<i32>,
    /// `dates.len() * assets` returns, row-major.
    pub values: Vec<f64>,
    /// Index ranges of days that follow each other in the source series.
    pub stretches: Vec<Range<usize>>,
}

impl DailyPanel {
    /// The days of the windows of `regime` (all regimes for `None`) in `split`.
    pub fn from_windows(
        set: &WindowSet,
        regime: Option<usize>,
        split: SplitChoice,
        test_from: i32,
    ) -> Self {
        Self::from_windows_subset(set, &set.select(regime, split, test_from))
    }

    /// The days of the windows `indices`.
    pub fn from_windows_subset(set: &WindowSet, indices: &[usize]) -> Self {
        let n = set.assets.len();
        let mut by_date: BTreeMap<i32, &[f64]> = BTreeMap::new();
        let mut links: HashSet<(i32, i32)> = HashSet::new();
        for &w in indices {
            let values = set.window_values(w);
            let dates = &set.dates[w * set.window..(w + 1) * set.window];
            for day in 0..set.window {
                by_date
                    .entry(dates[day])
                    .or_insert(&values[day * n..(day + 1) * n]);
                if day > 0 {
                    links.insert((dates[day - 1], dates[day]));
                }
            }
        }
        let dates: Vec<i32> = by_date.keys().copied().collect();
        let values = by_date.values().flat_map(|r| r.iter().copied()).collect();
        let mut stretches = Vec::new();
        let mut start = 0;
        for i in 1..=dates.len() {
            if i == dates.len() || !links.contains(&(dates[i - 1], dates[i])) {
                stretches.push(start..i);
                start = i;
            }
        }
        Self {
            assets: n,
            dates,
            values,
            stretches,
        }
    }

    pub fn len(&self) -> usize {
        self.dates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    /// Returns of day `i`.
    pub fn day(&self, i: usize) -> &[f64] {
        &self.values[i * self.assets..(i + 1) * self.assets]
    }

    /// The series of one asset.
    pub fn column(&self, asset: usize) -> Vec<f64> {
        self.values
            .iter()
            .skip(asset)
            .step_by(self.assets)
            .copied()
            .collect()
    }
}
