//! The `WWW-Authenticate` Bearer challenge parser (`BearerChallenge::from_headers`), on
//! arbitrary header values; the input is split at `\n` into several headers.
//!
//! Asserts, beyond "never panics":
//! * a claims challenge carries a JSON object, and only comes from headers that mention
//!   `bearer` and `insufficient_claims`; `InvalidToken` only from ones mentioning `bearer` and
//!   `invalid_token` (case-insensitively, escapes dropped);
//! * the kind of challenge found does not depend on the order of the headers (a claims
//!   challenge wins wherever it is), and other schemes' headers added around it change nothing;
//! * parsing is deterministic.
#![no_main]

use entra_mi::middleware::BearerChallenge;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn headers<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append(WWW_AUTHENTICATE, v.clone());
    }
    map
}

fn kind(c: &Option<BearerChallenge>) -> u8 {
    match c {
        None => 0,
        Some(BearerChallenge::InvalidToken) => 1,
        Some(BearerChallenge::InsufficientClaims { .. }) => 2,
        Some(_) => 3,
    }
}

fuzz_target!(|data: &[u8]| {
    let values: Vec<HeaderValue> = data
        .split(|&b| b == b'\n')
        .filter_map(|v| HeaderValue::from_bytes(v).ok())
        .collect();
    let map = headers(&values);
    let found = BearerChallenge::from_headers(&map);
    assert_eq!(found, BearerChallenge::from_headers(&map));

    // Quoted strings may escape any character: compare with the backslashes dropped.
    let unescaped: Vec<Vec<u8>> = values
        .iter()
        .map(|v| {
            v.as_bytes()
                .iter()
                .copied()
                .filter(|&b| b != b'\\')
                .collect()
        })
        .collect();
    let mentions = |word: &[u8]| unescaped.iter().any(|v| contains_ci(v, word));
    match &found {
        None => {}
        Some(BearerChallenge::InvalidToken) => {
            assert!(mentions(b"bearer") && mentions(b"invalid_token"));
        }
        Some(BearerChallenge::InsufficientClaims { claims }) => {
            assert!(mentions(b"bearer") && mentions(b"insufficient_claims"));
            assert!(matches!(
                serde_json::from_str::<serde_json::Value>(claims),
                Ok(serde_json::Value::Object(_))
            ));
        }
        Some(other) => panic!("unknown challenge {other:?}"),
    }

    // Order of headers: same kind of answer.
    let reversed = headers(values.iter().rev());
    assert_eq!(
        kind(&found),
        kind(&BearerChallenge::from_headers(&reversed))
    );

    // Headers of other schemes around it change nothing.
    let basic = HeaderValue::from_static(r#"Basic realm="x", charset="UTF-8""#);
    let negotiate = HeaderValue::from_static("Negotiate");
    let padded = headers(
        std::iter::once(&basic)
            .chain(values.iter())
            .chain(std::iter::once(&negotiate)),
    );
    assert_eq!(found, BearerChallenge::from_headers(&padded));
});
