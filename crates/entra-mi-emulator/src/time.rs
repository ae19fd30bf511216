//! Wall-clock helpers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Formats epoch seconds (UTC) the way legacy App Service does:
/// `MM/DD/YYYY hh:mm:ss AM +00:00` (12-hour clock, zero-padded).
pub(crate) fn legacy_app_service_date(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hour24, min, sec) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let (hour12, half) = match hour24 {
        0 => (12, "AM"),
        1..=11 => (hour24, "AM"),
        12 => (12, "PM"),
        _ => (hour24 - 12, "PM"),
    };
    format!("{m:02}/{d:02}/{y:04} {hour12:02}:{min:02}:{sec:02} {half} +00:00")
}

/// Now as RFC 3339 UTC with seconds (`2026-11-27T21:40:00Z`), as Graph writes timestamps.
pub(crate) fn rfc3339_now() -> String {
    let epoch = now_secs() as i64;
    let (y, m, d) = civil_from_days(epoch.div_euclid(86_400));
    let secs = epoch.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); H. Hinnant's algorithm.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_legacy_dates() {
        assert_eq!(legacy_app_service_date(0), "01/01/1970 12:00:00 AM +00:00");
        // 2017-09-14T12:00:00Z
        assert_eq!(
            legacy_app_service_date(1_505_390_400),
            "09/14/2017 12:00:00 PM +00:00"
        );
        // 2020-01-16T05:24:12Z
        assert_eq!(
            legacy_app_service_date(1_579_152_252),
            "01/16/2020 05:24:12 AM +00:00"
        );
        // 2024-02-29T23:59:59Z
        assert_eq!(
            legacy_app_service_date(1_709_251_199),
            "02/29/2024 11:59:59 PM +00:00"
        );
    }
}
