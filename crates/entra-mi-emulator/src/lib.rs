#![doc = include_str!("../README.md")]
//!
//! # Endpoints
//!
//! [`Emulator`] serves, on `127.0.0.1` with a free port:
//!
//! - **IMDS** (VMs, VM scale sets, AKS nodes): `GET /metadata/identity/oauth2/token` with
//!   `Metadata: true`, selectors `client_id` / `object_id` / `msi_res_id`;
//! - **App Service / Functions** (api-version 2019-08-01): `GET /msi/token` with
//!   `X-IDENTITY-HEADER`, selectors `client_id` / `principal_id` (alias `object_id`) /
//!   `mi_res_id`;
//!
//! - **Azure Arc** (`GET /arc/metadata/identity/oauth2/token`): the `401` challenge naming a
//!   fresh key file written to a directory the caller provides, then `Authorization: Basic`;
//! - **Service Fabric**: on a second, TLS listener with a certificate generated at start
//!   ([`Emulator::service_fabric_thumbprint`]), `Secret` header, nested error bodies;
//! - **2017-09-01** (Azure ML, legacy App Service: `GET /MSI/auth`, `secret` header,
//!   `clientid`) and **Cloud Shell** (`POST /oauth2/token` with a form body);
//! - a **Key Vault** with secrets ([`KeyVault`], opt-in): over TLS on a third port, behind
//!   Key Vault's bearer challenge, for the official Azure SDK clients;
//! - the **Entra v2.0 token endpoint** (`POST /<tenant>/oauth2/v2.0/token`) for registered
//!   [`App`]s, which really checks client secrets, certificate assertions (signature against
//!   the registered certificate, `aud`, `iss`/`sub`, `exp`, `jti` replay) and federated
//!   assertions (signature, `exp`, `aud`, the app's federated credentials), and answers errors
//!   the way Entra does (`error`, `error_description` with its AADSTS code and trace lines,
//!   `error_codes`, `trace_id`, `correlation_id`, `timestamp`);
//!
//! plus the Entra discovery endpoints needed to validate what it issues: the v1 and v2 OpenID
//! Connect discovery documents and JSON Web Key Sets (v2 keys carry their `issuer`), for the
//! emulator's tenant, its additional tenants and `common`. Tokens are real RS256-signed v1
//! access tokens, or v2 tokens for the APIs that ask for them
//! ([`EmulatorBuilder::v2_tokens_for`]), with the app roles granted to the identity (by the
//! builder, or through the Graph endpoints `entra-mi perms grant` uses). The signing key
//! rotates on demand ([`Emulator::rotate_signing_key`]), and tests can sign any claims
//! ([`Emulator::sign_token`]).
//!
//! It is meant for tests and local development: it counts requests per endpoint, injects
//! faults ([`Fault`]: statuses with `Retry-After`, delays, hangs, dropped connections, HTML
//! and truncated or oversized bodies) and serves the response quirks clients must survive
//! ([`ResponseShape`]: numeric, date or skewed `expires_on`, missing `expires_in`,
//! `refresh_in`). Like the real endpoints, it hands out the very same token for the same
//! identity and resource until that token is past half its life.
//!
//! The emulator is written from the wire protocol alone: it shares no code with the
//! `entra-mi` client, so a test against it cannot agree with the client's own mistakes.
//!
//! # Crates used
//!
//! The server is `axum` on a `hyper` HTTP/1.1 accept loop of its own, so that a fault can drop
//! a connection without answering. Tokens are signed with `jsonwebtoken` (its `aws_lc_rs`
//! backend: `aws-lc-rs` is the workspace's crypto already, through rustls) using an RSA-2048
//! key generated with `rsa` at first start and shared by every emulator of the process
//! (Entra, too, signs every tenant's tokens with the same keys); a rotation
//! ([`Emulator::rotate_signing_key`]) gives that emulator a key of its own. The Service Fabric certificate is generated with `rcgen` and served
//! with `tokio-rustls`; thumbprints are computed with `aws-lc-rs` (the TLS provider) and
//! registered certificates are read with `x509-parser`. That key is a test key: `rsa` makes no constant-time promise
//! (RUSTSEC-2023-0071), which does not matter for an emulator on loopback.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod directory;
mod endpoint;
mod entra;
mod graph;
mod keys;
mod keyvault;
mod model;
mod routes;
mod server;
mod sources;
mod state;
mod time;
mod tls;
mod tokens_v2;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use directory::{AZURE_RESOURCE_MANAGER_APP_ID, ApiApp, App, AppRole, MICROSOFT_GRAPH_APP_ID};
pub use entra::{FEDERATED_ISSUER, TOKEN_EXCHANGE_AUDIENCE};
pub use keyvault::{KEY_VAULT_RESOURCE, KeyVault, KeyVaultCounts, KeyVaultEndpoint};
pub use model::{Endpoint, Fault, GraphRejection, Identity, ResponseShape};

use crate::keys::SigningKey;
use crate::state::{Config, Shared, lock};

/// The tenant id used when the builder is not given one.
pub const DEFAULT_TENANT_ID: &str = "4e7a1f2c-5b3d-4c8e-9a61-0d2f3b4c5e6f";

/// The default token lifetime: what real managed-identity endpoints hand out (about 24 h).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(86_399);

/// The longest token lifetime the emulator accepts: ten years of 365 days (315,360,000 s).
/// Real endpoints issue tokens for about a day; the bound only keeps `exp` a sane timestamp.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Why the emulator could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// No loopback port could be bound.
    #[error("cannot bind a loopback port (127.0.0.1:0)")]
    Bind(#[source] std::io::Error),
    /// The RSA signing key could not be generated.
    #[error("cannot generate the RSA signing key: {0}")]
    KeyGeneration(String),
    /// [`EmulatorBuilder::token_lifetime`] was given more than [`MAX_TOKEN_LIFETIME`].
    #[error(
        "EmulatorBuilder::token_lifetime: {seconds} seconds is out of range \
         (allowed: 1 to {max_seconds} seconds, i.e. up to 10 years)"
    )]
    TokenLifetimeOutOfRange {
        /// The lifetime asked for, in whole seconds.
        seconds: u64,
        /// The largest lifetime allowed, in seconds ([`MAX_TOKEN_LIFETIME`]).
        max_seconds: u64,
    },
}

/// Configures and starts an [`Emulator`]; see [`Emulator::builder`].
///
/// Its `Debug` output shows whether an identity header, MSI secret or app secrets were set,
/// never their values.
#[derive(Clone)]
pub struct EmulatorBuilder {
    tenant_id: String,
    token_lifetime: Duration,
    identities: Vec<Identity>,
    system: Option<Identity>,
    roles: HashMap<(String, String), Vec<String>>,
    identity_header: Option<String>,
    cache_tokens: bool,
    port: u16,
    apis: Vec<ApiApp>,
    sources: state::SourcesConfig,
    entra: state::EntraConfig,
    key_vault: Option<KeyVault>,
    v2_resources: Vec<String>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        EmulatorBuilder {
            tenant_id: DEFAULT_TENANT_ID.to_owned(),
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            identities: Vec::new(),
            system: Some(Identity::system_assigned()),
            roles: HashMap::new(),
            identity_header: None,
            cache_tokens: true,
            port: 0,
            apis: Vec::new(),
            sources: Default::default(),
            entra: Default::default(),
            key_vault: None,
            v2_resources: Vec::new(),
        }
    }
}

/// What `Debug` prints in place of a secret value.
pub(crate) const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for EmulatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorBuilder")
            .field("tenant_id", &self.tenant_id)
            .field("token_lifetime", &self.token_lifetime)
            .field("identities", &self.identities)
            .field("system", &self.system)
            .field("roles", &self.roles)
            .field(
                "identity_header",
                &self.identity_header.as_ref().map(|_| REDACTED),
            )
            .field("cache_tokens", &self.cache_tokens)
            .field("port", &self.port)
            .field("apis", &self.apis)
            .field("sources", &self.sources)
            .field("entra", &self.entra)
            .field("key_vault", &self.key_vault)
            .field("v2_resources", &self.v2_resources)
            .finish()
    }
}

impl EmulatorBuilder {
    /// The tenant the tokens are issued in (`tid`, the issuer, the discovery paths).
    /// Default: [`DEFAULT_TENANT_ID`].
    pub fn tenant_id(mut self, tid: impl Into<String>) -> Self {
        self.tenant_id = tid.into();
        self
    }

    /// The lifetime of tokens (`exp − iat`), at least one second (shorter values are raised to
    /// it; sub-second parts are dropped) and at most [`MAX_TOKEN_LIFETIME`] (ten years: longer
    /// values make [`start`](EmulatorBuilder::start) fail with
    /// [`EmulatorError::TokenLifetimeOutOfRange`]). Default: [`DEFAULT_TOKEN_LIFETIME`].
    pub fn token_lifetime(mut self, d: Duration) -> Self {
        self.token_lifetime = d;
        self
    }

    /// Adds a user-assigned identity.
    pub fn identity(mut self, id: Identity) -> Self {
        self.identities.push(id);
        self
    }

    /// The system-assigned identity: `None` for a machine without one (then requests that
    /// select no identity fail like on such a machine). Default: one with random ids
    /// ([`Identity::system_assigned`]).
    pub fn system_assigned(mut self, id: Option<Identity>) -> Self {
        self.system = id;
        self
    }

    /// Puts `roles` in the `roles` claim of tokens of the identity with this object id, for
    /// this exact audience string (`https://x` and `https://x/` are different audiences).
    /// Calls for the same pair add up.
    pub fn roles(mut self, object_id: &str, audience: &str, roles: &[&str]) -> Self {
        let entry = self
            .roles
            .entry((object_id.to_ascii_lowercase(), audience.to_owned()))
            .or_default();
        for r in roles {
            if !entry.iter().any(|e| e == r) {
                entry.push((*r).to_owned());
            }
        }
        self
    }

    /// The App Service identity header (`IDENTITY_HEADER`) requests must carry as
    /// `X-IDENTITY-HEADER`. Default: a random value.
    pub fn identity_header(mut self, secret: impl Into<String>) -> Self {
        self.identity_header = Some(secret.into());
        self
    }

    /// Whether the token endpoints cache tokens like the real ones do: the same identity and
    /// resource get the very same token until it is past half its life. Default: `true`.
    pub fn cache_tokens(mut self, on: bool) -> Self {
        self.cache_tokens = on;
        self
    }

    /// Adds an API (a resource application with app roles) to the emulated tenant. Microsoft
    /// Graph and Azure Resource Manager are always there.
    pub fn api(mut self, api: ApiApp) -> Self {
        self.apis.push(api);
        self
    }

    /// Issues v2.0 access tokens for `resource` (an API's App ID URI or client id; every
    /// identifier of an added [`ApiApp`] counts), like Entra for an API whose manifest sets
    /// `accessTokenAcceptedVersion` to 2: issuer `<base>/<tid>/v2.0`, `aud` the API's client
    /// id, `azp`/`azpacr` instead of `appid`/`appidacr`, `ver` 2.0. Other tokens stay v1.
    /// Calls add up.
    pub fn v2_tokens_for(mut self, resource: impl Into<String>) -> Self {
        self.v2_resources.push(resource.into());
        self
    }

    /// The loopback port to listen on (default 0: any free port). The emulator only ever
    /// listens on 127.0.0.1.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Binds `127.0.0.1:0` and starts serving in a spawned task of the current Tokio runtime.
    ///
    /// The first start in a process generates the RSA signing key (on the blocking pool).
    ///
    /// Fails with [`EmulatorError::TokenLifetimeOutOfRange`] when the token lifetime is longer
    /// than [`MAX_TOKEN_LIFETIME`], before binding anything.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        if self.token_lifetime.as_secs() > MAX_TOKEN_LIFETIME.as_secs() {
            return Err(EmulatorError::TokenLifetimeOutOfRange {
                seconds: self.token_lifetime.as_secs(),
                max_seconds: MAX_TOKEN_LIFETIME.as_secs(),
            });
        }
        let key = SigningKey::shared().await?;
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let (stop, stop_rx) = watch::channel(false);
        let config = Config {
            tenant_id: self.tenant_id,
            base_url: format!("http://{addr}"),
            system: self.system,
            users: self.identities,
            roles: self.roles,
            cache_tokens: self.cache_tokens,
            lifetime: self.token_lifetime,
            identity_header: self.identity_header.unwrap_or_else(model::guid),
            apis: self.apis,
            sources: self.sources,
            entra: self.entra,
            v2_resources: self.v2_resources,
        };
        let shared = Arc::new(Shared::new(config, key, stop_rx.clone()));
        let router = routes::router(shared.clone());
        // Service Fabric's endpoint: TLS with a certificate generated for this emulator.
        let tls = tls::bind(&["localhost", "127.0.0.1"]).await?;
        *lock(&shared.sources.service_fabric) = Some((
            format!("{}/metadata/identity/oauth2/token", tls.base_url),
            tls.thumbprint.clone(),
        ));
        let sf_router = sources::service_fabric_router(shared.clone());
        let tls_stop = stop_rx.clone();
        let (vault, key_vault) = match self.key_vault {
            Some(config) => {
                let (listener, router, vault) = keyvault::start(config, &shared).await?;
                (Some((listener, router)), Some(vault))
            }
            None => (None, None),
        };
        let vault_stop = stop_rx.clone();
        let task = tokio::spawn(async move {
            let vault = async move {
                if let Some((listener, router)) = vault {
                    tls::serve(listener, router, vault_stop).await;
                }
            };
            tokio::join!(
                server::serve(listener, router, stop_rx),
                tls::serve(tls, sf_router, tls_stop),
                vault
            );
        });
        Ok(Emulator {
            inner: Arc::new(Inner {
                shared,
                addr,
                key_vault,
                stop,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

/// A running emulator. Clones share it; it stops when the last clone is dropped or at
/// [`shutdown`](Emulator::shutdown).
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    addr: SocketAddr,
    key_vault: Option<Arc<keyvault::Vault>>,
    /// Dropping it (with the last `Emulator`) stops the server too.
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url())
            .field("tenant_id", &self.inner.shared.tenant_id)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// A builder with the defaults: one system-assigned identity, no user-assigned ones,
    /// 24 h tokens, token caching on.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        self.inner.shared.base_url.clone()
    }

    /// The bound address (always `127.0.0.1`).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The current value for `IDENTITY_HEADER` (App Service; Service Fabric's `secret` header
    /// too).
    pub fn identity_header(&self) -> String {
        self.inner.shared.identity_header()
    }

    /// Rotates the App Service identity header: from now on requests must carry this value.
    pub fn set_identity_header(&self, v: &str) {
        self.inner.shared.set_identity_header(v);
    }

    /// The tenant id (`tid`).
    pub fn tenant_id(&self) -> String {
        self.inner.shared.tenant_id.clone()
    }

    /// The tokens' issuer, `https://sts.windows.net/<tid>/` (managed-identity tokens are v1).
    pub fn issuer(&self) -> String {
        self.inner.shared.issuer()
    }

    /// The JSON Web Key Set: `<base>/<tid>/discovery/keys` (also served at
    /// `<base>/common/discovery/keys` and `<base>/<tid>/discovery/v2.0/keys`).
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/discovery/keys",
            self.base_url(),
            self.inner.shared.tenant_id
        )
    }

    /// The OpenID Connect discovery document: `<base>/<tid>/.well-known/openid-configuration`
    /// (`issuer`, `jwks_uri`, `token_endpoint`, …).
    pub fn openid_configuration_url(&self) -> String {
        format!(
            "{}/{}/.well-known/openid-configuration",
            self.base_url(),
            self.inner.shared.tenant_id
        )
    }

    /// The system-assigned identity, if the machine has one.
    pub fn system_identity(&self) -> Option<Identity> {
        self.inner.shared.system.clone()
    }

    /// The user-assigned identities, in the order they were added.
    pub fn identities(&self) -> Vec<Identity> {
        self.inner.shared.users.clone()
    }

    /// How many requests arrived on an endpoint, including rejected and faulted ones.
    pub fn requests(&self, ep: Endpoint) -> usize {
        self.inner.shared.requests(ep)
    }

    /// Sets every request counter back to zero.
    pub fn reset_counts(&self) {
        self.inner.shared.reset_counts();
    }

    /// Queues a fault on an endpoint. Each request to it takes the oldest queued fault (if any)
    /// before normal processing.
    pub fn push_fault(&self, ep: Endpoint, f: Fault) {
        self.inner.shared.push_fault(ep, f);
    }

    /// Sets the shape of successful token responses on a token endpoint.
    pub fn set_response_shape(&self, ep: Endpoint, s: ResponseShape) {
        self.inner.shared.set_shape(ep, s);
    }

    /// Sets the lifetime of tokens minted from now on and forgets the endpoint-side token
    /// cache, so the next request gets a token with this lifetime. Like the builder's setting
    /// it is at least one second; values beyond [`MAX_TOKEN_LIFETIME`] are lowered to it.
    pub fn set_token_lifetime(&self, d: Duration) {
        self.inner.shared.set_lifetime(d);
    }

    /// The signing key as a JWK, as Entra publishes its keys: `kty` RSA, `use` sig, `kid`,
    /// `x5t`, `n`, `e`, and no `alg` member.
    pub fn public_key_jwk(&self) -> serde_json::Value {
        state::lock(&self.inner.shared.keys).current().jwk().clone()
    }

    /// Stops the server (for every clone of this handle): no new connections, in-flight
    /// requests get up to two seconds to finish, hung ones are cut off. Returns once the
    /// server task has ended.
    pub async fn shutdown(self) {
        self.inner.stop.send_replace(true);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
