//! The synthetic panel: its days have the covariance of the state they were drawn in, and it
//! goes through ingest with its own index as the regime signal, its stressed days labelled
//! high-vix.

use scengen::data::{
    ingest, write_synthetic_panel, IngestConfig, Panel, SignalSource, SyntheticConfig, ValueKind,
    WindowSet,
};

#[test]
fn a_synthetic_panel_has_the_covariance_of_its_states_and_ingests_into_its_regimes() {
    let dir = tempfile::tempdir().unwrap();
    let config = SyntheticConfig {
        assets: 12,
        factors: 3,
        days: 20_000,
        seed: 11,
        out: dir.path().join("panel.parquet"),
        index_out: dir.path().join("index.parquet"),
    };
    let truth = write_synthetic_panel(&config).unwrap();
    let panel = Panel::read(&config.out, "date", None).unwrap();
    assert_eq!((panel.assets.len(), panel.len()), (12, 20_000));
    let n = config.assets;
    for state in [0u8, 1] {
        let days: Vec<usize> = (0..panel.len())
            .filter(|&t| truth.states[t] == state)
            .collect();
        assert!(days.len() > 3000, "state {state}: {} days", days.len());
        let expected = config.covariance(&truth.loadings, state as usize);
        let mut worst_vol: f64 = 0.0;
        let mut worst_corr: f64 = 0.0;
        for i in 0..n {
            for j in 0..=i {
                let c: f64 = days
                    .iter()
                    .map(|&t| panel.columns[i][t] * panel.columns[j][t])
                    .sum::<f64>()
                    / days.len() as f64;
                let (vi, vj) = (expected[i * n + i], expected[j * n + j]);
                if i == j {
                    worst_vol = worst_vol.max((c.sqrt() / vi.sqrt() - 1.0).abs());
                } else {
                    let error = (c - expected[i * n + j]) / (vi * vj).sqrt();
                    worst_corr = worst_corr.max(error.abs());
                }
            }
        }
        // Standard errors at 3,000+ days: about 1.3% for a volatility, 0.018 for a correlation.
        assert!(
            worst_vol < 0.05,
            "state {state}: volatility off by {worst_vol}"
        );
        assert!(
            worst_corr < 0.07,
            "state {state}: correlation off by {worst_corr}"
        );
    }

    let windows = dir.path().join("windows.parquet");
    let ingest_config = IngestConfig {
        input: config.out.clone(),
        kind: ValueKind::LogReturns,
        stride: 10,
        signal: SignalSource::RealizedVol {
            path: config.index_out.clone(),
            column: "index".into(),
        },
        ..IngestConfig::embedded(&windows)
    };
    ingest(&ingest_config).unwrap();
    let set = WindowSet::read(&windows).unwrap();
    let high = set
        .rule
        .labels
        .iter()
        .position(|l| l == "high-vix")
        .unwrap();
    let low = set.rule.labels.iter().position(|l| l == "low-vix").unwrap();
    // A window's regime is known at the close before its first day: from the index's realised
    // volatility over the 21 days before, so it follows the states of those days.
    let stressed_share = |regime: usize| {
        let starts: Vec<usize> = set
            .windows
            .iter()
            .filter(|w| w.regime == regime)
            .map(|w| panel.dates.binary_search(&w.start_date).unwrap())
            .collect();
        assert!(
            starts.len() > 20,
            "regime {regime}: {} windows",
            starts.len()
        );
        let trailing =
            |t: usize| truth.states[t - 21..t].iter().filter(|&&s| s == 1).count() as f64 / 21.0;
        starts.iter().map(|&t| trailing(t)).sum::<f64>() / starts.len() as f64
    };
    assert!(
        stressed_share(high) > 0.8,
        "high-vix: {}",
        stressed_share(high)
    );
    assert!(
        stressed_share(low) < 0.05,
        "low-vix: {}",
        stressed_share(low)
    );
}
