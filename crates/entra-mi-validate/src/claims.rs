//! The claims of a verified token.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::error::{ValidationError, json_error_kind};

/// The payload of a verified access token. Cheap to clone (shared).
///
/// The accessors read Entra's claims (see
/// <https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference>);
/// [`get`](Claims::get) and [`as_map`](Claims::as_map) reach any other. Registered claims
/// were checked for their JSON type when the token was read: `exp`, `nbf` and `iat` are
/// numbers, `aud`, `iss`, `tid`, `oid`, `sub`, `azp`, `appid`, `idtyp`, `scp` and `ver` are
/// strings, `roles` is an array of strings.
///
/// `Debug` shows the claims (a token's claims are not a secret; the token is).
#[derive(Clone)]
pub struct Claims {
    inner: Arc<Inner>,
}

struct Inner {
    map: Map<String, Value>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

const STRINGS: &[&str] = &[
    "aud", "iss", "tid", "oid", "sub", "azp", "appid", "idtyp", "scp", "ver",
];
const TIMES: &[&str] = &["exp", "nbf", "iat"];

impl Claims {
    /// Reads a decoded payload: a JSON object whose registered claims have their JSON types.
    pub(crate) fn from_payload(json: &[u8]) -> Result<Claims, ValidationError> {
        if json.first() != Some(&b'{') {
            return Err(ValidationError::malformed(
                "the payload is not a JSON object",
            ));
        }
        let map: Map<String, Value> = serde_json::from_slice(json).map_err(|e| {
            ValidationError::malformed(format!(
                "the payload is not valid JSON ({})",
                json_error_kind(&e)
            ))
        })?;
        for name in STRINGS {
            if map.get(*name).is_some_and(|v| !v.is_string()) {
                return Err(ValidationError::malformed(format!(
                    "the `{name}` claim is not a string"
                )));
            }
        }
        let mut times = [None; 3];
        for (slot, name) in times.iter_mut().zip(TIMES) {
            if let Some(v) = map.get(*name) {
                *slot = Some(numeric_date(v).ok_or_else(|| {
                    ValidationError::malformed(format!("the `{name}` claim is not a number"))
                })?);
            }
        }
        if let Some(roles) = map.get("roles")
            && !roles
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err(ValidationError::malformed(
                "the `roles` claim is not an array of strings",
            ));
        }
        Ok(Claims {
            inner: Arc::new(Inner {
                map,
                exp: times[0],
                nbf: times[1],
            }),
        })
    }

    /// A claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.inner.map.get(name)
    }

    /// A string claim by name (`None` if absent or not a string).
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Every claim.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.inner.map
    }

    /// `aud`: the API the token is for (App ID URI or client id).
    pub fn audience(&self) -> Option<&str> {
        self.get_str("aud")
    }

    /// `iss`: `https://sts.windows.net/<tid>/` (v1 tokens) or
    /// `https://login.microsoftonline.com/<tid>/v2.0` (v2).
    pub fn issuer(&self) -> Option<&str> {
        self.get_str("iss")
    }

    /// `tid`: the tenant that issued the token.
    pub fn tenant_id(&self) -> Option<&str> {
        self.get_str("tid")
    }

    /// `oid`: the caller's object id (a managed identity's principal id).
    pub fn object_id(&self) -> Option<&str> {
        self.get_str("oid")
    }

    /// `sub`: the subject (for app-only tokens, the same as `oid`).
    pub fn subject(&self) -> Option<&str> {
        self.get_str("sub")
    }

    /// The calling application's client id: `azp` (v2 tokens) or `appid` (v1 tokens).
    pub fn app_id(&self) -> Option<&str> {
        self.get_str("azp").or_else(|| self.get_str("appid"))
    }

    /// `ver`: `1.0` or `2.0`.
    pub fn version(&self) -> Option<&str> {
        self.get_str("ver")
    }

    /// The app roles (`roles`), in token order; empty when there are none.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.get("roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    /// Whether `roles` holds `role` (exact, case-sensitive).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }

    /// The delegated scopes (`scp`, space-separated); empty for app-only tokens.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.get_str("scp")
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// Whether the token is app-only (a managed identity or a client-credentials app, no user):
    /// `idtyp` is `app` when the claim is present; without it, there is no `scp` and `oid`
    /// equals `sub`.
    pub fn is_app_only(&self) -> bool {
        match self.get_str("idtyp") {
            Some(t) => t == "app",
            None => self.get("scp").is_none() && self.object_id() == self.subject(),
        }
    }

    /// `exp` in seconds since the Unix epoch.
    pub fn expires_at_unix(&self) -> Option<i64> {
        self.inner.exp
    }

    /// `exp` as a time.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.exp.and_then(unix_to_system_time)
    }

    /// `nbf` in seconds since the Unix epoch.
    pub fn not_before_unix(&self) -> Option<i64> {
        self.inner.nbf
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Claims").field(&self.inner.map).finish()
    }
}

/// A NumericDate (RFC 7519): a JSON number of seconds, fractions dropped, clamped to `i64`.
fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    if v.as_u64().is_some() {
        return Some(i64::MAX);
    }
    // `as` saturates for out-of-range floats (and maps NaN to 0, which JSON cannot hold).
    v.as_f64().map(|f| f.floor() as i64)
}

fn unix_to_system_time(secs: i64) -> Option<SystemTime> {
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}
