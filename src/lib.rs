//! scengen: financial market scenarios from diffusion models.
//!
//! The library is organised by pipeline stage: [`data`] (ingest), [`model`] (the network),
//! [`diffusion`] (schedules and samplers), [`train`], [`sample`] (generation), [`eval`] and
//! [`report`]; [`cli`] only parses options and calls them.

pub mod cli;
pub mod data;
pub mod demo;
pub mod error;
pub mod io;
pub mod stats;

pub use error::{Error, Result};
