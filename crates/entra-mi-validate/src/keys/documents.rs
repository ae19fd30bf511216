//! Reading an OpenID discovery document and a JSON Web Key Set.

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use url::Url;

use crate::error::json_error_kind;

/// A signing key of the authority.
pub(crate) struct Key {
    pub(crate) kid: Box<str>,
    pub(crate) public: ParsedPublicKey,
    /// The key's `issuer` member (v2 key sets): the issuer, possibly with `{tenantid}`,
    /// whose tokens it may verify.
    pub(crate) issuer: Option<Box<str>>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: Option<serde_json::Value>,
    jwks_uri: Option<serde_json::Value>,
}

/// `issuer` and `jwks_uri` of a discovery document fetched from `url`.
pub(crate) fn discovery(body: &[u8], url: &Url) -> Result<(String, Option<Url>), String> {
    let doc: Discovery = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{url}: not a JSON discovery document ({})",
            json_error_kind(&e)
        )
    })?;
    let issuer = match doc.issuer {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        _ => return Err(format!("{url}: the document has no `issuer` string")),
    };
    let jwks_uri = match doc.jwks_uri {
        None => None,
        Some(serde_json::Value::String(s)) => {
            Some(Url::parse(&s).map_err(|_| format!("{url}: `jwks_uri` is not a URL"))?)
        }
        Some(_) => return Err(format!("{url}: `jwks_uri` is not a string")),
    };
    Ok((issuer, jwks_uri))
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<serde_json::Value>,
}

/// The usable keys of a key set fetched from `url`: RSA keys for signatures (`use` absent or
/// `sig`, `alg` absent — as on Entra's keys — or `RS256`) with a `kid`; others are skipped.
/// An error if none is usable.
pub(crate) fn key_set(body: &[u8], url: &Url) -> Result<Vec<Key>, String> {
    let set: KeySet = serde_json::from_slice(body)
        .map_err(|e| format!("{url}: not a JSON key set ({})", json_error_kind(&e)))?;
    let mut keys: Vec<Key> = Vec::new();
    for jwk in &set.keys {
        if let Some(key) = rsa_key(jwk)
            && !keys.iter().any(|k| k.kid == key.kid)
        {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "{url}: the key set has no usable RS256 signing key"
        ));
    }
    Ok(keys)
}

fn rsa_key(jwk: &serde_json::Value) -> Option<Key> {
    let field = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    if field("kty") != Some("RSA") {
        return None;
    }
    if jwk.get("use").is_some() && field("use") != Some("sig") {
        return None;
    }
    if jwk.get("alg").is_some() && field("alg") != Some("RS256") {
        return None;
    }
    let kid = field("kid").filter(|k| !k.is_empty())?;
    let issuer = match jwk.get("issuer") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.as_str().into()),
        // An `issuer` that cannot be read restricts the key to nothing.
        Some(_) => return None,
    };
    let n = unsigned(field("n")?)?;
    let e = unsigned(field("e")?)?;
    let public = RsaPublicKeyComponents {
        n: &n[..],
        e: &e[..],
    }
    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
    .ok()?;
    Some(Key {
        kid: kid.into(),
        public,
        issuer,
    })
}

/// A base64url big-endian integer without its leading zero bytes.
fn unsigned(b64: &str) -> Option<Vec<u8>> {
    let mut bytes = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).ok()?;
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    (!bytes.is_empty()).then_some(bytes)
}
