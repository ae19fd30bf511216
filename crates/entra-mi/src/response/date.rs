//! The date formats token endpoints and `Retry-After` use, read into a [`SystemTime`]: the
//! crate's one conversion from a civil date to the epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `MM/DD/YYYY hh:mm:ss [AM|PM] ±hh:mm` (legacy App Service / Azure ML), RFC 3339, and
/// `YYYY-MM-DD hh:mm:ss` (UTC).
pub(super) fn parse_date(s: &str) -> Option<SystemTime> {
    if s.contains('/') {
        let mut parts = s.split_whitespace();
        let date = parts.next()?;
        let time = parts.next()?;
        let mut rest: Vec<&str> = parts.collect();
        let mut pm = None;
        if let Some(first) = rest.first() {
            match first.to_ascii_uppercase().as_str() {
                "AM" => pm = Some(false),
                "PM" => pm = Some(true),
                _ => {}
            }
            if pm.is_some() {
                rest.remove(0);
            }
        }
        let offset = match rest.as_slice() {
            [] => 0,
            [o] => parse_offset(o)?,
            _ => return None,
        };
        let mut d = date.split('/');
        let (month, day, year) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
        if d.next().is_some() {
            return None;
        }
        let (mut hour, minute, second) = hms(time)?;
        if let Some(pm) = pm {
            if hour > 12 {
                return None;
            }
            hour = hour % 12 + if pm { 12 } else { 0 };
        }
        return civil(year, month, day, hour, minute, second, offset);
    }
    // RFC 3339 / ISO 8601 with `T` or a space.
    let (date, rest) = s.split_at_checked(10)?;
    let mut d = date.split('-');
    let (year, month, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        (&rest[..pos], parse_offset(&rest[pos..])?)
    } else {
        (rest, 0)
    };
    let time = time.split('.').next()?;
    let (hour, minute, second) = hms(time)?;
    civil(year, month, day, hour, minute, second, offset)
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn hms(s: &str) -> Option<(i64, i64, i64)> {
    let mut t = s.split(':');
    let r = (num(t.next()?)?, num(t.next()?)?, num(t.next()?)?);
    if t.next().is_some() {
        return None;
    }
    Some(r)
}

/// `+hh:mm`, `-hh:mm`, `+hhmm` → seconds east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    // Digits only before slicing: a multi-byte character would put a byte index mid-character.
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h = num(&digits[..2])?;
    let m = num(&digits[2..])?;
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// The instant of a UTC-offset civil date and time (`offset` in seconds east of UTC), by Howard
/// Hinnant's `days_from_civil`; `None` outside 1970–9999 or for a field out of range.
fn civil(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    offset: i64,
) -> Option<SystemTime> {
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// An HTTP date in its IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7).
pub(super) fn parse_http_date(value: &str) -> Option<SystemTime> {
    let rest = value.split_once(", ")?.1;
    let mut p = rest.split_whitespace();
    let day = num(p.next()?)?;
    let month = match p.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = num(p.next()?)?;
    let (h, m, s) = hms(p.next()?)?;
    civil(year, month, day, h, m, s, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_of_every_documented_shape() {
        // 2017-09-14 12:00:00 UTC ("00:00:00 PM" is the Learn sample's odd noon).
        assert_eq!(
            parse_date("09/14/2017 00:00:00 PM +00:00"),
            Some(at(1_505_390_400))
        );
        assert_eq!(
            parse_date("1/16/2020 5:24:12 AM +00:00"),
            Some(at(1_579_152_252))
        );
        assert_eq!(
            parse_date("06/20/2019 02:57:58 +00:00"),
            Some(at(1_560_999_478))
        );
        assert_eq!(parse_date("2019-06-20T02:57:58Z"), Some(at(1_560_999_478)));
        assert_eq!(
            parse_date("2019-06-20T04:57:58.123+02:00"),
            Some(at(1_560_999_478))
        );
        assert_eq!(parse_date("2019-06-20 02:57:58"), Some(at(1_560_999_478)));
        assert_eq!(
            parse_date("1/16/2020 5:24:12 PM -01:00"),
            Some(at(1_579_152_252 + 13 * 3600))
        );
        for bad in [
            "",
            "tomorrow",
            "13/40/2020 10:00:00",
            "2019-06-20",
            "1/2/3/4 1:2:3",
            "06/20/2019 25:00:00 +00:00",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn offsets_with_multibyte_characters_are_refused_not_a_panic() {
        for bad in [
            "1/1/2030 0:00:00 +1é1",
            "1/1/2030 0:00:00 AM -é:11",
            "2030-01-01T00:00:00+1é1",
            "2030-01-01T00:00:00-é11",
            "2030-01-01 00:00:00+ü:ü",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(at(784_111_777))
        );
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(at(253_402_300_799))
        );
        for bad in [
            "",
            "06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
