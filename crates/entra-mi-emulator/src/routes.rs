//! The main listener's router: every endpoint but Service Fabric's, which has a TLS listener
//! of its own (the key vault's TLS listener serves these routes too).

use std::sync::Arc;

use axum::Router;

use crate::state::Shared;

/// The managed-identity sources, Entra and Graph, on `shared`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(crate::sources::router())
        .merge(crate::entra::router())
        .merge(crate::graph::router())
        .with_state(shared)
}
