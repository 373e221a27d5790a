//! Dates as days since 1970-01-01 (Arrow's `date32`), parsed and printed as ISO `YYYY-MM-DD`.

use chrono::{Duration, NaiveDate};

use crate::error::{Error, Result};

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid epoch")
}

/// The first and last day numbers a date column may hold: years 1000 to 9999, the dates
/// `YYYY-MM-DD` can write.
pub const DAY_RANGE: std::ops::RangeInclusive<i32> = -354_285..=2_932_896;

fn date_of(days: i32) -> Option<NaiveDate> {
    epoch().checked_add_signed(Duration::days(days as i64))
}

/// `YYYY-MM-DD` of a day number; one no calendar date has (date columns are checked against
/// [`DAY_RANGE`] as they are read, so only a corrupt file's would) is written as the number.
pub fn format_date(days: i32) -> String {
    match date_of(days) {
        Some(d) => d.format("%Y-%m-%d").to_string(),
        None => format!("day {days}"),
    }
}

/// (year, month 1–12) of a day number; (0, 1) for one no calendar date has.
pub fn year_month(days: i32) -> (i32, u32) {
    use chrono::Datelike;
    date_of(days).map_or((0, 1), |d| (d.year(), d.month()))
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
