//! The state behind every endpoint and the `Emulator` handle: identities, signing keys,
//! counters, fault queues and response shapes, composed with each feature's own state
//! (submodules). Handlers import this module; it imports no handler.

mod entra;
mod graph;
mod sources;
mod tokens;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

pub(crate) use self::entra::{EntraConfig, EntraState};
pub(crate) use self::graph::{Assignment, GraphState, PermsState};
pub(crate) use self::sources::{SourcesConfig, SourcesState};
pub(crate) use self::tokens::Issued;
use self::tokens::bounded_lifetime;
use crate::directory::ApiApp;
use crate::keys::{KeyRing, SigningKey};
use crate::model::{Endpoint, Fault, Identity, ResponseShape};

/// Locks a mutex, ignoring poisoning (every critical section leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the builder configured, plus the mutable knobs.
pub(crate) struct Shared {
    pub(crate) tenant_id: String,
    pub(crate) base_url: String,
    pub(crate) system: Option<Identity>,
    pub(crate) users: Vec<Identity>,
    pub(crate) keys: Mutex<KeyRing>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) sources: SourcesState,
    pub(crate) entra: EntraState,
    roles: HashMap<(String, String), Vec<String>>,
    cache_tokens: bool,
    lifetime: Mutex<Duration>,
    identity_header: Mutex<String>,
    tokens: Mutex<HashMap<(String, String), Issued>>,
    counters: [AtomicUsize; Endpoint::COUNT],
    faults: Mutex<[VecDeque<Fault>; Endpoint::COUNT]>,
    shapes: Mutex<[ResponseShape; Endpoint::COUNT]>,
    pub(crate) graph: GraphState,
    pub(crate) perms: PermsState,
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
    pub(crate) apis: Vec<ApiApp>,
    pub(crate) sources: SourcesConfig,
    pub(crate) entra: EntraConfig,
    pub(crate) v2_resources: Vec<String>,
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
            sources: SourcesState::new(config.sources),
            entra: EntraState::new(config.entra),
            roles: config.roles,
            cache_tokens: config.cache_tokens,
            lifetime: Mutex::new(bounded_lifetime(config.lifetime)),
            identity_header: Mutex::new(config.identity_header),
            tokens: Mutex::new(HashMap::new()),
            counters: Default::default(),
            faults: Mutex::new(Default::default()),
            shapes: Mutex::new(Default::default()),
            graph: Default::default(),
            perms: PermsState::new(config.apis),
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
}
