//! The time a process itself wrote on a log line. Timing checks measure from it rather than
//! from when the harness read the line, so the pipe and a loaded machine's scheduling do not
//! count against the process under test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ports::strip_ansi;

/// The RFC 3339 UTC timestamp a `tracing` formatter starts a line with
/// (`2026-12-02T14:55:01.123456Z`), ANSI colour codes ignored; `None` if the line has none.
pub fn stamped_at(line: &str) -> Option<SystemTime> {
    let plain = strip_ansi(line);
    let stamp = plain.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut parts = hms.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (parts.next()??, parts.next()??, parts.next()??);
    let nanos = format!("{fraction:0<9}").get(..9)?.parse::<u32>().ok()?;
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// How long after `since` the line says it was written; `None` without a timestamp.
pub fn stamped_after(line: &str, since: SystemTime) -> Option<Duration> {
    Some(
        stamped_at(line)?
            .duration_since(since)
            .unwrap_or(Duration::ZERO),
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_formatters_timestamp_with_or_without_colour() {
        let at = stamped_at("2026-12-02T14:55:01.250000Z  INFO sentinel: started").unwrap();
        let since_epoch = at.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(since_epoch, Duration::new(1_796_223_301, 250_000_000));
        let coloured = "\u{1b}[2m2026-12-02T14:55:01.250000Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x";
        assert_eq!(stamped_at(coloured), Some(at));
        assert_eq!(stamped_at("1970-01-01T00:00:00Z x"), Some(UNIX_EPOCH));
        assert_eq!(stamped_at("no timestamp here"), None);
        let later = stamped_after("2026-12-02T14:55:02.000000Z x", at).unwrap();
        assert_eq!(later, Duration::from_millis(750));
    }
}
