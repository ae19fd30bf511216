//! The managed-identity credential on the wire, against a scripted loopback server: request
//! shapes, every response shape, every kind of bad answer, and the retry rules.

use entra_mi_test_support as support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_mi::error::Unavailable;
use entra_mi::managed_identity::SourceKind;
use entra_mi::time::ManualClock;
use entra_mi::{
    Audience, Environment, Error, ManagedIdentityCredential, RetryOptions, TokenCredential,
    TokenProvider, TokenRequest,
};
use serde_json::json;
use support::{RawServer, Reply, imds_body};

mod audiences;
mod bad_answers;
mod requests;
mod responses;
mod retries;

const CANARY: &str = "eyJ0eXAiOiJKV1QifQ.CANARY-SECRET-TOKEN.c2ln";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn imds_env(server: &RawServer) -> Environment {
    Environment::from_vars([(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://{}/", server.addr),
    )])
}

fn app_service_env(server: &RawServer, secret: &str) -> Environment {
    Environment::from_vars([
        ("IDENTITY_ENDPOINT", server.url("/msi/token")),
        ("IDENTITY_HEADER", secret.to_string()),
    ])
}

fn imds(server: &RawServer) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(imds_env(server))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn imds_with(server: &RawServer, time: entra_mi::time::TimeSource) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(imds_env(server))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .time_source(time)
        .build()
        .unwrap()
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

/// Asserts that nothing about `err` shows the canary token.
fn assert_no_canary(err: &Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("CANARY"), "secret leaked: {shown}");
}
