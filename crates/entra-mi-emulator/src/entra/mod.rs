//! The emulated Entra ID: the v2.0 token endpoint for registered apps ([`token`]), which
//! really checks client secrets and client assertions ([`assertion`]) and answers errors the
//! way Entra does ([`errors`]), and the discovery documents and key sets that validate what the
//! emulator issues ([`discovery`]).

mod assertion;
mod discovery;
mod errors;
mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::Serialize;

use crate::directory::App;
use crate::endpoint::route;
use crate::model::guid;
use crate::state::Shared;
use crate::time::now_secs;
use crate::{Emulator, EmulatorBuilder};

/// The routes of the token endpoint and the discovery endpoints.
pub(crate) fn router() -> Router<Arc<Shared>> {
    let router = route::<token::TokenEndpoint>(Router::new());
    let router = route::<discovery::Jwks>(router);
    route::<discovery::OpenIdConfiguration>(router)
}

/// The issuer of [`Emulator::federated_token`]s, like a Kubernetes cluster's OIDC issuer
/// (not served: Entra learns its keys from registration here).
pub const FEDERATED_ISSUER: &str = "https://oidc.entra-mi-emulator.invalid/cluster/";

/// The audience of federated tokens exchanged at Entra.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

impl EmulatorBuilder {
    /// Registers an app with the token endpoint (in the emulator's tenant).
    pub fn app(mut self, app: App) -> Self {
        self.entra.apps.push(app);
        self
    }

    /// Adds another tenant the token endpoint serves (for multi-tenant apps).
    pub fn additional_tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.entra.tenants.push(tenant_id.into());
        self
    }
}

/// Claims of a federated token minted by [`Emulator::federated_token`].
#[derive(Serialize)]
struct FederatedClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

impl Emulator {
    /// The authority host for credentials (`AZURE_AUTHORITY_HOST`): `http://127.0.0.1:<port>`.
    pub fn authority_host(&self) -> String {
        self.base_url()
    }

    /// `<base>/<tenant>/oauth2/v2.0/token`.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// A federated token (what Kubernetes projects into `AZURE_FEDERATED_TOKEN_FILE`) from
    /// [`FEDERATED_ISSUER`], signed with the emulator's key, valid for `lifetime` from now.
    /// `Duration::ZERO` gives a token that expired ten minutes ago.
    pub fn federated_token(&self, subject: &str, audience: &str, lifetime: Duration) -> String {
        let now = now_secs();
        let (iat, exp) = if lifetime.is_zero() {
            (now.saturating_sub(3600), now.saturating_sub(600))
        } else {
            (now, now.saturating_add(lifetime.as_secs().max(1)))
        };
        let iss = FEDERATED_ISSUER;
        let claims = FederatedClaims {
            iss,
            sub: subject,
            aud: audience,
            iat,
            nbf: iat,
            exp,
            jti: guid(),
        };
        self.inner.shared.sign(&claims).unwrap_or_default()
    }
}
