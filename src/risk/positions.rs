//! The portfolio file: the market value held in each asset, in TOML.
//!
//! ```toml
//! name = "equity book"   # optional
//! currency = "USD"       # optional, for the reports
//!
//! [positions]            # market value per asset; negative for a short position
//! AAPL = 2_000_000
//! JPM = -500_000.0
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The example book shipped in `data/`: the portfolio `risk` and `var-backtest` hold unless told
/// otherwise.
pub const EXAMPLE_PORTFOLIO: &str = "data/example_portfolio.toml";

/// A portfolio read from its file: positions in the order of their asset names.
#[derive(Debug, Clone, Serialize)]
pub struct Portfolio {
    pub file: PathBuf,
    pub name: Option<String>,
    pub currency: Option<String>,
    pub positions: Vec<Position>,
}

/// The market value held in one asset today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Position {
    pub asset: String,
    pub value: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortfolioFile {
    name: Option<String>,
    currency: Option<String>,
    positions: Option<BTreeMap<String, f64>>,
}

impl Portfolio {
    /// Reads and checks a portfolio file; the error names the file and the position at fault.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let parsed: PortfolioFile = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(String::new(), |s| {
                format!(" (line {})", line_of(&text, s.start))
            });
            Error::bad_file(
                path,
                format!("not a portfolio file: {}{line}", e.message().trim_end()),
            )
        })?;
        let positions = parsed.positions.unwrap_or_default();
        if positions.is_empty() {
            return Err(Error::bad_file(
                path,
                "no positions: give a [positions] table of asset = market value",
            ));
        }
        for (asset, &value) in &positions {
            if !value.is_finite() {
                return Err(Error::bad_file(
                    path,
                    format!("position `{asset}` has a market value of {value}"),
                ));
            }
        }
        if positions.values().all(|&v| v == 0.0) {
            return Err(Error::bad_file(path, "every position is zero"));
        }
        Ok(Self {
            file: path.to_path_buf(),
            name: parsed.name,
            currency: parsed.currency,
            positions: positions
                .into_iter()
                .map(|(asset, value)| Position { asset, value })
                .collect(),
        })
    }

    /// Sum of the absolute market values.
    pub fn gross(&self) -> f64 {
        self.positions.iter().map(|p| p.value.abs()).sum()
    }

    /// Sum of the market values.
    pub fn net(&self) -> f64 {
        self.positions.iter().map(|p| p.value).sum()
    }

    /// Each position's column among `assets` (the columns of `source`), with its value; an
    /// error names the position that `source` does not hold.
    pub fn exposures(&self, assets: &[String], source: &Path) -> Result<Vec<(usize, f64)>> {
        self.positions
            .iter()
            .map(|p| match assets.iter().position(|a| *a == p.asset) {
                Some(column) => Ok((column, p.value)),
                None => Err(Error::bad_file(
                    &self.file,
                    format!(
                        "position `{}` is not an asset of {} (assets: {})",
                        p.asset,
                        source.display(),
                        assets.join(", ")
                    ),
                )),
            })
            .collect()
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
