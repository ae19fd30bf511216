//! The token cache contract, end to end: a real credential talking to a scripted loopback
//! server, with a manual clock shared by the credential and the cache.

use entra_mi_test_support as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use entra_mi::time::{Clock, ManualClock};
use entra_mi::{
    AccessToken, Audience, Environment, Error, ManagedIdentityCredential, RetryOptions,
    TokenCredential, TokenProvider, TokenRequest,
};
use serde_json::json;
use support::{RawServer, Reply, eventually, imds_body};

mod refresh;
mod serving;
mod threads;

fn token_reply(clock: &ManualClock, token: &str, lifetime: u64) -> Reply {
    let now = clock
        .system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Reply::json(200, imds_body(token, now, lifetime))
}

struct Setup {
    clock: ManualClock,
    server: RawServer,
    provider: TokenProvider,
}

async fn setup(fallback: impl FnOnce(&ManualClock) -> Reply, eager: bool) -> Setup {
    let clock = ManualClock::new();
    let server = RawServer::start(fallback(&clock)).await;
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://{}", server.addr),
        )]))
        .time_source(clock.time_source(0.0))
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();
    let provider = TokenProvider::builder(credential)
        .time_source(clock.time_source(0.0))
        .eager_refresh(eager)
        .build();
    Setup {
        clock,
        server,
        provider,
    }
}

fn graph() -> Audience {
    Audience::microsoft_graph()
}
