//! Parsing token-endpoint answers: every shape of `expires_on` / `expires_in` the sources send,
//! error bodies reduced to their code and description, and `Retry-After`.
//!
//! Nothing here ever copies a value from the body into an error: problems name the field and
//! its JSON kind only.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::{ServiceError, Unavailable};
use crate::http::RawResponse;
use crate::token::{AccessToken, MonotonicDeadlines};

/// Longest token lifetime accepted (managed-identity tokens live ~24 h).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Epoch seconds below this (2001-01-01) in `expires_on` are a relative lifetime, as MSAL.NET
/// reads them.
const RELATIVE_CUTOFF: u64 = 978_307_200;

/// When the request that produced a response was sent, on both clocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SentAt {
    pub(crate) monotonic: Duration,
    pub(crate) wall: SystemTime,
}

/// What the body of a non-success answer looked like.
pub(crate) enum ErrorBody {
    /// A JSON object with recognisable error fields.
    Service(ServiceError),
    /// HTML (a proxy or gateway page).
    Html,
    /// Anything else.
    Other,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn looks_like_html(response: &RawResponse) -> bool {
    let ct_html = response
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"));
    let body = trim_ascii_start(&response.body);
    ct_html || body.first() == Some(&b'<')
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

/// Parses the body as a JSON object, or says what it is instead.
pub(crate) fn json_object(response: &RawResponse) -> Result<Map<String, Value>, Unavailable> {
    if looks_like_html(response) {
        return Err(Unavailable::Html {
            status: response.status,
        });
    }
    if response.body.is_empty() {
        return Err(Unavailable::NotJson {
            status: response.status,
            what: "empty body".into(),
        });
    }
    if std::str::from_utf8(&response.body).is_err() {
        return Err(Unavailable::NotJson {
            status: response.status,
            what: "bytes that are not UTF-8".into(),
        });
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Unavailable::NotJson {
            status: response.status,
            what: format!("JSON {}", kind(&other)),
        }),
        Err(e) => Err(Unavailable::NotJson {
            status: response.status,
            what: match e.classify() {
                serde_json::error::Category::Eof => {
                    format!(
                        "truncated JSON (ends at line {} column {})",
                        e.line(),
                        e.column()
                    )
                }
                _ => format!("malformed JSON at line {} column {}", e.line(), e.column()),
            },
        }),
    }
}

/// Why a successful answer is for another token than the one asked for, if it is: its
/// `resource` names another API, or its `client_id` another identity than the client id
/// requested. Sources echo both; a token for the wrong API or identity must not be cached.
///
/// Resources are compared leniently, so that an echo in another spelling is no false alarm:
/// only two absolute URLs that differ in scheme, host, port or path (ignoring case and a
/// trailing slash) count as different; an answer for an application-id GUID or another form
/// is not judged. A client id is compared as a GUID, ignoring case (App Service answers in
/// upper case).
pub(crate) fn answered_for_another(
    map: &Map<String, Value>,
    requested_resource: &str,
    requested_client_id: Option<&str>,
) -> Option<String> {
    if let Some(Value::String(got)) = map.get("resource")
        && !same_resource(got, requested_resource)
    {
        return Some(format!(
            "the token is for resource {:?}, not the {requested_resource:?} asked for",
            truncate(got, 200)
        ));
    }
    if let (Some(want), Some(Value::String(got))) = (requested_client_id, map.get("client_id"))
        && crate::audience::is_guid(got)
        && !got.eq_ignore_ascii_case(want)
    {
        return Some(format!(
            "the token is for the identity with client id {got}, not {want} as asked"
        ));
    }
    None
}

fn same_resource(a: &str, b: &str) -> bool {
    let parts = |s: &str| {
        let url = url::Url::parse(s).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let path = url.path().trim_end_matches('/').to_ascii_lowercase();
        Some((
            url.scheme().to_owned(),
            host,
            url.port_or_known_default(),
            path,
        ))
    };
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Reads the error fields of a non-success body.
pub(crate) fn error_body(response: &RawResponse) -> ErrorBody {
    if looks_like_html(response) {
        return ErrorBody::Html;
    }
    let Ok(map) = json_object(response) else {
        return ErrorBody::Other;
    };
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.is_empty() => Some(truncate(s, 1024)),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    // Entra / IMDS: {"error": "...", "error_description": "..."}; App Service:
    // {"statusCode": 400, "message": "..."}; some gateways nest {"error": {"code", "message"}}.
    let (code, description) = match map.get("error") {
        Some(Value::Object(inner)) => (text(inner.get("code")), text(inner.get("message"))),
        other => (
            text(other),
            text(map.get("error_description"))
                .or_else(|| text(map.get("message")))
                .or_else(|| text(map.get("Message"))),
        ),
    };
    let code = code.or_else(|| text(map.get("statusCode")).map(|c| format!("statusCode {c}")));
    if code.is_none() && description.is_none() {
        return ErrorBody::Other;
    }
    ErrorBody::Service(ServiceError {
        status: response.status,
        code,
        description,
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Turns a success body into an [`AccessToken`] with deadlines on the monotonic clock.
///
/// `expires_in` (relative to `sent`) and `expires_on` (epoch number or string, the legacy App
/// Service date strings, RFC 3339) are both read, and the earlier deadline is kept (see
/// [`expiry`]); an already-expired token is refused. `refresh_in` is honoured when it falls
/// within the lifetime. Lifetimes that are zero, negative or longer than [`MAX_LIFETIME`] are
/// refused.
pub(crate) fn parse_token(
    response: &RawResponse,
    sent: SentAt,
    received_wall: SystemTime,
    received_mono: Duration,
) -> Result<AccessToken, Unavailable> {
    token_from_map(&json_object(response)?, sent, received_wall, received_mono)
}

/// [`parse_token`] of a body already read as a JSON object.
pub(crate) fn token_from_map(
    map: &Map<String, Value>,
    sent: SentAt,
    received_wall: SystemTime,
    received_mono: Duration,
) -> Result<AccessToken, Unavailable> {
    let invalid = |problem: String| Unavailable::InvalidResponse { problem };

    let secret = match map.get("access_token") {
        None => return Err(invalid("`access_token` is missing".into())),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(invalid("`access_token` is empty".into()));
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(invalid(format!(
                "`access_token` is {}, expected a string",
                kind(other)
            )));
        }
    };
    if !AccessToken::is_header_safe(secret) {
        return Err(invalid(
            "`access_token` contains characters that cannot be sent in an HTTP header".into(),
        ));
    }
    let token_type = match map.get("token_type") {
        None | Some(Value::Null) => "Bearer",
        Some(Value::String(s)) if s.is_empty() => "Bearer",
        Some(Value::String(s))
            if s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            s
        }
        Some(Value::String(_)) => {
            return Err(invalid("`token_type` is not a valid scheme name".into()));
        }
        Some(other) => {
            return Err(invalid(format!(
                "`token_type` is {}, expected a string",
                kind(other)
            )));
        }
    };

    let expires_in = seconds_field(map, "expires_in").map_err(invalid)?;
    let refresh_in = seconds_field(map, "refresh_in").map_err(invalid)?;
    let expires_on = match map.get("expires_on") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_expires_on(v).map_err(invalid)?),
    };
    let expiry = expiry(expires_in, expires_on, sent, received_wall, received_mono)?;
    let lifetime = expiry.expires_at_mono.saturating_sub(sent.monotonic);
    let refresh_at = refresh_in
        .map(Duration::from_secs)
        .filter(|r| !r.is_zero() && *r < lifetime);
    let mut token = AccessToken::new(secret.clone(), expiry.expires_on_wall)
        .with_token_type(token_type)
        .with_monotonic(MonotonicDeadlines {
            expires_at: expiry.expires_at_mono,
            refresh_at: refresh_at.map(|r| sent.monotonic + r),
        });
    if let Some(r) = refresh_at {
        token.set_refresh_on(sent.wall + r);
    }
    Ok(token)
}

/// How far apart a relative `expires_on` and `expires_in` may be and still agree: both count
/// whole seconds of one lifetime, rounded by the endpoint.
const RELATIVE_AGREEMENT: u64 = 5;

/// When a token expires: the expiry to report, and the deadline to schedule by.
struct Expiry {
    /// The server's `expires_on` when it sent an absolute one; otherwise the send time plus
    /// the lifetime it gave.
    expires_on_wall: SystemTime,
    /// The earliest deadline the answer states, on the monotonic clock.
    expires_at_mono: Duration,
}

/// Reads the answer's expiry fields.
///
/// * `expires_in` counts from the moment the request was sent (the token was issued after
///   that); an absolute `expires_on` is a point in time, measured against the wall clock at
///   receipt. When both are present, the **earlier** deadline is kept: an endpoint's own cache
///   can make `expires_in` stale, and a skewed clock can make `expires_on` misleading.
/// * An absolute `expires_on` at or before the receipt is an already-expired token: refused.
/// * An `expires_on` before 2001 is no point in time; MSAL.NET reads such a number as a
///   relative lifetime, but no managed-identity source is documented to send one, so it is
///   read so only where `expires_in` states the same lifetime, and refused otherwise.
/// * Every stated lifetime must be positive and at most [`MAX_LIFETIME`]; the bounds are
///   checked before any clock arithmetic (`SystemTime + Duration` panics on overflow, and the
///   body chooses these numbers).
fn expiry(
    expires_in: Option<u64>,
    expires_on: Option<ExpiresOn>,
    sent: SentAt,
    received_wall: SystemTime,
    received_mono: Duration,
) -> Result<Expiry, Unavailable> {
    let invalid = |problem: String| Unavailable::InvalidResponse { problem };
    // Each candidate: the field, the expiry to report, and the lifetime from the send (from
    // the receipt for an absolute `expires_on`, with the monotonic base to match).
    let from_in = expires_in.map(|secs| ("expires_in", None, sent.monotonic, secs));
    let from_on = match expires_on {
        None => None,
        Some(ExpiresOn::Relative(secs)) => {
            if expires_in.is_none_or(|e| e.abs_diff(secs) > RELATIVE_AGREEMENT) {
                return Err(invalid(format!(
                    "`expires_on` is {secs}, which as epoch seconds lies before 2001; it would be a relative lifetime only if `expires_in` stated the same, and {}",
                    if expires_in.is_some() {
                        "it states another"
                    } else {
                        "there is no `expires_in`"
                    }
                )));
            }
            Some(("expires_on", None, sent.monotonic, secs))
        }
        Some(ExpiresOn::Absolute(at)) => {
            let remaining = at.duration_since(received_wall).unwrap_or_default();
            if remaining.is_zero() {
                return Err(invalid(
                    "the endpoint returned an already-expired token: its `expires_on` is at or before the time the answer arrived (a badly set clock, on this machine or the endpoint's, is the usual cause)".into(),
                ));
            }
            // Whole seconds, rounded up: the absolute time is the deadline, never later.
            let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            Some(("expires_on", Some(at), received_mono, secs))
        }
    };
    // The earlier deadline wins; only it must be a sane lifetime (a far-off `expires_on` next
    // to a sane `expires_in` is the endpoint's clock running ahead).
    let deadline = |(_, _, base, secs): &(&str, Option<SystemTime>, Duration, u64)| {
        base.as_secs().saturating_add(*secs)
    };
    let earlier = match (from_in, from_on) {
        (None, None) => {
            return Err(invalid(
                "neither `expires_in` nor `expires_on` is present".into(),
            ));
        }
        (Some(a), None) | (None, Some(a)) => a,
        (Some(a), Some(b)) => {
            if deadline(&b) < deadline(&a) {
                b
            } else {
                a
            }
        }
    };
    let (field, _, base, secs) = earlier;
    if secs == 0 {
        return Err(invalid(format!(
            "`{field}` gives the token a lifetime of zero"
        )));
    }
    if secs > MAX_LIFETIME.as_secs() {
        return Err(invalid(format!(
            "`{field}` gives the token a lifetime of {secs} s, longer than the {} s any Entra token lives; the expiry is mis-stated",
            MAX_LIFETIME.as_secs()
        )));
    }
    // Bounded now, so the clock arithmetic below cannot overflow.
    let lifetime = Duration::from_secs(secs);
    let expires_at_mono = match earlier.1 {
        // An absolute expiry: exactly it, on the monotonic clock.
        Some(at) => base + at.duration_since(received_wall).unwrap_or_default(),
        None => base + lifetime,
    };
    // What to report: the server's absolute `expires_on` when it sent one, else the send time
    // plus the (earlier) lifetime.
    let expires_on_wall = match from_on {
        Some((_, Some(at), _, _)) => at,
        // Before 2001, so the sum cannot overflow.
        Some((_, None, _, on_secs)) => sent.wall + Duration::from_secs(on_secs),
        None => sent.wall + lifetime,
    };
    Ok(Expiry {
        expires_on_wall,
        expires_at_mono,
    })
}

/// A field holding whole seconds as a number or a digit string. Absent, null or `""` ⇒ None.
fn seconds_field(map: &Map<String, Value>, name: &str) -> Result<Option<u64>, String> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("`{name}` is a string that is not a whole number of seconds")),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else if n.as_i64().is_some() {
                Err(format!("`{name}` is negative"))
            } else {
                match n.as_f64() {
                    Some(f) if f >= 0.0 && f.is_finite() && f < 1e12 => Ok(Some(f as u64)),
                    _ => Err(format!("`{name}` is a number out of range")),
                }
            }
        }
        Some(other) => Err(format!(
            "`{name}` is {}, expected a number or a string of digits",
            kind(other)
        )),
    }
}

#[derive(Debug, PartialEq)]
enum ExpiresOn {
    Relative(u64),
    Absolute(SystemTime),
}

fn parse_expires_on(v: &Value) -> Result<ExpiresOn, String> {
    let out_of_range = || "`expires_on` is a number out of range".to_owned();
    // `UNIX_EPOCH + Duration` panics past the platform's range (e.g. 2^63 s): checked.
    let from_secs = |secs: u64| {
        if secs < RELATIVE_CUTOFF {
            Ok(ExpiresOn::Relative(secs))
        } else {
            UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .map(ExpiresOn::Absolute)
                .ok_or_else(out_of_range)
        }
    };
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(secs) => from_secs(secs),
            None if n.as_i64().is_some() => Err("`expires_on` is negative".into()),
            None => match n.as_f64() {
                Some(f) if (0.0..1e12).contains(&f) => from_secs(f as u64),
                _ => Err(out_of_range()),
            },
        },
        Value::String(s) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s
                    .parse::<u64>()
                    .map_err(|_| out_of_range())
                    .and_then(from_secs);
            }
            parse_date(s).map(ExpiresOn::Absolute).ok_or_else(|| {
                "`expires_on` is a string in no known format (epoch seconds, `MM/DD/YYYY hh:mm:ss [AM|PM] +00:00`, RFC 3339)".into()
            })
        }
        other => Err(format!(
            "`expires_on` is {}, expected a number or a string",
            kind(other)
        )),
    }
}

/// `MM/DD/YYYY hh:mm:ss [AM|PM] ±hh:mm` (legacy App Service / Azure ML), RFC 3339, and
/// `YYYY-MM-DD hh:mm:ss` (UTC).
pub(crate) fn parse_date(s: &str) -> Option<SystemTime> {
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
    // Howard Hinnant's days_from_civil.
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

/// The longest `Retry-After` taken as given (about 31 years): longer ones are cut to it, so
/// adding the delay to a clock reading cannot overflow. Any caller deadline is far shorter.
const MAX_RETRY_AFTER_SECS: u64 = 1_000_000_000;

/// `Retry-After`: delay seconds or an HTTP date.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(MAX_RETRY_AFTER_SECS)));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_RETRY_AFTER_SECS as f64)));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
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
    let at = civil(year, month, day, h, m, s, 0)?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(MAX_RETRY_AFTER_SECS)),
    )
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
    fn expires_on_shapes() {
        assert_eq!(
            parse_expires_on(&Value::from(1_700_000_000u64)),
            Ok(ExpiresOn::Absolute(at(1_700_000_000)))
        );
        assert_eq!(
            parse_expires_on(&Value::from("1700000000")),
            Ok(ExpiresOn::Absolute(at(1_700_000_000)))
        );
        assert_eq!(
            parse_expires_on(&Value::from("3599")),
            Ok(ExpiresOn::Relative(3599))
        );
        assert!(
            parse_expires_on(&Value::from(-5))
                .unwrap_err()
                .contains("negative")
        );
        assert!(
            parse_expires_on(&Value::from(true))
                .unwrap_err()
                .contains("boolean")
        );
        assert!(
            parse_expires_on(&Value::from("soon"))
                .unwrap_err()
                .contains("no known format")
        );
        // Found by tests/properties.rs: past the platform's `SystemTime` range, not a panic.
        for huge in [Value::from(1u64 << 63), Value::from(u64::MAX.to_string())] {
            assert!(
                parse_expires_on(&huge)
                    .unwrap_err()
                    .contains("out of range"),
                "{huge}"
            );
        }
    }

    /// Found by tests/properties.rs: a body's huge `expires_in` / `expires_on` used to overflow
    /// `SystemTime + Duration` (a panic) before the lifetime bound was checked.
    #[test]
    fn huge_lifetimes_are_refused_not_a_panic() {
        let sent = SentAt {
            monotonic: Duration::from_secs(1_000),
            wall: at(1_700_000_000),
        };
        for body in [
            r#"{"access_token":"t","expires_in":18446744073709551615}"#,
            r#"{"access_token":"t","expires_in":"9223372036854775808"}"#,
            r#"{"access_token":"t","expires_on":9223372036854775808}"#,
            r#"{"access_token":"t","expires_on":"18446744073709551615"}"#,
        ] {
            let response = RawResponse {
                status: 200,
                content_type: Some("application/json".into()),
                retry_after: None,
                www_authenticate: None,
                body: bytes::Bytes::from(body),
            };
            let err = parse_token(&response, sent, sent.wall, sent.monotonic)
                .map(|_| ())
                .unwrap_err();
            assert!(
                matches!(err, Unavailable::InvalidResponse { .. }),
                "{body}: {err}"
            );
        }
    }

    fn parse_at(body: &str, sent: SentAt) -> Result<AccessToken, Unavailable> {
        let response = RawResponse {
            status: 200,
            content_type: Some("application/json".into()),
            retry_after: None,
            www_authenticate: None,
            body: bytes::Bytes::from(body.to_owned()),
        };
        parse_token(&response, sent, sent.wall, sent.monotonic)
    }

    fn sent_at(wall: u64) -> SentAt {
        SentAt {
            monotonic: Duration::from_secs(1_000),
            wall: at(wall),
        }
    }

    /// Both fields: the earlier deadline is scheduled, the server's `expires_on` reported.
    #[test]
    fn both_fields_keep_the_earlier_deadline_and_report_the_servers_expiry() {
        let now = 1_700_000_000;
        let sent = sent_at(now);
        // expires_on earlier than expires_in (an endpoint clock behind ours, or a cached token).
        let body = format!(
            r#"{{"access_token":"t","expires_in":"3600","expires_on":"{}"}}"#,
            now + 1800
        );
        let t = parse_at(&body, sent).unwrap();
        assert_eq!(t.expires_on(), at(now + 1800));
        assert_eq!(
            t.monotonic.unwrap().expires_at,
            Duration::from_secs(1_000 + 1800)
        );
        // expires_in earlier (an endpoint's cache made it stale, or its clock is ahead): the
        // deadline is expires_in's, the reported expiry still the server's own value.
        let body = format!(
            r#"{{"access_token":"t","expires_in":1200,"expires_on":{}}}"#,
            now + 3600
        );
        let t = parse_at(&body, sent).unwrap();
        assert_eq!(t.expires_on(), at(now + 3600));
        assert_eq!(
            t.monotonic.unwrap().expires_at,
            Duration::from_secs(1_000 + 1200)
        );
    }

    #[test]
    fn an_already_expired_expires_on_is_refused_even_with_expires_in() {
        let now = 1_700_000_000;
        for expires_on in [now - 3600, now - 1, now] {
            let body = format!(
                r#"{{"access_token":"t","expires_in":"3600","expires_on":"{expires_on}"}}"#
            );
            let err = parse_at(&body, sent_at(now)).map(|_| ()).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, Unavailable::InvalidResponse { .. }), "{text}");
            assert!(text.contains("already-expired token"), "{text}");
            assert!(text.contains("clock"), "{text}");
        }
    }

    #[test]
    fn a_small_expires_on_is_a_lifetime_only_when_expires_in_agrees() {
        let sent = sent_at(1_700_000_000);
        for body in [
            r#"{"access_token":"t","expires_on":"86400"}"#,
            r#"{"access_token":"t","expires_on":3599}"#,
            r#"{"access_token":"t","expires_in":600,"expires_on":"3600"}"#,
        ] {
            let err = parse_at(body, sent).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains("before 2001"), "{body}: {err}");
        }
        let t = parse_at(
            r#"{"access_token":"t","expires_in":"3599","expires_on":"3600"}"#,
            sent,
        )
        .unwrap();
        assert_eq!(
            t.monotonic.unwrap().expires_at,
            Duration::from_secs(1_000 + 3599)
        );
        assert_eq!(t.expires_on(), at(1_700_000_000 + 3600));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = at(784_111_777);
        assert_eq!(retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(retry_after(" 2 ", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:57 GMT", now),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
        // Absurd delays are cut, so adding one to a clock reading cannot overflow.
        let max = Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("18446744073709551615", now), Some(max));
        assert_eq!(retry_after("1e300", now), Some(max));
        assert_eq!(retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(max));
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
        let sent = SentAt {
            monotonic: Duration::from_secs(1_000),
            wall: at(1_700_000_000),
        };
        let response = RawResponse {
            status: 200,
            content_type: Some("application/json".into()),
            retry_after: None,
            www_authenticate: None,
            body: bytes::Bytes::from(
                r#"{"access_token":"t","expires_on":"1/1/2030 0:00:00 +1é1"}"#,
            ),
        };
        let err = parse_token(&response, sent, sent.wall, sent.monotonic)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("expires_on"), "{err}");
    }
}
