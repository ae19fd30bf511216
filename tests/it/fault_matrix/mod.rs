//! The fault matrix: what production does to a token source, against real servers on loopback
//! only (scripted raw HTTP on `127.0.0.1:0`, a byte-counting streamer, and the emulator), each
//! fault with its expected outcome asserted — no panic, a **typed** error (matched on its
//! variant and reason) whose text names the cause, the number of requests the source's retry
//! policy allows, and, through a [`TokenProvider`], a valid cached token that is never lost.
//! Time is virtual (`ManualClock`, `InstantSleep`); only the hang faults wait, for 300 ms.
//!
//! `cargo test -p entra-mi-suite --test it fault_matrix -- --nocapture` prints every table with
//! its count.
//!
//! # The matrix (`fault_matrix`), by source
//!
//! | # | source | fault | expected outcome |
//! |---|---|---|---|
//! | 1 | IMDS | `410` for 70 s of virtual time, then a token | retried through it; the token arrives after ≥ 70 s |
//! | 2 | IMDS | `429` with `Retry-After: 7` | waits 7 s, one retry, token |
//! | 3 | IMDS | `429` without `Retry-After`, always | exponential backoff, 6 attempts, `Status { 429 }` |
//! | 4 | IMDS | `500`, `502`, `503`, `504`, then a token | 4 retries with growing delays, token |
//! | 5 | IMDS | `400` | `Refused`, 1 request |
//! | 6 | IMDS | `401` | `Refused`, 1 request |
//! | 7 | IMDS | `403` without an error body | `UnexpectedStatus { 403 }`, 1 request |
//! | 8 | IMDS | connection refused (a port bound, not listening) | `Connect`, retried to the budget |
//! | 9 | IMDS | accept, then never answer (deadline 300 ms) | `DeadlineExceeded` (not unavailable) after `Timeout(300 ms)`, 1 request |
//! | 10 | IMDS | connection closed mid-body | `Transport`, retried to the budget |
//! | 11 | IMDS | truncated JSON | `NotJson` "truncated", 1 request |
//! | 12 | IMDS | a 1 GiB body, streamed without `Content-Length` | `BodyTooLarge { 65536 }`; the server saw the client hang up long before 1 GiB |
//! | 13 | IMDS | token JSON labelled `text/plain` | accepted: the body decides, not the label |
//! | 14 | IMDS | token JSON labelled `text/html` | `Html`: a page, whatever it contains |
//! | 15 | IMDS | `access_token` missing | `InvalidResponse` "`access_token` is missing" |
//! | 16 | IMDS | `expires_on` in the past | `InvalidResponse` "already-expired token" |
//! | 17 | IMDS | `expires_on` zero | `InvalidResponse` "before 2001" (no `expires_in` to confirm a relative lifetime) |
//! | 18 | IMDS | `expires_on` 100 years ahead | `InvalidResponse` "longer than" |
//! | 19 | IMDS | bytes that are not UTF-8 | `NotJson` "not UTF-8" |
//! | 20 | IMDS | `302` with `Location` | `Redirect { 302 }`; the target got 0 requests |
//! | 21 | App Service | `307` with `Location` | `Redirect { 307 }`; the target (and the identity header) got nothing |
//! | 22 | App Service | `500`, `503`, `504`, then a token | 3 retries, token |
//! | 23 | App Service | `502` (not in its retry list) | `Status { 502 }`, 1 request |
//! | 24 | App Service | HTML page with `200` | `Html { 200 }` |
//! | 25 | Azure Arc | `200` on the first leg, no challenge | `InvalidResponse` naming the missing `401` challenge |
//! | 26 | Azure Arc (emulator) | `500` on the challenge leg | retried, then challenge and key file, token |
//! | 27 | Service Fabric (emulator) | certificate does not match the pinned thumbprint | `TlsVerification`, not retried; no request got through |
//! | 28 | Service Fabric (emulator) | `503` twice, then a token | retried, token |
//! | 29 | Service Fabric (emulator) | `400` | `Refused`, 1 request |
//! | 30 | Cloud Shell | `400 AudienceNotSupported` | `Refused` with the `az login --scope` hint |
//! | 31 | Cloud Shell | connection closed without an answer | `Transport`, retried to the budget |
//! | 32 | Azure ML (emulator) | wrong `MSI_SECRET` (`401`) | `Refused { 401 }`, 1 request |
//! | 33 | Azure ML / 2017 | `expires_on` as a legacy date in the past | `InvalidResponse` "already-expired token" |
//! | 34 | workload identity (emulator) | token file missing | `Configuration(AZURE_FEDERATED_TOKEN_FILE)`, nothing sent |
//! | 35 | workload identity (emulator) | Entra `503` twice | one retry, then `TokenEndpoint { 503 }` |
//! | 36 | client secret (emulator) | wrong secret (`401`) | `TokenEndpoint` AADSTS7000215, 1 request |
//! | 37 | client secret (emulator) | `500` once, then a token | one retry, token |
//! | 38 | client secret (emulator) | `429` with `Retry-After` | `TokenEndpoint { 429 }` at once (Entra: retry 5xx only) |
//! | 39 | client secret (emulator) | truncated JSON | `TokenEndpointUnavailable { NotJson }` |
//! | 40 | client secret (emulator) | 1 GiB body | cut at the cap, not asked for again, `TokenEndpointUnavailable { BodyTooLarge }` |
//! | 41 | client secret (emulator) | accept, then never answer (deadline 300 ms) | `DeadlineExceeded` after `TokenEndpointUnavailable { Timeout }`, 1 request |
//! | 42 | client secret | connection refused | `TokenEndpointUnavailable { Connect }`, one retry |
//! | 43 | client secret | `302` from the token endpoint | `TokenEndpointUnavailable { Redirect { 302 } }`; the target got 0 requests |
//! | 44 | client secret (emulator over TLS) | the authority's certificate is not trusted | `TlsVerification`, not retried; no request got through |
//!
//! # A valid cached token is never lost (`refresh_faults_keep_the_cached_token`)
//!
//! A `TokenProvider` holding a 10-minute token is moved into its stale window, and its
//! background refresh meets one of: `500`, `429`, `403`, a hang, a connection closed mid-body,
//! truncated JSON, an HTML page, a 1 GiB body, a `302`, a missing `access_token`, an
//! `expires_on` in the past, non-UTF-8 bytes, a refused connection. Each time the old token is
//! still served and `stats()` counts exactly one failure.
//!
//! # Environment (`bad_and_empty_environment_values`)
//!
//! A bad and an empty value of every variable the core crate reads: `IDENTITY_ENDPOINT`,
//! `IDENTITY_HEADER`, `IDENTITY_SERVER_THUMBPRINT`, `IMDS_ENDPOINT`, `MSI_ENDPOINT`,
//! `MSI_SECRET`, `AZURE_POD_IDENTITY_AUTHORITY_HOST`, `DEFAULT_IDENTITY_CLIENT_ID`,
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_AUTHORITY_HOST`,
//! `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_CERTIFICATE_PATH`,
//! `AZURE_CLIENT_CERTIFICATE_PASSWORD`, `AZURE_CLIENT_SEND_CERTIFICATE_CHAIN`,
//! `AZURE_TOKEN_CREDENTIALS` and `PATH` (for `az`; `SYSTEMROOT` is read on Windows only).
//! A bad value is a typed error naming the variable; an empty one counts as unset. Always
//! injected through [`Environment::from_vars`]: the process environment is never touched.

use entra_mi_test_support as support;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_mi::credentials::{
    AzureCliCredential, ChainLink, ClientCertificateCredential, ClientSecretCredential,
    TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentityCredential,
};
use entra_mi::error::Unavailable;
use entra_mi::managed_identity::SourceKind;
use entra_mi::time::TimeSource;
use entra_mi::time::{Clock, ManualClock};
use entra_mi::{
    Audience, DefaultCredential, Environment, Error, ManagedIdentityCredential, RetryOptions,
    TokenCredential, TokenProvider, TokenRequest,
};
use entra_mi_emulator::{App, Emulator, Endpoint, FEDERATED_ISSUER, Fault as EmuFault};
use serde_json::json;
use support::{RawServer, Reply, eventually, imds_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod app_service;
mod arc;
mod azure_ml;
mod cloud_shell;
mod entra;
mod environment;
mod imds;
mod refresh;
mod service_fabric;

use app_service::{
    app_service_5xx_sequence, app_service_502, app_service_html, app_service_redirect,
};
use arc::{arc_500_then_token, arc_no_challenge};
use azure_ml::{azure_ml_date_in_the_past, azure_ml_wrong_secret};
use cloud_shell::{cloud_shell_audience, cloud_shell_closed};
use entra::{
    secret_429, secret_500_then_token, secret_connection_refused, secret_hang, secret_one_gib_body,
    secret_redirect, secret_truncated_json, secret_untrusted_certificate, secret_wrong,
    wi_entra_503, wi_file_missing,
};
use imds::{
    imds_5xx_sequence, imds_400, imds_401, imds_403, imds_429_with_retry_after,
    imds_429_without_retry_after, imds_closed_mid_body, imds_connection_refused,
    imds_expires_on_far_future, imds_expires_on_past, imds_expires_on_zero, imds_gone_for_70_s,
    imds_hang, imds_json_as_html, imds_json_as_text_plain, imds_missing_access_token,
    imds_non_utf8, imds_one_gib_body, imds_redirect, imds_truncated_json,
};
use service_fabric::{sf_400, sf_503_then_token, sf_wrong_thumbprint};

/// A token that must never show in an error.
const CANARY: &str = "CANARY-fault-matrix-token";
/// A client secret that must never show in an error.
const SECRET: &str = "CANARY-client-secret";
/// An identity header value that must never show in an error.
const HEADER_SECRET: &str = "CANARY-identity-header";
/// The response-body cap of the core crate.
const CAP: usize = 64 * 1024;
/// One gibibyte.
const GIB: usize = 1 << 30;

// ---------------------------------------------------------------------------------------------
// Helpers

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn unix(clock: &ManualClock) -> u64 {
    clock
        .system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A one-hour IMDS-shaped token, issued at the clock's wall time.
fn token_reply(clock: &ManualClock, token: &str) -> Reply {
    Reply::json(200, imds_body(token, unix(clock), 3600))
}

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn imds_env(server: &RawServer) -> Environment {
    env(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", &server.url(""))])
}

fn app_service_env(server: &RawServer) -> Environment {
    env(&[
        ("IDENTITY_ENDPOINT", &server.url("/msi/token")),
        ("IDENTITY_HEADER", HEADER_SECRET),
    ])
}

/// A managed-identity credential on `env`, its time from `time`, with `retries` retries.
fn mi(env: Environment, time: TimeSource, retries: u32) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(env)
        .time_source(time)
        .retry(RetryOptions::default().max_retries(retries))
        .attempt_timeout(Duration::from_secs(5))
        .arc_key_directory(std::env::temp_dir())
        .build()
        .unwrap()
}

/// Neither `Display` nor `Debug` of `err` shows a secret.
fn assert_clean(err: &Error) {
    let shown = format!("{err} {err:?}");
    for s in [CANARY, SECRET, HEADER_SECRET, "CANARY"] {
        assert!(!shown.contains(s), "secret leaked: {shown}");
    }
}

/// `Display` of `err` names every one of `needles`.
fn assert_names(err: &Error, needles: &[&str]) {
    let shown = err.to_string();
    for n in needles {
        assert!(shown.contains(n), "{n:?} not in {shown:?}");
    }
}

/// The reason of an `Error::Unavailable` from `kind`.
fn unavailable(err: &Error, kind: SourceKind) -> &Unavailable {
    assert_clean(err);
    match err {
        Error::Source(family)
            if let entra_mi::error::SourceError::Unavailable {
                source_kind,
                reason,
                endpoint,
            } = family.as_ref() =>
        {
            assert_eq!(*source_kind, kind, "{err}");
            assert!(!endpoint.contains('?'), "no query in errors: {endpoint}");
            assert!(err.is_unavailable());
            reason
        }
        other => panic!("expected Unavailable from {kind}, got {other:?}"),
    }
}

/// The last failure inside an `Error::DeadlineExceeded` for the caller's `deadline`: running
/// out of the caller's deadline is not "unavailable" (a chain stops there).
fn past_deadline(err: &Error, deadline: Duration) -> &Error {
    assert_clean(err);
    assert!(!err.is_unavailable(), "{err}");
    assert_names(err, &["no token within the caller's deadline"]);
    match err {
        Error::Deadline(family)
            if let entra_mi::error::DeadlineError::Caller {
                deadline: d,
                last: Some(last),
                ..
            } = family.as_ref() =>
        {
            assert_eq!(*d, deadline, "{err}");
            last
        }
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
}

/// The reason of an `Error::TokenEndpointUnavailable`.
fn endpoint_unavailable(err: &Error) -> &Unavailable {
    assert_clean(err);
    match err {
        Error::TokenEndpoint(family)
            if let entra_mi::error::TokenEndpointError::Unavailable { reason, .. } =
                family.as_ref() =>
        {
            reason
        }
        other => panic!("expected TokenEndpointUnavailable, got {other:?}"),
    }
}

/// The status of an `Error::Refused` from `kind`.
fn refused(err: &Error, kind: SourceKind) -> u16 {
    assert_clean(err);
    match err {
        Error::Source(family)
            if let entra_mi::error::SourceError::Refused {
                source_kind, error, ..
            } = family.as_ref() =>
        {
            assert_eq!(*source_kind, kind, "{err}");
            assert!(!err.is_unavailable());
            error.status
        }
        other => panic!("expected Refused from {kind}, got {other:?}"),
    }
}

/// Delays in whole seconds (they are exact with a fixed jitter of 0.5).
fn secs(d: &[Duration]) -> Vec<u64> {
    d.iter().map(Duration::as_secs).collect()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "entra-mi-fault-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server that answers every request with a `200` JSON body of `total` bytes, streamed
/// without `Content-Length` in 64 KiB blocks, and counts what it managed to send. Memory is
/// bounded on both sides: one block here, the body cap in the client.
struct Streamer {
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    hung_up: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Streamer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Streamer {
    async fn start(total: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let hung_up = Arc::new(AtomicBool::new(false));
        let (s, h) = (sent.clone(), hung_up.clone());
        let task = tokio::spawn(async move {
            // At most a few connections; each loop below ends at `total` bytes or an error.
            for _ in 0..4 {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < CAP {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let start = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"access_token\":\"";
                if stream.write_all(start.as_bytes()).await.is_err() {
                    h.store(true, Ordering::SeqCst);
                    continue;
                }
                let block = vec![b'a'; 64 * 1024];
                let mut written = 0usize;
                while written < total {
                    if stream.write_all(&block).await.is_err() {
                        h.store(true, Ordering::SeqCst);
                        break;
                    }
                    written += block.len();
                    s.fetch_add(block.len() as u64, Ordering::SeqCst);
                }
            }
        });
        Self {
            addr,
            sent,
            hung_up,
            task,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix runner

type Run = fn() -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// One fault: where it happens, what it is, and the code that stages it and asserts the
/// expected outcome.
struct Fault {
    source: &'static str,
    name: &'static str,
    run: Run,
}

macro_rules! fault {
    ($source:expr, $name:expr, $f:ident) => {
        Fault {
            source: $source,
            name: $name,
            run: || -> Pin<Box<dyn Future<Output = ()> + Send>> { Box::pin($f()) },
        }
    };
}

fn matrix() -> Vec<Fault> {
    vec![
        fault!("IMDS", "410 for 70 s, then a token", imds_gone_for_70_s),
        fault!("IMDS", "429 with Retry-After", imds_429_with_retry_after),
        fault!(
            "IMDS",
            "429 without Retry-After, always",
            imds_429_without_retry_after
        ),
        fault!(
            "IMDS",
            "500, 502, 503, 504, then a token",
            imds_5xx_sequence
        ),
        fault!("IMDS", "400 not retried", imds_400),
        fault!("IMDS", "401 not retried", imds_401),
        fault!("IMDS", "403 not retried", imds_403),
        fault!("IMDS", "connection refused", imds_connection_refused),
        fault!("IMDS", "accept, then hang (deadline)", imds_hang),
        fault!("IMDS", "connection closed mid-body", imds_closed_mid_body),
        fault!("IMDS", "truncated JSON", imds_truncated_json),
        fault!("IMDS", "1 GiB streamed body", imds_one_gib_body),
        fault!(
            "IMDS",
            "token JSON labelled text/plain",
            imds_json_as_text_plain
        ),
        fault!("IMDS", "token JSON labelled text/html", imds_json_as_html),
        fault!("IMDS", "access_token missing", imds_missing_access_token),
        fault!("IMDS", "expires_on in the past", imds_expires_on_past),
        fault!("IMDS", "expires_on zero", imds_expires_on_zero),
        fault!(
            "IMDS",
            "expires_on absurdly far",
            imds_expires_on_far_future
        ),
        fault!("IMDS", "non-UTF-8 bytes", imds_non_utf8),
        fault!("IMDS", "302 redirect", imds_redirect),
        fault!("App Service", "307 redirect", app_service_redirect),
        fault!(
            "App Service",
            "500, 503, 504, then a token",
            app_service_5xx_sequence
        ),
        fault!("App Service", "502 not retried", app_service_502),
        fault!("App Service", "HTML page", app_service_html),
        fault!("Azure Arc", "200 without the challenge", arc_no_challenge),
        fault!("Azure Arc", "500 on the challenge leg", arc_500_then_token),
        fault!(
            "Service Fabric",
            "certificate not the pinned one",
            sf_wrong_thumbprint
        ),
        fault!(
            "Service Fabric",
            "503 twice, then a token",
            sf_503_then_token
        ),
        fault!("Service Fabric", "400 not retried", sf_400),
        fault!(
            "Cloud Shell",
            "400 AudienceNotSupported",
            cloud_shell_audience
        ),
        fault!(
            "Cloud Shell",
            "closed without an answer",
            cloud_shell_closed
        ),
        fault!("Azure ML", "wrong MSI_SECRET (401)", azure_ml_wrong_secret),
        fault!(
            "Azure ML",
            "legacy date in the past",
            azure_ml_date_in_the_past
        ),
        fault!("workload identity", "token file missing", wi_file_missing),
        fault!("workload identity", "Entra 503 twice", wi_entra_503),
        fault!("client secret", "wrong secret (401)", secret_wrong),
        fault!(
            "client secret",
            "500 once, then a token",
            secret_500_then_token
        ),
        fault!("client secret", "429 with Retry-After", secret_429),
        fault!("client secret", "truncated JSON", secret_truncated_json),
        fault!("client secret", "1 GiB body", secret_one_gib_body),
        fault!("client secret", "accept, then hang (deadline)", secret_hang),
        fault!(
            "client secret",
            "connection refused",
            secret_connection_refused
        ),
        fault!("client secret", "302 redirect", secret_redirect),
        fault!(
            "client secret",
            "untrusted certificate",
            secret_untrusted_certificate
        ),
    ]
}

fn panic_text(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return format!("{e}");
    }
    let p = e.into_panic();
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Runs every fault concurrently (each on its own servers and its own virtual clock), each
/// bounded to 20 s of real time, and reports every failure, not just the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    let faults = matrix();
    let mut names: Vec<String> = faults
        .iter()
        .map(|f| format!("{}: {}", f.source, f.name))
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), faults.len(), "fault names are distinct");
    let sources: std::collections::BTreeSet<_> = faults.iter().map(|f| f.source).collect();

    let handles: Vec<_> = faults
        .iter()
        .map(|f| {
            let run = f.run;
            tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(20), run()).await })
        })
        .collect();
    let mut failed = Vec::new();
    println!("fault matrix:");
    for (i, (f, h)) in faults.iter().zip(handles).enumerate() {
        let outcome = match h.await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(_)) => "FAILED: still running after 20 s".to_owned(),
            Err(e) => format!("FAILED: {}", panic_text(e)),
        };
        println!("  {:>2}. {:<18} {:<36} {outcome}", i + 1, f.source, f.name);
        if outcome != "ok" {
            failed.push(format!("{}: {}: {outcome}", f.source, f.name));
        }
    }
    println!(
        "{} faults across {} sources, {} failed",
        faults.len(),
        sources.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed faults:\n{}", failed.join("\n"));
    assert!(faults.len() >= 25, "at least 25 faults: {}", faults.len());
}
