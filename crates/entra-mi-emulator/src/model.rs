//! Public value types: identities, endpoints, faults, response shapes and Graph rejections.

use std::time::Duration;

/// A managed identity the emulated machine carries.
///
/// Identifiers are compared case-insensitively when a request selects an identity (GUIDs and
/// ARM resource ids are case-insensitive on the real services).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The application (client) id: `appid`/`azp` in tokens, `client_id` selector.
    pub client_id: String,
    /// The object (principal) id: `oid`/`sub` in tokens, `object_id`/`principal_id` selector.
    pub object_id: String,
    /// The ARM resource id: `xms_mirid` in tokens, `msi_res_id`/`mi_res_id` selector.
    pub resource_id: String,
    /// A human-readable name (the user-assigned identity's or the VM's name).
    pub display_name: String,
}

impl Identity {
    /// A user-assigned identity named `name`, with fresh random GUIDs and the resource id
    /// `/subscriptions/<guid>/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`.
    pub fn user_assigned(name: &str) -> Identity {
        Identity {
            client_id: guid(),
            object_id: guid(),
            resource_id: format!(
                "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
                guid()
            ),
            display_name: name.to_owned(),
        }
    }

    /// A system-assigned identity of a virtual machine named `vm`, with fresh random GUIDs and
    /// the resource id `/subscriptions/<guid>/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm`
    /// (a system-assigned identity's `xms_mirid` is the resource it belongs to).
    pub fn system_assigned() -> Identity {
        Identity {
            client_id: guid(),
            object_id: guid(),
            resource_id: format!(
                "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
                guid()
            ),
            display_name: "vm".to_owned(),
        }
    }
}

/// A random (version 4) GUID in its lowercase hyphenated form.
pub(crate) fn guid() -> String {
    let a = fastrand::u128(..);
    // Set the version (4) and variant (10xx) bits like RFC 9562 asks.
    let a = (a & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An endpoint the emulator serves; used to count requests and to target faults and shapes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Azure IMDS: `GET /metadata/identity/oauth2/token` (api-version 2018-02-01 and later).
    Imds,
    /// App Service / Functions: `GET /msi/token` (api-version 2019-08-01).
    AppService,
    /// The JSON Web Key Set: `GET /<tenant>/discovery/keys` (also `/common/discovery/keys`).
    Jwks,
    /// The OpenID Connect discovery document: `GET /<tenant>/.well-known/openid-configuration`.
    OpenIdConfiguration,
    /// Azure Arc's HIMDS: `GET /arc/metadata/identity/oauth2/token` (both legs of the challenge).
    AzureArc,
    /// Service Fabric over TLS: `GET https://127.0.0.1:<tls port>/metadata/identity/oauth2/token`.
    ServiceFabric,
    /// The 2017-09-01 protocol (Azure ML, legacy App Service): `GET /MSI/auth`.
    AzureMl,
    /// Cloud Shell: `POST /oauth2/token`.
    CloudShell,
    /// The Entra v2.0 token endpoint: `POST /<tenant>/oauth2/v2.0/token`.
    EntraToken,
}

impl Endpoint {
    pub(crate) const COUNT: usize = 9;

    pub(crate) fn index(self) -> usize {
        match self {
            Endpoint::Imds => 0,
            Endpoint::AppService => 1,
            Endpoint::Jwks => 2,
            Endpoint::OpenIdConfiguration => 3,
            Endpoint::AzureArc => 4,
            Endpoint::ServiceFabric => 5,
            Endpoint::AzureMl => 6,
            Endpoint::CloudShell => 7,
            Endpoint::EntraToken => 8,
        }
    }
}

/// A failure to inject into the next request on an endpoint (see [`Emulator::push_fault`](crate::Emulator::push_fault)).
///
/// Faults queue per endpoint, first in first out; each request (valid or not) consumes one.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status. `retry_after` is sent verbatim as the `Retry-After` header
    /// (left out if it is not a valid header value).
    /// `body` defaults to the endpoint's own JSON error body for that status (IMDS:
    /// `{"error":…,"error_description":…}`, App Service: `{"statusCode":…,"message":…}`),
    /// served as `application/json`. A status outside 100..=999 is answered as 500.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The `Retry-After` header value, if any (seconds or an HTTP date, sent as given).
        retry_after: Option<String>,
        /// The body (`application/json`); `None` for the endpoint's own error body.
        body: Option<String>,
    },
    /// Sleep this long, then answer normally.
    Delay(Duration),
    /// Read the request, then never answer (the connection stays open until shutdown).
    Hang,
    /// `200` with the body the request would have got, cut in half.
    TruncatedJson,
    /// `200` with an HTML page (`text/html`), like a proxy's captive portal.
    Html,
    /// This status with an HTML error page (`text/html`), like a proxy's `502 Bad Gateway`.
    HtmlError(u16),
    /// `200`, `application/json`, a body of exactly this many bytes (streamed in chunks, never
    /// held in memory at once). It starts like a token response and, when long enough to
    /// hold one, is a complete JSON object.
    Oversized(usize),
    /// Anything, verbatim.
    Body {
        /// The HTTP status code.
        status: u16,
        /// The `Content-Type` header value (left out if it is not a valid header value).
        content_type: String,
        /// The body bytes.
        body: Vec<u8>,
    },
    /// Read the request, then close the connection without sending anything.
    CloseConnection,
}

/// The shape of successful token responses on an endpoint (see [`Emulator::set_response_shape`](crate::Emulator::set_response_shape)).
///
/// Only token endpoints ([`Endpoint::Imds`], [`Endpoint::AppService`]) have shapes; setting one
/// on another endpoint has no effect.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseShape {
    /// The endpoint's real shape. IMDS: `access_token`, `refresh_token` (`""`), `expires_in`,
    /// `expires_on`, `not_before`, `resource`, `token_type`, all JSON strings. App Service
    /// 2019-08-01: `access_token`, `expires_on` (string epoch), `resource`, `token_type`,
    /// `client_id`; no `expires_in`.
    #[default]
    Standard,
    /// `expires_on` (and `expires_in` where present) as JSON numbers.
    NumericExpiry,
    /// No `expires_in` (App Service never has one).
    NoExpiresIn,
    /// Adds `refresh_in` with this many seconds, as a JSON string like the other values.
    WithRefreshIn(u64),
    /// `expires_on` as the legacy App Service date `MM/DD/YYYY hh:mm:ss AM +00:00` (UTC), and no
    /// `expires_in`.
    ExpiresOnDate,
    /// `expires_on` shifted by this many seconds against the token's real `exp` (a skewed server
    /// clock); `expires_in` stays right.
    ExpiresOnOffset(i64),
}

/// How the emulated Graph turns down a request that carries a valid token (see
/// [`Emulator::push_graph_rejection`](crate::Emulator::push_graph_rejection)).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphRejection {
    /// `401` with `WWW-Authenticate: Bearer …, error="invalid_token"`, as for a revoked token.
    InvalidToken,
    /// `401` with a Continuous Access Evaluation claims challenge:
    /// `error="insufficient_claims", claims="<base64 of this JSON>"`.
    ClaimsChallenge(String),
    /// `429 Too Many Requests` with `Retry-After: <seconds>`.
    Throttled(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_shape() {
        for _ in 0..100 {
            let g = guid();
            assert_eq!(g.len(), 36);
            assert_eq!(&g[14..15], "4");
            assert!(matches!(&g[19..20], "8" | "9" | "a" | "b"), "{g}");
            assert!(
                g.chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
            );
        }
    }
}
