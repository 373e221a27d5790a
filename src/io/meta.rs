//! The `scengen.*` key-value metadata of every Parquet file the project writes (windows,
//! scenarios, backtest and risk outputs): each key defined once, here.

/// What every key starts with.
pub const PREFIX: &str = "scengen.";
/// The market close a diffusion set's paths start after (`generate --as-of`).
pub const AS_OF: &str = "scengen.as_of";
/// When the file was written: UTC, or `SOURCE_DATE_EPOCH` when set.
pub const CREATED: &str = "scengen.created";
/// The windows file a classical generator was fitted on.
pub const DATA: &str = "scengen.data";
/// The classifier-free guidance weight of a diffusion set.
pub const GUIDANCE: &str = "scengen.guidance";
/// Whether the ingested panel held prices or returns (and which returns).
pub const KIND: &str = "scengen.kind";
/// The regime labels, JSON.
pub const LABELS: &str = "scengen.labels";
/// A backtest's trailing return days.
pub const LOOKBACK: &str = "scengen.lookback";
/// The generator: `diffusion`, `gaussian`, `bootstrap` or `fhs`.
pub const METHOD: &str = "scengen.method";
/// The model folder a diffusion set was drawn from.
pub const MODEL: &str = "scengen.model";
/// SHA-256 of that model's weights.
pub const MODEL_SHA256: &str = "scengen.model_sha256";
/// How ingest treated missing or impossible values.
pub const ON_MISSING: &str = "scengen.on_missing";
/// A classical generator's fitted parameters, JSON.
pub const PARAMETERS: &str = "scengen.parameters";
/// The portfolio file a risk or VaR backtest held.
pub const PORTFOLIO: &str = "scengen.portfolio";
/// The price file of a backtest.
pub const PRICES: &str = "scengen.prices";
/// A backtest's rebalancing frequency.
pub const REBALANCE: &str = "scengen.rebalance";
/// The regime of a scenario set.
pub const REGIME: &str = "scengen.regime";
/// The sampler and its settings, JSON.
pub const SAMPLER: &str = "scengen.sampler";
/// The seed of a generated set.
pub const SEED: &str = "scengen.seed";
/// The definition of the regime signal.
pub const SIGNAL: &str = "scengen.signal";
/// The file the regime signal was read from.
pub const SIGNAL_FILE: &str = "scengen.signal_file";
/// SHA-256 of that file.
pub const SIGNAL_SHA256: &str = "scengen.signal_sha256";
/// The panel ingest read.
pub const SOURCE: &str = "scengen.source";
/// SHA-256 of that panel.
pub const SOURCE_SHA256: &str = "scengen.source_sha256";
/// Days between the starts of consecutive windows.
pub const STRIDE: &str = "scengen.stride";
/// First day of the held-out period the generator never saw (its training cut-off).
pub const TEST_FROM: &str = "scengen.test_from";
/// The regime thresholds, JSON.
pub const THRESHOLDS: &str = "scengen.thresholds";
/// Train days a classical generator was fitted on.
pub const TRAIN_DAYS: &str = "scengen.train_days";
/// A backtest's trailing days behind the variances.
pub const VARIANCE_DAYS: &str = "scengen.variance_days";
/// Days per window or path.
pub const WINDOW: &str = "scengen.window";
/// The winsorizing quantile, if any.
pub const WINSORIZE: &str = "scengen.winsorize";
/// Which part of a sharded run a scenario file holds, as `I/N` (absent in a whole run).
pub const SHARD: &str = "scengen.shard";
/// How many paths the whole run of a sharded scenario file has.
pub const PATHS: &str = "scengen.paths";
