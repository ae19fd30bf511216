//! Reading a compact JWS: three base64url parts, a JSON header, a JSON payload. Nothing here
//! trusts the content; it only says whether it is well-formed and what it claims.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::claims::Claims;
use crate::error::{Check, ValidationError, json_error_kind, shown};

/// The longest token read: Entra access tokens are 1–3 KiB, large group or role lists
/// included; 16 KiB bounds the work an attacker can ask for per request.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The only algorithm accepted (Entra signs access tokens with RS256).
pub(crate) const RS256: &str = "RS256";

/// A well-formed token, not yet verified.
pub(crate) struct Parsed<'t> {
    /// `header.payload`: the bytes the signature covers.
    pub(crate) signing_input: &'t [u8],
    /// The decoded signature (empty if the third part is empty).
    pub(crate) signature: Vec<u8>,
    /// The header's `alg`.
    pub(crate) alg: Option<String>,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// The payload's claims (unverified until the signature is).
    pub(crate) claims: Claims,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Splits and decodes `token`; every failure is [`Check::Malformed`].
pub(crate) fn parse(token: &str) -> Result<Parsed<'_>, ValidationError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(ValidationError::malformed(format!(
            "the token is {} bytes long; at most {MAX_TOKEN_LEN} are read",
            token.len()
        )));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ValidationError::malformed(
            "a JWT has three base64url parts separated by dots",
        ));
    };
    let header_json = decode_part(header, "header")?;
    let payload_json = decode_part(payload, "payload")?;
    let signature_part = signature;
    let signature = if signature.is_empty() {
        Vec::new()
    } else {
        decode_part(signature, "signature")?
    };
    if header_json.first() != Some(&b'{') {
        return Err(ValidationError::malformed(
            "the header is not a JSON object",
        ));
    }
    let header: Header<'_> = serde_json::from_slice(&header_json).map_err(|e| {
        ValidationError::malformed(format!(
            "the header is not valid JSON ({})",
            json_error_kind(&e)
        ))
    })?;
    if header.crit.is_some() {
        return Err(ValidationError::malformed(
            "the header has a `crit` member: no critical extension is understood",
        ));
    }
    let claims = Claims::from_payload(&payload_json)?;
    let signing_input = &token.as_bytes()[..token.len() - signature_part.len() - 1];
    Ok(Parsed {
        signing_input,
        signature,
        alg: header.alg.map(Cow::into_owned),
        kid: header.kid.map(Cow::into_owned),
        claims,
    })
}

/// Checks the header's `alg`: [`Check::Algorithm`] unless it is `RS256`.
pub(crate) fn check_alg(alg: Option<&str>) -> Result<(), ValidationError> {
    match alg {
        Some(RS256) => Ok(()),
        Some(other) => Err(ValidationError::new(
            Check::Algorithm,
            format!("alg {} is not accepted: only RS256 is", shown(other)),
        )),
        None => Err(ValidationError::new(
            Check::Algorithm,
            "the header has no `alg`: only RS256 is accepted",
        )),
    }
}

fn decode_part(part: &str, name: &str) -> Result<Vec<u8>, ValidationError> {
    if part.is_empty() {
        return Err(ValidationError::malformed(format!("the {name} is empty")));
    }
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        ValidationError::malformed(format!("the {name} is not base64url (no padding)"))
    })
}

/// What the fuzz target looks at: the parse path alone.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_summary(
    token: &str,
) -> Result<(usize, Option<String>, Option<String>), ValidationError> {
    parse(token).map(|p| (p.signing_input.len(), p.alg, p.kid))
}
