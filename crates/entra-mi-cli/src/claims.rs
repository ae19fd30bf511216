//! Reading a JWT's claims for display — never its signature or the token itself.

use base64::Engine;
use serde_json::Value;

/// The claims worth showing, in order: `aud`, `iss` and `ver` first, since they are what a
/// receiver validates (a managed-identity token is a v1.0 token: `iss` is
/// `https://sts.windows.net/<tid>/`).
pub(crate) const SHOWN: &[&str] = &[
    "aud",
    "iss",
    "ver",
    "tid",
    "oid",
    "appid",
    "azp",
    "roles",
    "xms_mirid",
    "iat",
    "exp",
];

/// The decoded payload of a JWT, or why it could not be read (MI tokens are JWTs, but the
/// library treats tokens as opaque: a non-JWT token is reported, not an error).
pub(crate) fn decode(token: &str) -> Result<serde_json::Map<String, Value>, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the token is not a JWT (no payload part)")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "the token's payload is not base64url")?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err("the token's payload is not a JSON object".into()),
    }
}

/// Only the shown claims.
pub(crate) fn shown(claims: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    SHOWN
        .iter()
        .filter_map(|k| claims.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect()
}
