//! Ingest: a Parquet panel of prices or returns becomes daily log returns, cut into rolling
//! windows, each labelled with the market regime known on its first day.

mod as_of;
mod days;
mod ingest;
mod panel;
mod regime;
mod returns;
mod synthetic;
mod windows;

pub use as_of::{require_history, AsOf, MarketDays, LATEST};
pub use days::DailyPanel;
pub use ingest::{ingest, IngestConfig, IngestSummary};
pub use panel::{OnMissing, Panel, ValueKind, DEFAULT_DATE_COLUMN};
pub use regime::{
    check_label, label_index, realized_vol, RegimeCalendar, RegimeRule, SignalSource,
    EMBEDDED_PRICES, REALIZED_VOL_DAYS, TRADING_DAYS,
};
pub use returns::{held_out_days, Returns};
pub use synthetic::{write_synthetic_panel, SyntheticConfig, SyntheticTruth};
pub use windows::{
    default_test_from, Split, SplitChoice, WindowInfo, WindowSet, DEFAULT_TEST_FROM,
    DEFAULT_WINDOWS,
};
