//! Dates as days since 1970-01-01 (Arrow's `date32`), parsed and printed as ISO `YYYY-MM-DD`.

use chrono::{Duration, NaiveDate};

use crate::error::{Error, Result};

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(days: i32) -> String {
    (epoch() + Duration::days(days as i64))
        .format("%Y-%m-%d")
        .to_string()
}

/// (year, month 1–12) of a day number.
pub fn year_month(days: i32) -> (i32, u32) {
    use chrono::Datelike;
    let d = epoch() + Duration::days(days as i64);
    (d.year(), d.month())
}

/// A day number as a fractional year (for plot axes).
pub fn decimal_year(days: i32) -> f64 {
    1970.0 + days as f64 / 365.2425
}

/// Day number of a `YYYY-MM-DD` string given for `option`.
pub fn parse_date(option: &str, text: &str) -> Result<i32> {
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|e| Error::option(option, text, format!("expected YYYY-MM-DD ({e})")))?;
    Ok((date - epoch()).num_days() as i32)
}
