//! The Microsoft Graph subset that identity listing and app-role management use, behind
//! Graph's bearer-token checks: service principals ([`service_principals`]) and app-role
//! assignments ([`app_roles`]); who may call ([`auth`]); Graph's errors and paging
//! ([`odata`]).

mod app_roles;
mod auth;
mod odata;
mod service_principals;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::routing::any;

use crate::Emulator;
use crate::model::GraphRejection;
use crate::state::{Shared, lock};

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/servicePrincipals", any(service_principals::list))
        .route(
            "/v1.0/servicePrincipals/{id}",
            any(service_principals::by_id),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignments",
            any(app_roles::assignments),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignments/{assignment}",
            any(app_roles::one_assignment),
        )
}

impl Emulator {
    /// The base of the emulated Microsoft Graph: `<base>/v1.0` (so
    /// `<base>/v1.0/servicePrincipals` lists the identities).
    ///
    /// It checks bearer tokens like Graph: a missing or malformed token, a bad signature, an
    /// `aud` other than `https://graph.microsoft.com` (or Graph's app id) or an `exp` in the
    /// past get `401` with `WWW-Authenticate: Bearer …` (and `error="invalid_token"` when a
    /// token was sent) and a Graph error body, code `InvalidAuthenticationToken`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }

    /// How many requests reached the Graph endpoint, including rejected ones.
    pub fn graph_requests(&self) -> usize {
        self.inner.shared.graph.requests.load(Ordering::SeqCst)
    }

    /// Queues a rejection: the next request with a valid token is turned down this way.
    pub fn push_graph_rejection(&self, rejection: GraphRejection) {
        lock(&self.inner.shared.graph.rejections).push_back(rejection);
    }

    /// When on, every request is turned down with `invalid_token`, valid token or not.
    pub fn reject_all_graph_tokens(&self, on: bool) {
        self.inner.shared.graph.always.store(on, Ordering::SeqCst);
    }
}
