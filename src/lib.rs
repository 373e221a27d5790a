//! scengen: financial market scenarios from diffusion models.
//!
//! The library is organised by pipeline stage, each module named after its command:
//! [`data`] (`ingest`: panels, returns, regimes and the windows file), [`model`] (the network,
//! its fitted prior, its noise prediction and the model folder), [`diffusion`] (schedules and
//! samplers, apart from any network), [`train`], [`distill`] (a trained model fine-tuned for a
//! few-step sampler), [`generate`] (the sampling loop and guidance,
//! and `bench`), [`baselines`] (the classical generators), [`scenarios`] (the scenario file that
//! every generator writes and every analysis reads), [`evaluate`], [`covariance`],
//! [`backtest`] (minimum-variance portfolios out of sample), [`risk`] (a portfolio's VaR, CVaR
//! and stress P&L over scenario paths), [`forecasters`] (every generator's scenarios as of a close), [`var_backtest`] and
//! [`forecast_backtest`] (every generator's scenarios scored as of each day with proper
//! scoring rules); [`report`] (the HTML toolkit),
//! [`stats`], [`io`], [`device`] and [`rng`] serve them all; [`pipeline`] runs a whole
//! nightly run of the stages, re-running only what changed (`scengen run`).
//!
//! Dependencies run one way: a stage imports the stages before it and the shared modules, never
//! one that imports it back (`docs/architecture.md`). The library sees no command-line flag: the
//! `scengen` binary (`src/main.rs`, `src/cli/`, `src/demo.rs`) turns flags into each stage's
//! config and a [`Error::InvalidOption`] naming a config field into the flag's name.

pub mod backtest;
pub mod baselines;
pub mod covariance;
pub mod data;
pub mod device;
pub mod diffusion;
pub mod distill;
pub mod error;
pub mod evaluate;
pub mod forecast_backtest;
pub mod forecasters;
pub mod generate;
pub mod io;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod risk;
pub mod rng;
pub mod scenarios;
pub mod stats;
pub mod train;
pub mod var_backtest;

pub use error::{Error, Result};
