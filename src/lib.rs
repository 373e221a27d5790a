//! scengen: financial market scenarios from diffusion models.
//!
//! The library is organised by pipeline stage: [`data`] (ingest), [`model`] (the network),
//! [`diffusion`] (schedules and samplers), [`train`], [`sample`] (generation and its
//! benchmark), [`baselines`] (classical generators), [`eval`] and [`report`] (scoring and
//! HTML), [`covariance`] (estimators for portfolios) and [`portfolio`]
//! (minimum-variance weights and their backtest), and [`risk`] (a portfolio's VaR, CVaR and
//! stress P&L over scenario paths); [`stats`], [`io`] and [`rng`] serve them
//! all. [`cli`] only parses options and calls them, and [`demo`] runs the whole pipeline on the
//! embedded data.

pub mod baselines;
pub mod cli;
pub mod covariance;
pub mod data;
pub mod demo;
pub mod device;
pub mod diffusion;
pub mod error;
pub mod eval;
pub mod io;
pub mod model;
pub mod portfolio;
pub mod report;
pub mod risk;
pub mod rng;
pub mod sample;
pub mod stats;
pub mod train;

pub use error::{Error, Result};
