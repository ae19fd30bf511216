//! The managed-identity endpoints, one module per source: each owns its checks, its error
//! wording and its token body, and reaches no other source's module. What several of them
//! share on the wire is in [`common`]; their state is in `crate::state`.
//!
//! | source | module | endpoint |
//! |---|---|---|
//! | IMDS (VMs, scale sets, AKS) | [`imds`] | `GET /metadata/identity/oauth2/token` |
//! | App Service, Functions (2019-08-01) | [`app_service`] | `GET /msi/token` |
//! | Azure Arc | [`arc`] | `GET /arc/metadata/identity/oauth2/token` |
//! | Service Fabric (TLS listener) | [`service_fabric`] | `GET /metadata/identity/oauth2/token` |
//! | Azure ML, legacy App Service (2017-09-01) | [`msi_2017`] | `GET /MSI/auth` |
//! | Cloud Shell | [`cloud_shell`] | `POST /oauth2/token` |

mod app_service;
mod arc;
mod cloud_shell;
mod common;
mod imds;
mod msi_2017;
mod service_fabric;

use std::sync::Arc;

use axum::Router;

use crate::endpoint::route;
use crate::state::Shared;

/// The routes of the sources served on the emulator's main (plain HTTP) listener.
pub(crate) fn router() -> Router<Arc<Shared>> {
    let router = Router::new();
    let router = route::<imds::Imds>(router);
    let router = route::<app_service::AppService>(router);
    let router = route::<arc::AzureArc>(router);
    let router = route::<msi_2017::Msi2017>(router);
    route::<cloud_shell::CloudShell>(router)
}

/// The router of the TLS listener (Service Fabric).
pub(crate) fn service_fabric_router(shared: Arc<Shared>) -> Router {
    route::<service_fabric::ServiceFabric>(Router::new()).with_state(shared)
}
