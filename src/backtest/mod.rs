//! `scengen backtest`: portfolio construction from covariance estimates and its out-of-sample
//! test. Minimum-variance weights (closed-form and long-only) in `min_variance.rs`; the backtest
//! that rebuilds them on each rebalance date from every estimator and records what they would
//! have earned in `run.rs`; its files and page in `report.rs`.

mod min_variance;
mod report;
mod run;

pub use min_variance::{
    global_min_variance, kkt_conditions, long_only_min_variance, KktConditions,
};
pub use report::{strategy_name, summary_text};
pub use run::{
    cumulative_wealth, max_drawdown, run, Backtest, BacktestConfig, Rebalance, Strategy,
    StrategySummary, EQUAL_WEIGHT, PORTFOLIOS,
};
