//! Portfolio construction from covariance estimates and its out-of-sample test: minimum-variance
//! weights (closed-form and long-only), and the backtest that rebuilds them on each rebalance
//! date from every estimator and records what they would have earned.

mod backtest;
mod min_variance;
mod report;

pub use backtest::{
    cumulative_wealth, max_drawdown, run_backtest, Backtest, BacktestConfig, Rebalance, Strategy,
    StrategySummary, EQUAL_WEIGHT, PORTFOLIOS,
};
pub use min_variance::{
    global_min_variance, kkt_conditions, long_only_min_variance, KktConditions,
};
pub use report::{strategy_name, summary_text, write_backtest};
