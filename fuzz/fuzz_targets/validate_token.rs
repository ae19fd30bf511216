//! The token parser of `entra-mi-validate` (`__fuzz::parse`: the length cap, the three
//! base64url parts, the JSON header and payload, `crit`, registered claims' types), on
//! arbitrary input.
//!
//! Asserts, beyond "never panics":
//! * an accepted token has exactly three dot-separated parts, is at most `MAX_TOKEN_LEN`
//!   bytes, and the signed part is everything before the last dot;
//! * a refusal is always `malformed`, and its text never holds the input (for inputs long
//!   enough to tell);
//! * parsing is deterministic.
#![no_main]

use entra_mi_validate::{Check, MAX_TOKEN_LEN, __fuzz};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let first = __fuzz::parse(token);
    match &first {
        Ok((signed, _alg, _kid)) => {
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(token.matches('.').count(), 2);
            assert_eq!(Some(*signed), token.rfind('.'));
        }
        Err(e) => {
            assert_eq!(e.check(), Check::Malformed, "{e}");
            if token.len() >= 24 {
                assert!(!e.to_string().contains(token));
                assert!(!format!("{e:?}").contains(token));
            }
        }
    }
    assert_eq!(first, __fuzz::parse(token));
});
