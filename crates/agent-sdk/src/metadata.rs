//! The registration metadata every agent sends by default — `version`, `hostname`, `pid`,
//! `started_at` (RFC 3339, UTC) and `sdk` — merged with the author's own entries, which win.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

/// The default metadata, computed once per runner.
pub(crate) fn defaults(version: &str, started: SystemTime) -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("version".into(), version.into());
    metadata.insert("hostname".into(), hostname().into());
    metadata.insert("pid".into(), std::process::id().into());
    metadata.insert("started_at".into(), rfc3339(started).into());
    metadata.insert(
        "sdk".into(),
        concat!("sentinel-agent-sdk/", env!("CARGO_PKG_VERSION")).into(),
    );
    metadata
}

/// The machine's host name, without unsafe code: the kernel's view first, then the usual file,
/// then the environment.
#[allow(
    clippy::disallowed_methods,
    reason = "read once when the runner is built, before any connection"
)]
pub(crate) fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_string())
        .chain(std::env::var("HOSTNAME").ok())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `time` (UTC, whole seconds).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (days-to-civil, using
/// 400-year eras of 146 097 days that start on March 1st).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn defaults_name_the_process() {
        let metadata = defaults("1.2.3", SystemTime::now());
        assert_eq!(metadata["version"], "1.2.3");
        assert_eq!(metadata["pid"], std::process::id());
        assert!(!metadata["hostname"].as_str().unwrap().is_empty());
        assert!(metadata["started_at"].as_str().unwrap().ends_with('Z'));
    }
}
