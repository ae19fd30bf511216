//! Minting managed-identity access tokens (v1, or v2 for the APIs that ask for them) and the
//! endpoint-side token cache: the same identity and resource get the same token until it is
//! past half its life.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Shared, lock};
use crate::model::Identity;
use crate::time::now_secs;

/// A token as issued, kept for the endpoint-side cache.
#[derive(Clone)]
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) nbf: u64,
    pub(crate) exp: u64,
    minted: Instant,
    lifetime: Duration,
}

/// The claims of an emulated managed-identity access token (an Entra v1 app-only token).
#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    appid: &'a str,
    appidacr: &'static str,
    azp: &'a str,
    idp: &'a str,
    idtyp: &'static str,
    oid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    roles: Option<&'a [String]>,
    sub: &'a str,
    tid: &'a str,
    uti: String,
    ver: &'static str,
    xms_mirid: &'a str,
}

/// The smallest lifetime a token gets.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A lifetime brought into `MIN_LIFETIME..=MAX_TOKEN_LIFETIME`, in whole seconds.
pub(super) fn bounded_lifetime(d: Duration) -> Duration {
    Duration::from_secs(
        d.as_secs()
            .clamp(MIN_LIFETIME.as_secs(), crate::MAX_TOKEN_LIFETIME.as_secs()),
    )
}

impl Shared {
    /// A token for `identity` and `resource`: the cached one while it is younger than half its
    /// lifetime (when caching is on), else a freshly minted one.
    pub(crate) fn token_for(&self, identity: &Identity, resource: &str) -> Result<Issued, String> {
        let key = (identity.object_id.clone(), resource.to_owned());
        if self.cache_tokens
            && let Some(t) = lock(&self.tokens).get(&key)
            && t.minted.elapsed() < t.lifetime / 2
        {
            return Ok(t.clone());
        }
        let issued = self.mint(identity, resource)?;
        if self.cache_tokens {
            lock(&self.tokens).insert(key, issued.clone());
        }
        Ok(issued)
    }

    /// Forgets the cached token for `identity` and `resource` if its SHA-256 is `sha256_hex`
    /// (Service Fabric's `token_sha256_to_refresh`: the caller says which token an API
    /// rejected, and gets a new one instead of the cached one).
    pub(crate) fn forget_token_if_sha256(
        &self,
        identity: &Identity,
        resource: &str,
        sha256_hex: &str,
    ) {
        let key = (identity.object_id.clone(), resource.to_owned());
        let mut tokens = lock(&self.tokens);
        let matches = tokens.get(&key).is_some_and(|t| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.token.as_bytes());
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            hex.eq_ignore_ascii_case(sha256_hex)
        });
        if matches {
            tokens.remove(&key);
        }
    }

    fn mint(&self, identity: &Identity, resource: &str) -> Result<Issued, String> {
        let lifetime = bounded_lifetime(*lock(&self.lifetime));
        let iat = now_secs();
        // The lifetime is bounded where it is set; saturating keeps a bad clock or a future
        // change from panicking here all the same.
        let exp = iat.saturating_add(lifetime.as_secs());
        let iss = self.issuer();
        // Roles configured on the builder, then those granted through the Graph endpoint.
        let mut all_roles: Vec<String> = self
            .roles
            .get(&(identity.object_id.to_ascii_lowercase(), resource.to_owned()))
            .cloned()
            .unwrap_or_default();
        for r in self.perms.assigned_roles(&identity.object_id, resource) {
            if !all_roles.contains(&r) {
                all_roles.push(r);
            }
        }
        let roles = (!all_roles.is_empty()).then_some(all_roles.as_slice());
        let uti_bytes: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        let uti =
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, uti_bytes);
        if self.v2_for(resource) {
            let claims = crate::tokens_v2::claims(&crate::tokens_v2::V2Token {
                base_url: &self.base_url,
                tenant: &self.tenant_id,
                audience: self.v2_audience(resource),
                client_id: &identity.client_id,
                object_id: &identity.object_id,
                roles: &all_roles,
                credential: "2",
                iat,
                exp,
                mirid: Some(&identity.resource_id),
                uti,
            });
            return Ok(Issued {
                token: self.sign(&claims)?,
                nbf: iat,
                exp,
                minted: Instant::now(),
                lifetime,
            });
        }
        let claims = Claims {
            aud: resource,
            iss: &iss,
            iat,
            nbf: iat,
            exp,
            appid: &identity.client_id,
            appidacr: "2",
            azp: &identity.client_id,
            idp: &iss,
            idtyp: "app",
            oid: &identity.object_id,
            roles,
            sub: &identity.object_id,
            tid: &self.tenant_id,
            uti,
            ver: "1.0",
            xms_mirid: &identity.resource_id,
        };
        let token = self.sign(&claims)?;
        Ok(Issued {
            token,
            nbf: iat,
            exp,
            minted: Instant::now(),
            lifetime,
        })
    }

    /// Whether tokens for `resource` are v2 tokens.
    pub(crate) fn v2_for(&self, resource: &str) -> bool {
        self.v2_resources.iter().any(|v| {
            v == resource
                || self.perms.apis.iter().any(|a| {
                    a.identifier_uris.iter().any(|u| u == v)
                        && a.identifier_uris.iter().any(|u| u == resource)
                })
        })
    }

    /// The `aud` of a v2 token for `resource`: the API's client id when the tenant has the
    /// API, else the resource as asked.
    pub(crate) fn v2_audience<'a>(&'a self, resource: &'a str) -> &'a str {
        self.perms
            .api_for(resource)
            .map_or(resource, |a| a.app_id.as_str())
    }
}
