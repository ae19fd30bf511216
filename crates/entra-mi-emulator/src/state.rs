//! State shared by the handlers and the `Emulator` handle: identities, token minting and
//! caching, counters, fault queues and response shapes.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::keys::{KeyRing, SigningKey};
use crate::model::{Endpoint, Fault, Identity, ResponseShape};
use crate::time::now_secs;

/// Locks a mutex, ignoring poisoning (every critical section leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A token as issued, kept for the endpoint-side cache.
#[derive(Clone)]
pub(crate) struct Issued {
    pub(crate) token: String,
    pub(crate) nbf: u64,
    pub(crate) exp: u64,
    minted: Instant,
    lifetime: Duration,
}

/// Everything the builder configured, plus the mutable knobs.
pub(crate) struct Shared {
    pub(crate) tenant_id: String,
    pub(crate) base_url: String,
    pub(crate) system: Option<Identity>,
    pub(crate) users: Vec<Identity>,
    pub(crate) keys: Mutex<KeyRing>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) sources: crate::sources::SourcesState,
    pub(crate) entra: crate::entra::EntraState,
    roles: HashMap<(String, String), Vec<String>>,
    cache_tokens: bool,
    lifetime: Mutex<Duration>,
    identity_header: Mutex<String>,
    tokens: Mutex<HashMap<(String, String), Issued>>,
    counters: [AtomicUsize; Endpoint::COUNT],
    faults: Mutex<[VecDeque<Fault>; Endpoint::COUNT]>,
    shapes: Mutex<[ResponseShape; Endpoint::COUNT]>,
    pub(crate) graph: crate::graph::GraphState,
    pub(crate) perms: crate::graph_perms::PermsState,
    /// Resources whose tokens are v2 tokens.
    pub(crate) v2_resources: Vec<String>,
}

/// The inputs of [`Shared::new`].
pub(crate) struct Config {
    pub(crate) tenant_id: String,
    pub(crate) base_url: String,
    pub(crate) system: Option<Identity>,
    pub(crate) users: Vec<Identity>,
    pub(crate) roles: HashMap<(String, String), Vec<String>>,
    pub(crate) cache_tokens: bool,
    pub(crate) lifetime: Duration,
    pub(crate) identity_header: String,
    pub(crate) apis: Vec<crate::graph_perms::ApiApp>,
    pub(crate) sources: crate::sources::SourcesConfig,
    pub(crate) entra: crate::entra::EntraConfig,
    pub(crate) v2_resources: Vec<String>,
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
pub(crate) const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A lifetime brought into `MIN_LIFETIME..=MAX_TOKEN_LIFETIME`, in whole seconds.
fn bounded_lifetime(d: Duration) -> Duration {
    Duration::from_secs(
        d.as_secs()
            .clamp(MIN_LIFETIME.as_secs(), crate::MAX_TOKEN_LIFETIME.as_secs()),
    )
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        key: Arc<SigningKey>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Shared {
            tenant_id: config.tenant_id,
            base_url: config.base_url,
            system: config.system,
            users: config.users,
            keys: Mutex::new(KeyRing::new(key)),
            shutdown,
            sources: crate::sources::SourcesState::new(config.sources),
            entra: crate::entra::EntraState::new(config.entra),
            roles: config.roles,
            cache_tokens: config.cache_tokens,
            lifetime: Mutex::new(bounded_lifetime(config.lifetime)),
            identity_header: Mutex::new(config.identity_header),
            tokens: Mutex::new(HashMap::new()),
            counters: Default::default(),
            faults: Mutex::new(Default::default()),
            shapes: Mutex::new(Default::default()),
            graph: Default::default(),
            perms: crate::graph_perms::PermsState::new(config.apis),
            v2_resources: config.v2_resources,
        }
    }

    /// `https://sts.windows.net/<tid>/`: managed-identity tokens are v1 tokens.
    pub(crate) fn issuer(&self) -> String {
        format!("https://sts.windows.net/{}/", self.tenant_id)
    }

    /// Signs `claims` with the current signing key.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> Result<String, String> {
        let key = lock(&self.keys).current();
        key.sign(claims)
    }

    /// The published key named by `token`'s header (`kid`), to verify what the emulator signed.
    pub(crate) fn verification_key(&self, token: &str) -> Option<Arc<SigningKey>> {
        let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
        lock(&self.keys).find(&kid)
    }

    pub(crate) fn count(&self, ep: Endpoint) {
        self.counters[ep.index()].fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn requests(&self, ep: Endpoint) -> usize {
        self.counters[ep.index()].load(Ordering::SeqCst)
    }

    pub(crate) fn reset_counts(&self) {
        for c in &self.counters {
            c.store(0, Ordering::SeqCst);
        }
    }

    pub(crate) fn push_fault(&self, ep: Endpoint, f: Fault) {
        lock(&self.faults)[ep.index()].push_back(f);
    }

    pub(crate) fn pop_fault(&self, ep: Endpoint) -> Option<Fault> {
        lock(&self.faults)[ep.index()].pop_front()
    }

    pub(crate) fn set_shape(&self, ep: Endpoint, s: ResponseShape) {
        lock(&self.shapes)[ep.index()] = s;
    }

    pub(crate) fn shape(&self, ep: Endpoint) -> ResponseShape {
        lock(&self.shapes)[ep.index()]
    }

    /// Changes the lifetime of tokens minted from now on (bounded like the builder's), and
    /// forgets cached tokens so that the next request gets one with the new lifetime.
    pub(crate) fn set_lifetime(&self, d: Duration) {
        *lock(&self.lifetime) = bounded_lifetime(d);
        lock(&self.tokens).clear();
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
            .apis
            .iter()
            .find(|a| a.identifier_uris.iter().any(|u| u == resource))
            .map_or(resource, |a| a.app_id.as_str())
    }

    /// Forgets every token the endpoints cached (after a key rotation).
    pub(crate) fn forget_cached_tokens(&self) {
        lock(&self.tokens).clear();
    }

    pub(crate) fn identity_header(&self) -> String {
        lock(&self.identity_header).clone()
    }

    pub(crate) fn set_identity_header(&self, v: &str) {
        v.clone_into(&mut lock(&self.identity_header));
    }

    /// Every identity of the machine, system-assigned first.
    pub(crate) fn all_identities(&self) -> impl Iterator<Item = &Identity> {
        self.system.iter().chain(self.users.iter())
    }

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
}
