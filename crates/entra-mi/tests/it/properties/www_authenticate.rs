//! Property tests of the `WWW-Authenticate` parser.

use super::*;

fn challenge_of(values: &[Vec<u8>]) -> Option<BearerChallenge> {
    let mut h = HeaderMap::new();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(WWW_AUTHENTICATE, v);
        }
    }
    BearerChallenge::from_headers(&h)
}

/// `s` as an RFC 9110 quoted string, escaping `"` and `\` (and, when `all`, every character).
fn quote(s: &str, all: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if all || c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Printable ASCII, including `"`, `\`, `,` and `=`.
fn printable() -> impl Strategy<Value = String> {
    "[ -~]{0,24}"
}

fn claims_json() -> impl Strategy<Value = String> {
    prop::collection::btree_map("[a-z_]{1,8}", printable(), 0..4).prop_map(|m| {
        let obj: serde_json::Map<String, Value> =
            m.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        serde_json::to_string(&json!({ "access_token": obj })).unwrap()
    })
}

/// The claims parameter in base64 or base64url, padded or not, quoted or (unpadded) bare.
fn claims_param(claims: &str, alphabet: u8, quoted: bool, escape_all: bool) -> String {
    let enc = match alphabet % 4 {
        0 => STANDARD.encode(claims),
        1 => STANDARD_NO_PAD.encode(claims),
        2 => URL_SAFE.encode(claims),
        _ => URL_SAFE_NO_PAD.encode(claims),
    };
    if quoted || enc.ends_with('=') || enc.contains('/') || enc.contains('+') {
        quote(&enc, escape_all)
    } else {
        enc
    }
}

const SEPARATORS: &[&str] = &[", ", ",", " , ", ",\t", " ,, "];

fn pick<'a>(list: &[&'a str], i: usize) -> &'a str {
    list[i % list.len()]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn challenge_parser_never_panics(values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4)) {
        let _ = challenge_of(&values);
    }

    #[test]
    fn challenge_parser_never_panics_on_challenge_like_text(
        values in prop::collection::vec("(Bearer|Basic|error|claims|realm|=|\"|\\\\|,| |[a-zA-Z0-9_+/-]{1,6}){0,24}", 0..3),
    ) {
        let values: Vec<Vec<u8>> = values.into_iter().map(String::into_bytes).collect();
        let _ = challenge_of(&values);
    }

    #[test]
    fn generated_bearer_challenges_read_back(
        claims in claims_json(),
        insufficient: bool,
        realm in printable(),
        description in printable(),
        decoy in printable(),
        alphabet: u8,
        quoted: bool,
        escape_all: bool,
        casing in 0usize..4,
        sep in 0usize..5,
        spaced: bool,
        before in prop::option::of(printable()),
        after: bool,
        order in Just(vec![0usize, 1, 2, 3, 4]).prop_shuffle(),
    ) {
        let bearer = pick(&["Bearer", "bearer", "BEARER", "bEaReR"], casing);
        let (error_name, claims_name) = [("error", "claims"), ("ERROR", "Claims"), ("Error", "CLAIMS"), ("error", "claims")][casing];
        let eq = if spaced { " = " } else { "=" };
        let error_value = if insufficient { "insufficient_claims" } else { "invalid_token" };
        let error_value = if quoted { quote(error_value, escape_all) } else { error_value.to_owned() };
        // A decoy inside a quoted string must never be read as parameters.
        let decoy = format!("{decoy}\", error=\"insufficient_claims\", claims=\"{}", STANDARD.encode("{}"));
        let params = [
            format!("realm{eq}{}", quote(&realm, escape_all)),
            format!("{error_name}{eq}{error_value}"),
            format!("{claims_name}{eq}{}", claims_param(&claims, alphabet, quoted, escape_all)),
            format!("error_description{eq}{}", quote(&description, escape_all)),
            format!("x_decoy{eq}{}", quote(&decoy, false)),
        ];
        let params: Vec<&str> = order.iter().map(|&i| params[i].as_str()).collect();
        let mut header = String::new();
        if let Some(b) = &before {
            header.push_str(&format!("Basic realm={}{}Negotiate YIIabc=={}", quote(b, false), pick(SEPARATORS, sep), pick(SEPARATORS, sep)));
        }
        header.push_str(bearer);
        header.push(' ');
        header.push_str(&params.join(pick(SEPARATORS, sep)));
        if after {
            header.push_str(", Basic realm=\"x\", error=\"invalid_token\"");
        }
        let expected = if insufficient {
            BearerChallenge::InsufficientClaims { claims: claims.clone() }
        } else {
            BearerChallenge::InvalidToken
        };
        prop_assert_eq!(challenge_of(&[header.clone().into_bytes()]), Some(expected.clone()), "{}", header);
        // With an `invalid_token` header next to it, in either order, a claims challenge wins.
        let other = br#"Bearer error="invalid_token""#.to_vec();
        prop_assert_eq!(challenge_of(&[other.clone(), header.clone().into_bytes()]), Some(expected.clone()));
        prop_assert_eq!(challenge_of(&[header.into_bytes(), other]), Some(expected));
    }

    #[test]
    fn other_schemes_and_errors_are_ignored(
        scheme in "(Basic|Digest|Negotiate|PoP|Bearerx|XBearer)",
        error in "(insufficient_scope|invalid_request|invalid_token_x|[a-z_]{0,12})",
        realm in printable(),
    ) {
        prop_assume!(error != "invalid_token" && error != "insufficient_claims");
        let foreign = format!("{scheme} realm={}, error=\"invalid_token\"", quote(&realm, false));
        let ours = format!("Bearer realm={}, error={}", quote(&realm, false), quote(&error, false));
        prop_assert_eq!(challenge_of(&[foreign.into_bytes(), ours.into_bytes()]), None);
    }
}
