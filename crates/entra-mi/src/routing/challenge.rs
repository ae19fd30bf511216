//! What a `401` response's `WWW-Authenticate` header asks for: the Bearer challenges a new
//! token can answer (`invalid_token`, and `insufficient_claims` with its `claims`), read with
//! RFC 9110's challenge grammar.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderMap;

/// What a `401` response's `WWW-Authenticate` Bearer challenge asks the client to do, when
/// it is something a new token can fix.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerChallenge {
    /// `error="invalid_token"`: the token expired, was revoked or is otherwise not accepted.
    InvalidToken,
    /// `error="insufficient_claims"` with a `claims` parameter (a Continuous Access Evaluation
    /// or conditional-access claims challenge): get a token carrying these claims.
    InsufficientClaims {
        /// The decoded claims request (JSON).
        claims: String,
    },
}

impl fmt::Debug for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BearerChallenge::InvalidToken => f.write_str("InvalidToken"),
            BearerChallenge::InsufficientClaims { claims } => f
                .debug_struct("InsufficientClaims")
                .field("claims", claims)
                .finish(),
        }
    }
}

impl BearerChallenge {
    /// Reads every `WWW-Authenticate` header of a response and returns the Bearer challenge a
    /// new token can answer, if any. A claims challenge wins over `invalid_token`.
    ///
    /// The parser follows RFC 9110's grammar: several challenges in one header (`Basic
    /// realm="x", Bearer error="invalid_token"`), several headers, case-insensitive scheme and
    /// parameter names, quoted strings with escapes, and `claims` in base64 or base64url,
    /// padded or not. Anything it cannot read is ignored.
    ///
    /// ```
    /// use entra_mi::middleware::BearerChallenge;
    /// let mut headers = http::HeaderMap::new();
    /// headers.append("www-authenticate", r#"Basic realm="x", Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ==""#.parse().unwrap());
    /// assert_eq!(
    ///     BearerChallenge::from_headers(&headers),
    ///     Some(BearerChallenge::InsufficientClaims { claims: r#"{"access_token":{}}"#.into() })
    /// );
    /// ```
    pub fn from_headers(headers: &HeaderMap) -> Option<BearerChallenge> {
        let mut found = None;
        for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
            for_each_bearer_challenge(value.as_bytes(), &mut |error, claims| {
                let this = match error {
                    Some(e) if e.eq_ignore_ascii_case(b"insufficient_claims") => claims
                        .and_then(decode_claims)
                        .map(|claims| BearerChallenge::InsufficientClaims { claims }),
                    Some(e) if e.eq_ignore_ascii_case(b"invalid_token") => {
                        Some(BearerChallenge::InvalidToken)
                    }
                    _ => None,
                };
                match (&found, this) {
                    (_, None) | (Some(BearerChallenge::InsufficientClaims { .. }), _) => {}
                    (_, Some(c)) => found = Some(c),
                }
            });
        }
        found
    }
}

/// The challenge being read.
#[derive(Default)]
struct Reading {
    bearer: bool,
    error: Option<Vec<u8>>,
    claims: Option<Vec<u8>>,
}

/// Receives `(error, claims)` of each Bearer challenge.
type OnBearer<'a> = &'a mut dyn FnMut(Option<&[u8]>, Option<&[u8]>);

/// Calls `f(error, claims)` for each Bearer challenge in one header value.
fn for_each_bearer_challenge(input: &[u8], f: OnBearer<'_>) {
    let mut lex = Lexer { s: input, i: 0 };
    let mut current: Option<Reading> = None;
    let mut flush = |c: Option<Reading>| {
        if let Some(Reading {
            bearer: true,
            error,
            claims,
        }) = c
        {
            f(error.as_deref(), claims.as_deref());
        }
    };
    loop {
        lex.skip(|b| b == b' ' || b == b'\t' || b == b',');
        if lex.done() {
            break;
        }
        let Some(name) = lex.token() else {
            // Unreadable: stop here rather than guess.
            break;
        };
        lex.skip_ws();
        if lex.peek() == Some(b'=') && current.is_some() {
            // `name = value`: a parameter of the current challenge.
            lex.i += 1;
            lex.skip_ws();
            let value = if lex.peek() == Some(b'"') {
                lex.quoted()
            } else {
                lex.token().map(<[u8]>::to_vec)
            };
            let Some(value) = value else { break };
            if let Some(c) = current.as_mut() {
                if name.eq_ignore_ascii_case(b"error") {
                    c.error = Some(value);
                } else if name.eq_ignore_ascii_case(b"claims") {
                    c.claims = Some(value);
                }
            }
        } else {
            // A new challenge: `scheme`, maybe followed by a token68 or the first parameter.
            flush(current.take());
            current = Some(Reading {
                bearer: name.eq_ignore_ascii_case(b"bearer"),
                ..Reading::default()
            });
            // `scheme token68` (`Negotiate YII…==`): skip the token68; otherwise rewind to read
            // the first parameter.
            let save = lex.i;
            lex.skip(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
            let run = lex.i > save;
            lex.skip(|b| b == b'=');
            lex.skip_ws();
            if !(run && (lex.done() || lex.peek() == Some(b','))) {
                lex.i = save;
            }
        }
    }
    flush(current);
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'a> Lexer<'a> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip(&mut self, mut pred: impl FnMut(u8) -> bool) {
        while self.peek().is_some_and(&mut pred) {
            self.i += 1;
        }
    }
    fn skip_ws(&mut self) {
        self.skip(|b| b == b' ' || b == b'\t');
    }
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.skip(is_tchar);
        (self.i > start).then(|| &self.s[start..self.i])
    }
    /// A quoted string with `\` escapes; `None` when unterminated.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    out.push(self.peek()?);
                    self.i += 1;
                }
                _ => out.push(b),
            }
        }
        None
    }
}

/// Decodes a `claims` parameter: base64 or base64url, padded or not, holding a JSON object.
fn decode_claims(raw: &[u8]) -> Option<String> {
    let bytes = decode_base64_any(raw)?;
    let text = String::from_utf8(bytes).ok()?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Some(text),
        _ => None,
    }
}

/// Padding optional (RFC 4648 §3.2), and unused bits of the last character ignored.
const ANY_PADDING: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ANY_PADDING);
const BASE64URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ANY_PADDING);

/// Base64 in either alphabet (`+/` or `-_`, not both in one value), with or without `=`
/// padding, surrounding whitespace ignored.
fn decode_base64_any(input: &[u8]) -> Option<Vec<u8>> {
    let data = input.trim_ascii();
    let engine = if data.iter().any(|&b| b == b'-' || b == b'_') {
        &BASE64URL
    } else {
        &BASE64
    };
    engine.decode(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(values: &[&str]) -> Option<BearerChallenge> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::WWW_AUTHENTICATE, v.parse().unwrap());
        }
        BearerChallenge::from_headers(&h)
    }

    const CLAIMS: &str = r#"{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}"#;

    fn b64(s: &str, url: bool, pad: bool) -> String {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        match (url, pad) {
            (false, true) => STANDARD.encode(s),
            (false, false) => STANDARD_NO_PAD.encode(s),
            (true, true) => URL_SAFE.encode(s),
            (true, false) => URL_SAFE_NO_PAD.encode(s),
        }
    }

    #[test]
    fn base64_both_alphabets_padded_or_not() {
        for s in ["", "a", "ab", "abc", "abcd", CLAIMS, "\u{fb}\u{ff}?>"] {
            for url in [false, true] {
                for pad in [false, true] {
                    let enc = b64(s, url, pad);
                    assert_eq!(
                        decode_base64_any(enc.as_bytes()).as_deref(),
                        Some(s.as_bytes()),
                        "{enc}"
                    );
                }
            }
        }
        assert_eq!(decode_base64_any(b"a"), None);
        assert_eq!(decode_base64_any(b"ab!c"), None);
        assert_eq!(decode_base64_any(b"YQ==="), None);
        // Padding may be short; the two alphabets do not mix.
        assert_eq!(decode_base64_any(b"YQ=").as_deref(), Some(&b"a"[..]));
        assert_eq!(decode_base64_any(b" YWJj\t").as_deref(), Some(&b"abc"[..]));
        assert_eq!(decode_base64_any(b"-_+/"), None);
    }

    #[test]
    fn challenges_are_parsed_robustly() {
        let enc = b64(CLAIMS, false, true);
        let url = b64(CLAIMS, true, false);
        let claims = Some(BearerChallenge::InsufficientClaims {
            claims: CLAIMS.into(),
        });
        assert_eq!(
            challenge(&[r#"Bearer error="invalid_token""#]),
            Some(BearerChallenge::InvalidToken)
        );
        assert_eq!(
            challenge(&["bearer ERROR=invalid_token"]),
            Some(BearerChallenge::InvalidToken)
        );
        assert_eq!(
            challenge(&[
                r#"Bearer realm="a, \"quoted\" error=insufficient_claims", error = "invalid_token""#
            ]),
            Some(BearerChallenge::InvalidToken)
        );
        assert_eq!(
            challenge(&[&format!(
                r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="{enc}""#
            )]),
            claims
        );
        assert_eq!(
            challenge(&[&format!("Bearer error=insufficient_claims, claims={url}")]),
            claims
        );
        // Several schemes in one header, and a token68 scheme before ours.
        assert_eq!(
            challenge(&[&format!(
                r#"Negotiate YIIabc==, Basic realm="x, error=invalid_token", Bearer error="insufficient_claims", claims="{url}""#
            )]),
            claims
        );
        // Several headers: the claims challenge wins whatever the order.
        assert_eq!(
            challenge(&[
                r#"Bearer error="invalid_token""#,
                &format!(r#"Bearer error="insufficient_claims", claims="{enc}""#)
            ]),
            claims
        );
        assert_eq!(
            challenge(&[
                &format!(r#"Bearer error="insufficient_claims", claims="{enc}""#),
                r#"Bearer error="invalid_token""#
            ]),
            claims
        );
        // Not ours to act on.
        assert_eq!(
            challenge(&[r#"Basic realm="x", error="invalid_token""#]),
            None
        );
        assert_eq!(
            challenge(&[r#"Bearer realm="", error="insufficient_scope""#]),
            None
        );
        assert_eq!(challenge(&[r#"Bearer realm="""#]), None);
        assert_eq!(challenge(&[r#"Bearer error="insufficient_claims""#]), None);
        assert_eq!(
            challenge(&[r#"Bearer error="insufficient_claims", claims="not base64!""#]),
            None
        );
        assert_eq!(
            challenge(&[&format!(
                r#"Bearer error="insufficient_claims", claims="{}""#,
                b64("[1]", false, true)
            )]),
            None
        );
        assert_eq!(challenge(&[r#"Bearer error="invalid_token"#]), None);
        assert_eq!(challenge(&[""]), None);
        assert_eq!(challenge(&[]), None);
    }
}
