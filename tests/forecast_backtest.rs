//! The forecast backtest on the embedded prices (five of the stocks, a short test period):
//! determinism, no look-ahead, the scores recomputed from the files, and each bad option by
//! its error with nothing written. The scoring rules themselves:
//! tests/statistics/scoring.rs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::*;
use scengen::baselines::{generate_baseline, BaselineConfig, Method};
use scengen::data::{ingest, IngestConfig, SignalSource};
use scengen::error::Error;
use scengen::forecast_backtest::{forecasts_as_of, run, ForecastBacktestConfig};
use scengen::forecasters::{DIFFUSION_STATE, FHS, HISTORICAL};
use scengen::io::{parse_date, read_parquet};
use scengen::report::StageReport;
use scengen::stats::{energy_score, Estimator};

const ASSETS: [&str; 5] = ["AAPL", "JPM", "XOM", "MSFT", "WMT"];

/// Windows of five embedded stocks and, per regime, Gaussian and bootstrap sets fitted on the
/// days before 2016 (200 paths each), built once.
fn inputs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let windows = dir.join("windows.parquet");
        let mut c = IngestConfig::embedded(&windows);
        c.input = embedded_prices();
        c.assets = Some(ASSETS.iter().map(|a| a.to_string()).collect());
        c.signal = SignalSource::RealizedVol {
            path: embedded_index(),
            column: "SPX".into(),
        };
        ingest(&c).unwrap();
        let scenarios = dir.join("scenarios");
        std::fs::create_dir_all(&scenarios).unwrap();
        for method in [Method::Gaussian, Method::Bootstrap] {
            for regime in ["low-vix", "normal", "high-vix"] {
                generate_baseline(&BaselineConfig {
                    method,
                    data: windows.clone(),
                    regime: regime.into(),
                    n: 200,
                    seed: 3,
                    out: scenarios.join(format!("{regime}-{}.parquet", method.name())),
                    ..BaselineConfig::default()
                })
                .unwrap();
            }
        }
        dir
    })
}

/// The first half of 2016, every 10 trading days, horizons 1 and 5, 100 paths, 250 days of
/// historical simulation.
fn config(out: &Path) -> ForecastBacktestConfig {
    ForecastBacktestConfig {
        prices: embedded_prices(),
        to: Some(parse_date("t", "2016-06-30").unwrap()),
        every: 10,
        horizons: vec![1, 5],
        paths: 100,
        lookback: 250,
        scenarios: vec![inputs().join("scenarios")],
        signal: SignalSource::RealizedVol {
            path: embedded_index(),
            column: "SPX".into(),
        },
        out: out.to_path_buf(),
        ..ForecastBacktestConfig::default()
    }
}

#[test]
fn the_backtest_is_deterministic_and_scores_what_it_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir.path().join("a"));
    let b = run(&c).unwrap();
    b.write(&c.out).unwrap();
    let names: Vec<&str> = b.generators.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [FHS, HISTORICAL, "historical+ewma", "bootstrap", "gaussian"]
    );
    let h1 = &b.horizons[0];
    assert_eq!(h1.horizon, 1);
    assert_eq!(h1.dates[0], parse_date("t", "2016-01-04").unwrap());
    assert_eq!(h1.dates.len(), 13, "every 10th of 125 trading days");
    // Same seed, same numbers.
    let again = config(&dir.path().join("b"));
    run(&again).unwrap().write(&again.out).unwrap();
    let read = |p: &Path| std::fs::read(p.join("scores.parquet")).unwrap();
    assert_eq!(read(&c.out), read(&again.out));

    // The energy score of the first 5-day forecast, recomputed from the forecasts and the
    // price file.
    let date = b.horizons[1].dates[0];
    let forecasts = forecasts_as_of(&c, date, 5).unwrap();
    let prices =
        scengen::data::Panel::read(&embedded_prices(), "date", Some(&ASSETS.map(String::from)))
            .unwrap();
    let t = prices.dates.iter().position(|&d| d == date).unwrap();
    let y: Vec<f64> = (0..5)
        .map(|a| (prices.columns[a][t + 5] / prices.columns[a][t]).ln())
        .collect();
    for (g, (name, vectors)) in forecasts.iter().enumerate() {
        let want = energy_score(vectors, 5, &y, Estimator::Fair);
        let got = b.horizons[1].scores[g][0].energy;
        assert!(
            (got - want).abs() <= 1e-12 * want,
            "{name}: {got} against {want}"
        );
    }
    let table = read_parquet(c.out.join("scores.parquet")).unwrap();
    assert_eq!(
        table.column_names(),
        ["date", "generator", "horizon", "score", "value"]
    );
    // 13 + 12 dates, 5 generators, 4 scores + PIT + 5 assets' CRPS.
    assert_eq!(table.batch.num_rows(), (13 + 12) * 5 * 10);
}

/// A copy of a Parquet file's rows up to `last` (inclusive), as a new file.
fn truncated(source: &Path, last: i32, out: &Path) -> PathBuf {
    let table = read_parquet(source).unwrap();
    let dates = scengen::io::date_column(&table, "date").unwrap();
    let keep = dates.iter().filter(|&&d| d <= last).count();
    let batch = table.batch.slice(0, keep);
    scengen::io::write_batches(
        scengen::io::AtomicFile::new(out).unwrap(),
        batch.schema(),
        &Default::default(),
        [Ok(batch)],
    )
    .unwrap();
    out.to_path_buf()
}

/// `c` with the prices and the index cut after `date` (copies in `dir`).
fn cut_after(c: &ForecastBacktestConfig, date: i32, dir: &Path) -> ForecastBacktestConfig {
    let mut cut = c.clone();
    cut.prices = truncated(&embedded_prices(), date, &dir.join("prices.parquet"));
    cut.signal = SignalSource::RealizedVol {
        path: truncated(&embedded_index(), date, &dir.join("index.parquet")),
        column: "SPX".into(),
    };
    cut.to = None;
    cut
}

#[test]
fn a_forecast_uses_no_data_after_its_date() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir.path().join("out"));
    let date = parse_date("t", "2016-03-01").unwrap();
    let full = forecasts_as_of(&c, date, 5).unwrap();
    let alone = forecasts_as_of(&cut_after(&c, date, dir.path()), date, 5).unwrap();
    assert_eq!(full.len(), 5);
    for ((name, a), (_, b)) in full.iter().zip(&alone) {
        assert_eq!(
            a, b,
            "{name}'s forecast changed when the data after its date went"
        );
    }
}

fn assert_fails_cleanly(c: &ForecastBacktestConfig, check: impl Fn(&Error) -> bool) {
    assert_stage_fails_cleanly(run(c), &c.out, check);
}

#[test]
fn bad_options_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // An empty period: it ends before the first forecast date has an outcome.
    let mut c = config(&out);
    c.to = Some(parse_date("t", "2016-01-05").unwrap());
    assert_fails_cleanly(&c, |e| {
        option_error(e, "from", "fewer than the 5-day horizon")
    });
    let mut c = config(&out);
    c.from = parse_date("t", "2030-01-01").unwrap();
    c.to = None;
    assert_fails_cleanly(&c, |e| option_error(e, "from", "no return day"));
    // A horizon longer than the scenario paths.
    let mut c = config(&out);
    c.horizons = vec![1, 31];
    c.lookback = 300;
    assert_fails_cleanly(&c, |e| {
        option_error(e, "horizons", "longer than the 30-day paths")
    });
    // Fewer than two paths, no forecast dates between, a decay outside (0, 1).
    let mut c = config(&out);
    c.paths = 1;
    assert_fails_cleanly(&c, |e| option_error(e, "paths", "at least 2"));
    let mut c = config(&out);
    c.every = 0;
    assert_fails_cleanly(&c, |e| option_error(e, "every", "at least 1"));
    let mut c = config(&out);
    c.ewma_lambda = 1.0;
    assert_fails_cleanly(&c, |e| {
        option_error(e, "ewma_lambda", "strictly between 0 and 1")
    });
    // Historical simulation needs more days than the horizon leaves.
    let mut c = config(&out);
    c.lookback = 20;
    assert_fails_cleanly(&c, |e| {
        option_error(e, "lookback", "fewer than 20 5-day outcomes")
    });
    // Scenarios fitted on the test period would look ahead.
    let mut c = config(&out);
    c.from = parse_date("t", "2015-06-01").unwrap();
    assert_fails_cleanly(&c, |e| e.to_string().contains("would look ahead"));
}

/// A one-epoch model of the five assets' windows before 2016, with 2 volatility levels.
fn five_asset_model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let model = inputs().join("model");
        let windows = inputs().join("windows.parquet");
        let test_from = parse_date("t", "2016-01-01").unwrap();
        let mut c = scengen::train::TrainConfig::new(&windows, &model, 3, test_from);
        c.architecture = Some(scengen::model::UNetConfig {
            assets: ASSETS.len(),
            ..small_embedded_arch()
        });
        c.epochs = 1;
        c.volatility_levels = 2;
        c.volatility_shocks = 1;
        c.market_shocks = 1;
        scengen::train::train(&c).unwrap();
        model
    })
}

#[test]
fn the_diffusion_model_as_of_a_date_uses_no_data_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("out"));
    c.model = Some(five_asset_model().to_path_buf());
    c.paths = 40;
    let date = parse_date("t", "2016-03-01").unwrap();
    let full = forecasts_as_of(&c, date, 5).unwrap();
    let names: Vec<&str> = full.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["diffusion", DIFFUSION_STATE]);
    assert_ne!(full[0].1, full[1].1, "the state changed nothing");
    let alone = forecasts_as_of(&cut_after(&c, date, dir.path()), date, 5).unwrap();
    assert_eq!(
        full[1], alone[1],
        "diffusion-state changed without the later data"
    );
}

/// `sampler` replaces the model's own sampler for both of its generators, and still uses no
/// data after the date; a sampler the model cannot run is refused by option.
#[test]
fn the_model_s_paths_are_drawn_with_the_sampler_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir.path().join("out"));
    c.model = Some(five_asset_model().to_path_buf());
    c.paths = 40;
    let date = parse_date("t", "2016-03-01").unwrap();
    let own = forecasts_as_of(&c, date, 5).unwrap();
    c.sampler = Some(scengen::diffusion::SamplerKind::PosteriorDraw {
        steps: 10,
        spacing: scengen::diffusion::Spacing::LogSnrBand,
    });
    let drawn = forecasts_as_of(&c, date, 5).unwrap();
    assert_ne!(own[0].1, drawn[0].1, "diffusion ignored the sampler");
    assert_ne!(own[1].1, drawn[1].1, "diffusion-state ignored the sampler");
    let alone = forecasts_as_of(&cut_after(&c, date, dir.path()), date, 5).unwrap();
    assert_eq!(drawn[1], alone[1]);

    c.sampler = Some(scengen::diffusion::SamplerKind::Ddim {
        steps: 5,
        eta: 2.0,
        spacing: scengen::diffusion::Spacing::Uniform,
    });
    assert_fails_cleanly(&c, |e| option_error(e, "eta", "[0, 1]"));
}
