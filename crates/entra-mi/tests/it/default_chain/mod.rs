//! `DefaultCredential`: link order, `AZURE_TOKEN_CREDENTIALS`, the one IMDS probe, the sticky
//! winner, no fall-through after a managed-identity failure, and the aggregated error.
#![cfg(unix)]

use entra_mi_test_support as support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_mi::credentials::ChainLink;
use entra_mi::{Audience, DefaultCredential, Environment, Error, TokenCredential, TokenRequest};
use entra_mi_emulator::{
    App, Emulator, Endpoint, FEDERATED_ISSUER, Identity, TOKEN_EXCHANGE_AUDIENCE,
};
use serde_json::json;
use support::{RawServer, Reply, jwt_claims};

mod limits;
mod links;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("entra-mi-chain-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// A stand-in `az` that succeeds and leaves a marker file when it runs.
fn az(tag: &str) -> Dir {
    let d = dir(tag);
    let expires_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let path = d.0.join("az");
    support::script::write_executable(
        &path,
        &format!(
            "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\necho '{{\"accessToken\": \"cli.token.x\", \"expires_on\": {expires_on}, \"tokenType\": \"Bearer\"}}'\n"
        ),
    );
    d
}

fn env(vars: Vec<(&str, String)>) -> Environment {
    Environment::from_vars(vars)
}

fn path_of(d: &Dir) -> String {
    format!("{}:/usr/bin:/bin", d.0.display())
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn chain(env: Environment) -> DefaultCredential {
    DefaultCredential::builder()
        .environment(env)
        .allow_loopback_http(true)
        .imds_probe_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}
