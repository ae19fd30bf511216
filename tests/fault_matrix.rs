//! The fault matrix: what production does to a token source, against real servers on loopback
//! only (scripted raw HTTP on `127.0.0.1:0`, a byte-counting streamer, and the emulator), each
//! fault with its expected outcome asserted — no panic, a **typed** error (matched on its
//! variant and reason) whose text names the cause, the number of requests the source's retry
//! policy allows, and, through a [`TokenProvider`], a valid cached token that is never lost.
//! Time is virtual (`ManualClock`, `InstantSleep`); only the hang faults wait, for 300 ms.
//!
//! `cargo test --test fault_matrix -- --nocapture` prints every table with its count.
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

mod support;

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
        Error::Source(entra_mi::error::SourceError::Unavailable {
            source_kind,
            reason,
            endpoint,
        }) => {
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
        Error::Deadline(entra_mi::error::DeadlineError::Caller {
            deadline: d,
            last: Some(last),
            ..
        }) => {
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
        Error::TokenEndpoint(entra_mi::error::TokenEndpointError::Unavailable {
            reason, ..
        }) => reason,
        other => panic!("expected TokenEndpointUnavailable, got {other:?}"),
    }
}

/// The status of an `Error::Refused` from `kind`.
fn refused(err: &Error, kind: SourceKind) -> u16 {
    assert_clean(err);
    match err {
        Error::Source(entra_mi::error::SourceError::Refused {
            source_kind, error, ..
        }) => {
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

// ---------------------------------------------------------------------------------------------
// IMDS

async fn imds_gone_for_70_s() {
    // The endpoint answers 410 until 70 s of virtual time have passed, then a token. Time is
    // stepped one second at a time; the credential's sleeps complete only when it moves.
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(410, json!({"error": "gone"}))).await;
    let cred = mi(imds_env(&server), clock.time_source(0.5), 5);
    let start = clock.monotonic();
    let task = tokio::spawn(async move { cred.get_token(&graph()).await });
    let mut switched = false;
    for _ in 0..200 {
        assert!(
            eventually(5, || clock.pending_sleeps() > 0 || task.is_finished()).await,
            "the credential neither sleeps nor ends"
        );
        if task.is_finished() {
            break;
        }
        if !switched
            && clock.monotonic() - start + Duration::from_secs(1) >= Duration::from_secs(70)
        {
            server.set_fallback(token_reply(&clock, "tok-after-gone"));
            switched = true;
        }
        clock.advance(Duration::from_secs(1));
    }
    let token = task.await.unwrap().unwrap();
    assert_eq!(token.secret(), "tok-after-gone");
    let waited = clock.monotonic() - start;
    assert!(
        (Duration::from_secs(70)..=Duration::from_secs(100)).contains(&waited),
        "{waited:?}"
    );
    // Asked at 0, 1, 3, 7, 15, 31, 61 s (410 each time), then at 91 s: more than 5 retries.
    assert_eq!(server.count(), 8);
}

async fn imds_429_with_retry_after() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, "tok")).await;
    server.push(Reply::json(429, json!({"error": "throttled"})).with_header("Retry-After", "7"));
    let (time, sleeps) = clock.instant_time_source(0.5);
    let token = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok");
    assert_eq!(server.count(), 2);
    assert_eq!(secs(&sleeps.sleeps()), [7], "Retry-After honoured");
}

async fn imds_429_without_retry_after() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(429, json!({"error": "throttled"}))).await;
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::Imds),
            Unavailable::Status {
                status: 429,
                attempts: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &["IMDS", "HTTP 429 after 6 attempt(s)", "throttled"]);
    assert_eq!(server.count(), 6);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2, 4, 8, 16], "exponential");
}

async fn imds_5xx_sequence() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, "tok")).await;
    for status in [500, 502, 503, 504] {
        server.push(Reply::json(status, json!({"error": "server_error"})));
    }
    let (time, sleeps) = clock.instant_time_source(0.5);
    let token = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok");
    assert_eq!(server.count(), 5);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2, 4, 8]);
}

async fn imds_refused_once(status: u16, body: serde_json::Value, needles: &[&str]) -> Error {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(status, body)).await;
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "{status} is not retried");
    assert!(sleeps.sleeps().is_empty());
    assert_eq!(err.status(), Some(status));
    assert_names(&err, needles);
    err
}

async fn imds_400() {
    let err = imds_refused_once(
        400,
        json!({"error": "invalid_request", "error_description": "Identity not found"}),
        &["refused", "HTTP 400", "Identity not found"],
    )
    .await;
    assert_eq!(refused(&err, SourceKind::Imds), 400);
}

async fn imds_401() {
    let err = imds_refused_once(
        401,
        json!({"error": "unauthorized", "error_description": "Required metadata header not specified"}),
        &["refused", "HTTP 401", "metadata header"],
    )
    .await;
    assert_eq!(refused(&err, SourceKind::Imds), 401);
}

async fn imds_403() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::body(403, "text/plain", "forbidden")).await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "403 is not retried");
    assert_eq!(
        unavailable(&err, SourceKind::Imds),
        &Unavailable::UnexpectedStatus { status: 403 }
    );
    assert_names(&err, &["HTTP 403 without a recognisable error body"]);
}

async fn imds_connection_refused() {
    let refused = support::RefusedPort::new();
    let addr = refused.addr;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = mi(
        env(&[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            &format!("http://{addr}"),
        )]),
        time,
        5,
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::Imds),
            Unavailable::Connect { .. }
        ),
        "{err:?}"
    );
    let addr = addr.to_string();
    assert_names(&err, &["connection failed", addr.as_str()]);
    assert_eq!(sleeps.sleeps().len(), 5, "transport failures are retried");
}

async fn imds_hang() {
    let server = RawServer::start(Reply::Hang).await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let started = std::time::Instant::now();
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph().with_deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let last = past_deadline(&err, Duration::from_millis(300));
    assert_eq!(
        unavailable(last, SourceKind::Imds),
        &Unavailable::Timeout(Duration::from_millis(300)),
        "the caller's deadline bounds the attempt"
    );
    assert_names(&err, &["no answer within 300ms"]);
    // The server records the request when it has read it, which on a loaded machine can be
    // after the client gave up: wait (bounded) for that one request, then check there is no
    // second.
    for _ in 0..100 {
        if server.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.count(), 1, "no retry fits in the deadline");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
}

async fn imds_closed_mid_body() {
    let cut = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\nConnection: close\r\n\r\n{{\"access_token\":\"{CANARY}"
    );
    let server = RawServer::start(Reply::Raw(cut.into_bytes())).await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::Imds),
            Unavailable::Transport { .. }
        ),
        "{err:?}"
    );
    assert_names(&err, &["connection broke"]);
    assert_eq!(server.count(), 6, "retried like any transport failure");
}

/// One request to an IMDS that answers `reply`; the error reason must satisfy `check` and
/// its text name `needles`. Not retried.
async fn imds_bad_answer(
    reply: impl FnOnce(&ManualClock) -> Reply,
    check: fn(&Unavailable) -> bool,
    needles: &[&str],
) {
    let clock = ManualClock::new();
    let server = RawServer::start(reply(&clock)).await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    let reason = unavailable(&err, SourceKind::Imds);
    assert!(check(reason), "unexpected reason {reason:?}");
    assert_names(&err, needles);
    assert_eq!(server.count(), 1, "a bad answer is not retried");
}

async fn imds_truncated_json() {
    imds_bad_answer(
        |_| {
            Reply::body(
                200,
                "application/json",
                format!("{{\"access_token\":\"{CANARY}\",\"expires_in\":\"36"),
            )
        },
        |u| matches!(u, Unavailable::NotJson { status: 200, what } if what.contains("truncated")),
        &["not a JSON object", "truncated JSON"],
    )
    .await;
}

async fn imds_one_gib_body() {
    let server = Streamer::start(GIB).await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let cred = mi(
        env(&[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            &format!("http://{}", server.addr),
        )]),
        time,
        0,
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::Imds),
        &Unavailable::BodyTooLarge { limit: CAP }
    );
    assert_names(&err, &["larger than 65536 bytes"]);
    assert!(
        eventually(10, || server.hung_up.load(Ordering::SeqCst)).await,
        "the client hung up"
    );
    let sent = server.sent.load(Ordering::SeqCst);
    assert!(
        sent < 64 << 20,
        "the client stopped reading at the cap; only socket buffers were filled: {sent} bytes"
    );
}

async fn imds_json_as_text_plain() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::body(
        200,
        "text/plain; charset=utf-8",
        imds_body("tok-plain", unix(&clock), 3600).to_string(),
    ))
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let token = mi(imds_env(&server), time, 0)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok-plain");
}

async fn imds_json_as_html() {
    imds_bad_answer(
        |c| {
            Reply::body(
                200,
                "text/html",
                imds_body(CANARY, unix(c), 3600).to_string(),
            )
        },
        |u| matches!(u, Unavailable::Html { status: 200 }),
        &["HTML page instead of a JSON token response"],
    )
    .await;
}

async fn imds_missing_access_token() {
    imds_bad_answer(
        |c| {
            let mut body = imds_body("x", unix(c), 3600);
            body.as_object_mut().unwrap().remove("access_token");
            Reply::json(200, body)
        },
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("`access_token` is missing")),
        &["invalid token response", "`access_token` is missing"],
    )
    .await;
}

async fn imds_expires_on_past() {
    imds_bad_answer(
        |c| {
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": (unix(c) - 60).to_string()}),
            )
        },
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("already-expired token")),
        &["the endpoint returned an already-expired token"],
    )
    .await;
}

async fn imds_expires_on_zero() {
    imds_bad_answer(
        |_| Reply::json(200, json!({"access_token": CANARY, "expires_on": "0"})),
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("before 2001")),
        &["`expires_on` is 0", "there is no `expires_in`"],
    )
    .await;
}

async fn imds_expires_on_far_future() {
    imds_bad_answer(
        |c| {
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": unix(c) + 100 * 365 * 86_400}),
            )
        },
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("longer than")),
        &["longer than", "mis-stated"],
    )
    .await;
}

async fn imds_non_utf8() {
    imds_bad_answer(
        |_| {
            Reply::body(
                200,
                "application/json",
                b"{\"access_token\":\"\xff\xfe\xfd\"}".to_vec(),
            )
        },
        |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("UTF-8")),
        &["bytes that are not UTF-8"],
    )
    .await;
}

async fn imds_redirect() {
    let clock = ManualClock::new();
    let target = RawServer::start(token_reply(&clock, CANARY)).await;
    let server = RawServer::start(
        Reply::body(302, "text/plain", "").with_header("Location", &target.url("/steal")),
    )
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::Imds),
        &Unavailable::Redirect { status: 302 }
    );
    assert_names(&err, &["HTTP 302 redirect", "not followed"]);
    assert_eq!(server.count(), 1);
    assert_eq!(target.count(), 0, "the redirect was not followed");
}

// ---------------------------------------------------------------------------------------------
// App Service

fn app_service_token(clock: &ManualClock, token: &str) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "expires_on": (unix(clock) + 3600).to_string(), "resource": "https://graph.microsoft.com", "token_type": "Bearer"}),
    )
}

async fn app_service_redirect() {
    let clock = ManualClock::new();
    let target = RawServer::start(app_service_token(&clock, CANARY)).await;
    let server = RawServer::start(
        Reply::body(307, "text/plain", "").with_header("Location", &target.url("/steal")),
    )
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::AppService),
        &Unavailable::Redirect { status: 307 }
    );
    assert_names(&err, &["App Service", "HTTP 307 redirect"]);
    assert_eq!(server.count(), 1);
    assert_eq!(
        target.count(),
        0,
        "the identity header never reached the target"
    );
}

async fn app_service_5xx_sequence() {
    let clock = ManualClock::new();
    let server = RawServer::start(app_service_token(&clock, "tok")).await;
    for status in [500, 503, 504] {
        server.push(Reply::json(
            status,
            json!({"statusCode": status, "message": "busy"}),
        ));
    }
    let (time, sleeps) = clock.instant_time_source(0.5);
    let token = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok");
    assert_eq!(server.count(), 4);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2, 4]);
}

async fn app_service_502() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(
        502,
        json!({"statusCode": 502, "message": "Bad gateway"}),
    ))
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::AppService),
            Unavailable::Status {
                status: 502,
                attempts: 1,
                detail: Some(_)
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &["HTTP 502 after 1 attempt(s)", "Bad gateway"]);
    assert_eq!(server.count(), 1, "App Service does not retry 502");
}

async fn app_service_html() {
    let server = RawServer::start(Reply::body(
        200,
        "text/html; charset=utf-8",
        format!("<html><body>Sign in to the proxy {CANARY}</body></html>"),
    ))
    .await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::AppService),
        &Unavailable::Html { status: 200 }
    );
    assert_names(&err, &["HTML page"]);
}

// ---------------------------------------------------------------------------------------------
// Azure Arc

async fn arc_no_challenge() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, CANARY)).await;
    let (time, _) = clock.instant_time_source(0.5);
    let cred = mi(
        env(&[
            ("IDENTITY_ENDPOINT", &server.url("/arc/token")),
            ("IMDS_ENDPOINT", &server.url("")),
        ]),
        time,
        5,
    );
    assert_eq!(cred.source_kind(), SourceKind::AzureArc);
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::AzureArc),
            Unavailable::InvalidResponse { problem } if problem.contains("`401` Basic challenge")
        ),
        "{err:?}"
    );
    assert_names(&err, &["Azure Arc", "challenge"]);
    assert_eq!(server.count(), 1);
}

async fn arc_500_then_token() {
    let dir = TempDir::new("arc");
    let emu = Emulator::builder()
        .arc_key_directory(dir.path())
        .start()
        .await
        .unwrap();
    emu.push_fault(
        Endpoint::AzureArc,
        EmuFault::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    );
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ManagedIdentityCredential::builder()
        .environment(env(&[
            ("IDENTITY_ENDPOINT", &emu.arc_endpoint()),
            ("IMDS_ENDPOINT", &emu.base_url()),
        ]))
        .arc_key_directory(dir.path())
        .time_source(time)
        .build()
        .unwrap();
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(
        emu.requests(Endpoint::AzureArc),
        3,
        "500, then the challenge and its answer"
    );
    assert_eq!(secs(&sleeps.sleeps()), [1]);
}

// ---------------------------------------------------------------------------------------------
// Service Fabric

fn sf_credential(emu: &Emulator, thumbprint: &str, time: TimeSource) -> ManagedIdentityCredential {
    let cred = mi(
        env(&[
            ("IDENTITY_ENDPOINT", &emu.service_fabric_endpoint()),
            ("IDENTITY_HEADER", &emu.identity_header()),
            ("IDENTITY_SERVER_THUMBPRINT", thumbprint),
        ]),
        time,
        5,
    );
    assert_eq!(cred.source_kind(), SourceKind::ServiceFabric);
    cred
}

async fn sf_wrong_thumbprint() {
    let emu = Emulator::builder()
        .identity_header(HEADER_SECRET)
        .start()
        .await
        .unwrap();
    let mut wrong = emu.service_fabric_thumbprint().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = sf_credential(&emu, &wrong, time)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::ServiceFabric),
            Unavailable::TlsVerification { .. }
        ),
        "{err:?}"
    );
    assert_names(
        &err,
        &[
            "Service Fabric",
            "certificate verification failed",
            "not retried",
        ],
    );
    assert!(
        sleeps.sleeps().is_empty(),
        "a certificate that fails verification is not retried: {:?}",
        sleeps.sleeps()
    );
    assert_eq!(
        emu.requests(Endpoint::ServiceFabric),
        0,
        "no request got past the TLS handshake"
    );
}

async fn sf_503_then_token() {
    let emu = Emulator::builder().start().await.unwrap();
    for _ in 0..2 {
        emu.push_fault(
            Endpoint::ServiceFabric,
            EmuFault::Status {
                status: 503,
                retry_after: None,
                body: None,
            },
        );
    }
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    sf_credential(&emu, &emu.service_fabric_thumbprint(), time)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 3);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2]);
}

async fn sf_400() {
    let emu = Emulator::builder().start().await.unwrap();
    emu.push_fault(
        Endpoint::ServiceFabric,
        EmuFault::Status {
            status: 400,
            retry_after: None,
            body: None,
        },
    );
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, _) = clock.instant_time_source(0.5);
    let err = sf_credential(&emu, &emu.service_fabric_thumbprint(), time)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(refused(&err, SourceKind::ServiceFabric), 400);
    assert_names(&err, &["Service Fabric", "HTTP 400"]);
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 1);
}

// ---------------------------------------------------------------------------------------------
// Cloud Shell

async fn cloud_shell_audience() {
    let server = RawServer::start(Reply::json(
        400,
        json!({"error": "invalid_request", "error_description": "AudienceNotSupported: Audience https://graph.microsoft.com is not a supported MSI token audience."}),
    ))
    .await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[("MSI_ENDPOINT", &server.url("/oauth2/token"))]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert_eq!(refused(&err, SourceKind::CloudShell), 400);
    assert_names(
        &err,
        &["Cloud Shell", "AudienceNotSupported", "az login --scope"],
    );
    assert_eq!(server.count(), 1);
}

async fn cloud_shell_closed() {
    let server = RawServer::start(Reply::Close).await;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[("MSI_ENDPOINT", &server.url("/oauth2/token"))]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::CloudShell),
            Unavailable::Transport { .. } | Unavailable::Connect { .. }
        ),
        "{err:?}"
    );
    assert_eq!(server.count(), 6);
    assert_eq!(sleeps.sleeps().len(), 5);
}

// ---------------------------------------------------------------------------------------------
// Azure ML / 2017-09-01

async fn azure_ml_wrong_secret() {
    let emu = Emulator::builder().start().await.unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[
            ("MSI_ENDPOINT", &emu.msi_endpoint()),
            ("MSI_SECRET", HEADER_SECRET),
        ]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert_eq!(refused(&err, SourceKind::AzureMl), 401);
    assert_names(&err, &["Azure ML", "HTTP 401"]);
    assert_eq!(emu.requests(Endpoint::AzureMl), 1, "401 is not retried");
}

async fn azure_ml_date_in_the_past() {
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": CANARY, "expires_on": "01/01/2020 12:00:00 AM +00:00", "resource": "https://graph.microsoft.com", "token_type": "Bearer"}),
    ))
    .await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[
            ("MSI_ENDPOINT", &server.url("/MSI/auth")),
            ("MSI_SECRET", HEADER_SECRET),
        ]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::AzureMl),
            Unavailable::InvalidResponse { problem } if problem.contains("already-expired token")
        ),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Workload identity and client secret (the emulator's Entra token endpoint)

const WI_SUBJECT: &str = "system:serviceaccount:default:fault-matrix";

async fn wi_file_missing() {
    let app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, WI_SUBJECT);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let dir = TempDir::new("wi-missing");
    let cred = WorkloadIdentityCredential::builder(
        emu.tenant_id(),
        &app.client_id,
        dir.path().join("token"),
    )
    .authority_host(emu.authority_host())
    .allow_loopback_http(true)
    .build()
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(entra_mi::error::ConfigurationError::Setting { setting, reason }) if setting == "AZURE_FEDERATED_TOKEN_FILE" && reason.contains("does not exist")),
        "{err:?}"
    );
    assert_names(&err, &["AZURE_FEDERATED_TOKEN_FILE", "does not exist"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 0);
}

async fn wi_entra_503() {
    let app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, WI_SUBJECT);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let dir = TempDir::new("wi-503");
    let file = dir.path().join("token");
    std::fs::write(
        &file,
        emu.federated_token(
            WI_SUBJECT,
            TOKEN_EXCHANGE_AUDIENCE,
            Duration::from_secs(3600),
        ),
    )
    .unwrap();
    for _ in 0..2 {
        emu.push_fault(
            Endpoint::EntraToken,
            EmuFault::Status {
                status: 503,
                retry_after: None,
                body: None,
            },
        );
    }
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = WorkloadIdentityCredential::builder(emu.tenant_id(), &app.client_id, &file)
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .time_source(time)
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::TokenEndpoint(entra_mi::error::TokenEndpointError::Refused { error, .. }) if error.status == 503),
        "{err:?}"
    );
    assert_clean(&err);
    assert_names(&err, &["workload-identity", "HTTP 503"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 2, "one retry");
    assert_eq!(secs(&sleeps.sleeps()), [1]);
}

/// An emulator with one app whose secret is [`SECRET`], and a client-secret credential for it
/// on the returned virtual clock.
async fn secret_setup(
    secret: &str,
) -> (
    Emulator,
    ClientSecretCredential,
    entra_mi::time::InstantSleep,
) {
    let app = App::new("daemon").with_secret(SECRET);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ClientSecretCredential::builder(emu.tenant_id(), &app.client_id, secret)
        .authority_host(emu.authority_host())
        .allow_loopback_http(true)
        .time_source(time)
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    (emu, cred, sleeps)
}

async fn secret_wrong() {
    let (emu, cred, sleeps) = secret_setup("CANARY-wrong-secret").await;
    let err = cred.get_token(&graph()).await.unwrap_err();
    match &err {
        Error::TokenEndpoint(entra_mi::error::TokenEndpointError::Refused { error, .. }) => {
            assert_eq!(error.status, 401);
            assert_eq!(error.aadsts, vec![7000215]);
        }
        other => panic!("{other:?}"),
    }
    assert_clean(&err);
    assert_names(
        &err,
        &["client-secret", "AADSTS7000215", "not its Secret ID"],
    );
    assert_eq!(emu.requests(Endpoint::EntraToken), 1, "401 is not retried");
    assert!(sleeps.sleeps().is_empty());
}

async fn secret_500_then_token() {
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(
        Endpoint::EntraToken,
        EmuFault::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    );
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(emu.requests(Endpoint::EntraToken), 2);
    assert_eq!(secs(&sleeps.sleeps()), [1]);
}

async fn secret_429() {
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(
        Endpoint::EntraToken,
        EmuFault::Status {
            status: 429,
            retry_after: Some("5".into()),
            body: None,
        },
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::TokenEndpoint(entra_mi::error::TokenEndpointError::Refused { error, .. }) if error.status == 429),
        "{err:?}"
    );
    assert_clean(&err);
    assert_names(&err, &["HTTP 429"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    assert!(sleeps.sleeps().is_empty());
}

async fn secret_bad_answer(fault: EmuFault, check: fn(&Unavailable) -> bool, needles: &[&str]) {
    let (emu, cred, _) = secret_setup(SECRET).await;
    emu.push_fault(Endpoint::EntraToken, fault);
    let err = cred.get_token(&graph()).await.unwrap_err();
    let reason = endpoint_unavailable(&err);
    assert!(check(reason), "unexpected reason {reason:?}");
    assert!(
        !err.is_unavailable(),
        "a configured credential stops a chain"
    );
    assert_names(&err, needles);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    // The next request is served normally.
    cred.get_token(&graph()).await.unwrap();
}

async fn secret_truncated_json() {
    secret_bad_answer(
        EmuFault::TruncatedJson,
        |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("truncated")),
        &["client-secret", "token endpoint", "truncated JSON"],
    )
    .await;
}

async fn secret_one_gib_body() {
    // Cut at the cap, and not asked for again: an answer, not a transport failure.
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(Endpoint::EntraToken, EmuFault::Oversized(GIB));
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(
        endpoint_unavailable(&err),
        &Unavailable::BodyTooLarge { limit: CAP }
    );
    assert_names(&err, &["client-secret", "larger than 65536 bytes"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    assert!(sleeps.sleeps().is_empty());
    cred.get_token(&graph()).await.unwrap();
}

async fn secret_hang() {
    let (emu, cred, sleeps) = secret_setup(SECRET).await;
    emu.push_fault(Endpoint::EntraToken, EmuFault::Hang);
    let err = cred
        .get_token(&graph().with_deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let last = past_deadline(&err, Duration::from_millis(300));
    assert_eq!(
        endpoint_unavailable(last),
        &Unavailable::Timeout(Duration::from_millis(300))
    );
    assert_names(&err, &["no answer within 300ms"]);
    assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    assert!(sleeps.sleeps().is_empty(), "no retry fits in the deadline");
}

async fn secret_connection_refused() {
    let refused = support::RefusedPort::new();
    let addr = refused.addr;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred =
        ClientSecretCredential::builder("contoso", "11111111-2222-3333-4444-555555555555", SECRET)
            .authority_host(format!("http://{addr}"))
            .allow_loopback_http(true)
            .time_source(time)
            .build()
            .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(endpoint_unavailable(&err), Unavailable::Connect { .. }),
        "{err:?}"
    );
    assert_names(&err, &["client-secret", "connection failed"]);
    assert_eq!(secs(&sleeps.sleeps()), [1], "one retry");
}

async fn secret_redirect() {
    let clock = ManualClock::new();
    let target = RawServer::start(token_reply(&clock, CANARY)).await;
    let server = RawServer::start(
        Reply::body(302, "text/plain", "").with_header("Location", &target.url("/steal")),
    )
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let cred =
        ClientSecretCredential::builder("contoso", "11111111-2222-3333-4444-555555555555", SECRET)
            .authority_host(server.url(""))
            .allow_loopback_http(true)
            .time_source(time)
            .build()
            .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(
        endpoint_unavailable(&err),
        &Unavailable::Redirect { status: 302 }
    );
    assert_names(&err, &["HTTP 302 redirect", "not followed"]);
    assert_eq!(server.count(), 1);
    assert_eq!(target.count(), 0, "the secret never reached the target");
}

// ---------------------------------------------------------------------------------------------
// Refresh faults: a valid cached token is never lost

/// How the refresh fails.
enum RefreshFault {
    /// The endpoint answers this.
    Reply(Reply),
    /// The endpoint is gone: its port refuses connections.
    Refused,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_faults_keep_the_cached_token() {
    let cases: Vec<(&str, RefreshFault)> = vec![
        (
            "500",
            RefreshFault::Reply(Reply::json(500, json!({"error": "x"}))),
        ),
        (
            "429 with Retry-After",
            RefreshFault::Reply(Reply::json(429, json!({})).with_header("Retry-After", "10")),
        ),
        (
            "403 refused",
            RefreshFault::Reply(Reply::json(
                403,
                json!({"error": "forbidden", "error_description": "no"}),
            )),
        ),
        ("hang", RefreshFault::Reply(Reply::Hang)),
        (
            "closed mid-body",
            RefreshFault::Reply(Reply::Raw(
                b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n{\"access_token\":\"x".to_vec(),
            )),
        ),
        (
            "truncated JSON",
            RefreshFault::Reply(Reply::body(200, "application/json", "{\"access_token\":\"")),
        ),
        (
            "HTML page",
            RefreshFault::Reply(Reply::body(200, "text/html", "<html></html>")),
        ),
        (
            "1 GiB body",
            RefreshFault::Reply(Reply::Huge { total: GIB }),
        ),
        (
            "302 redirect",
            RefreshFault::Reply(
                Reply::body(302, "text/plain", "").with_header("Location", "http://127.0.0.1:1/"),
            ),
        ),
        (
            "access_token missing",
            RefreshFault::Reply(Reply::json(200, json!({"expires_in": "3600"}))),
        ),
        (
            "expires_on in the past",
            RefreshFault::Reply(Reply::json(
                200,
                json!({"access_token": "new", "expires_on": "1000000000"}),
            )),
        ),
        (
            "non-UTF-8 bytes",
            RefreshFault::Reply(Reply::body(200, "application/json", vec![0xff, 0xfe])),
        ),
        ("connection refused", RefreshFault::Refused),
    ];
    let total = cases.len();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, fault)| {
            (
                name,
                tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(20),
                    refresh_case(fault),
                )),
            )
        })
        .collect();
    let mut failed = Vec::new();
    println!("refresh faults (a TokenProvider holding a valid token):");
    for (name, h) in handles {
        let outcome = match h.await {
            Ok(Ok(())) => "ok: old token served, failure counted".to_owned(),
            Ok(Err(_)) => "FAILED: still running after 20 s".to_owned(),
            Err(e) => format!("FAILED: {}", panic_text(e)),
        };
        println!("  {name:<24} {outcome}");
        if outcome.starts_with("FAILED") {
            failed.push(format!("{name}: {outcome}"));
        }
    }
    println!("{total} refresh faults, {} failed", failed.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

async fn refresh_case(fault: RefreshFault) {
    let clock = ManualClock::new();
    let fallback = match &fault {
        RefreshFault::Reply(r) => r.clone(),
        RefreshFault::Refused => Reply::Close,
    };
    let server = RawServer::start(fallback).await;
    let addr = server.addr;
    // A 10-minute token: fresh for 5 minutes, then stale (served, refreshed in the background)
    // until a minute before it expires.
    server.push(Reply::json(200, imds_body("tok-A", unix(&clock), 600)));
    let credential = ManagedIdentityCredential::builder()
        .environment(imds_env(&server))
        .time_source(clock.time_source(0.0))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let provider = TokenProvider::builder(credential)
        .time_source(clock.time_source(0.0))
        .build();
    let h = provider.handle(&Audience::microsoft_graph());
    assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-A");
    let server = match fault {
        RefreshFault::Refused => {
            drop(server);
            // Bounded: the listener goes away with the server's task.
            let mut gone = false;
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(gone, "the port still accepts connections");
            None
        }
        RefreshFault::Reply(_) => Some(server),
    };
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        h.cached_header().unwrap().as_bytes(),
        b"Bearer tok-A",
        "stale, still served"
    );
    assert!(
        eventually(10, || provider.stats().failures == 1).await,
        "the failed refresh is counted: {:?}",
        provider.stats()
    );
    for _ in 0..3 {
        assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-A");
        assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-A");
    }
    let stats = provider.stats();
    assert_eq!(stats.failures, 1, "{stats:?}");
    assert_eq!(stats.fetches, 2, "one refresh, then backoff: {stats:?}");
    assert!(stats.stale_hits >= 1, "{stats:?}");
    if let Some(server) = server {
        assert_eq!(server.count(), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// Environment: a bad and an empty value of every variable

/// A typed configuration error naming `variable`, whose reason says `needle`.
fn assert_config(err: &Error, variable: &str, needle: &str) {
    assert_clean(err);
    match err {
        Error::Configuration(entra_mi::error::ConfigurationError::Setting { setting, reason }) => {
            assert_eq!(setting, variable, "{err}");
            assert!(reason.contains(needle), "{needle:?} not in {reason:?}");
        }
        other => panic!("{variable}: expected Configuration, got {other:?}"),
    }
    assert!(err.to_string().contains(variable), "{err}");
}

/// A credential that is not set up, saying `variable` is missing.
fn assert_not_set(err: &Error, variable: &str) {
    assert!(
        matches!(err, Error::Credential(entra_mi::error::CredentialError::Unavailable { reason, .. }) if reason.contains(variable) && reason.contains("not set")),
        "{variable}: {err:?}"
    );
    assert!(err.is_unavailable());
}

fn mi_build(vars: &[(&str, &str)]) -> Result<ManagedIdentityCredential, Error> {
    ManagedIdentityCredential::builder()
        .environment(env(vars))
        .arc_key_directory(std::env::temp_dir())
        .build()
}

/// Writes a self-signed certificate with its key as PEM, and as PKCS#12 under `password`.
fn certificate_files(dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["daemon.example".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pem = dir.join("cert.pem");
    std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        "1",
        p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
    );
    store.add_entry(
        "daemon",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    let p12 = dir.join("cert.p12");
    std::fs::write(&p12, store.writer(password).write().unwrap()).unwrap();
    (pem, p12)
}

#[tokio::test]
async fn bad_and_empty_environment_values() {
    let mut checked: Vec<(&str, &str)> = Vec::new();
    // The credentials below run on the system clock: the answers' `expires_on` must be real.
    let clock = ManualClock::with_wall_time(std::time::SystemTime::now());
    let server = RawServer::start(token_reply(&clock, "tok")).await;
    let guid = "11111111-2222-3333-4444-555555555555";
    let tenant = "contoso.onmicrosoft.com";

    // IDENTITY_ENDPOINT
    let err =
        mi_build(&[("IDENTITY_ENDPOINT", "not a url"), ("IDENTITY_HEADER", "h")]).unwrap_err();
    assert_config(&err, "IDENTITY_ENDPOINT", "not an absolute URL");
    let cred = mi_build(&[("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "h")]).unwrap();
    assert_eq!(
        cred.source_kind(),
        SourceKind::Imds,
        "empty counts as unset"
    );
    checked.push(("IDENTITY_ENDPOINT", "bad: not a URL · empty: unset"));

    // IDENTITY_HEADER: checked per request (it rotates), before anything is sent.
    let cred = mi_build(&[
        ("IDENTITY_ENDPOINT", &server.url("/msi/token")),
        ("IDENTITY_HEADER", "line\nbreak"),
    ])
    .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_config(&err, "IDENTITY_HEADER", "not allowed in an HTTP header");
    let err = mi_build(&[
        ("IDENTITY_ENDPOINT", &server.url("/msi/token")),
        ("IDENTITY_HEADER", ""),
    ])
    .unwrap_err();
    assert_config(&err, "IDENTITY_ENDPOINT", "refusing to guess");
    checked.push(("IDENTITY_HEADER", "bad: newline · empty: source ambiguous"));

    // IDENTITY_SERVER_THUMBPRINT
    let sf = |thumb: &str| {
        mi_build(&[
            (
                "IDENTITY_ENDPOINT",
                "https://127.0.0.1:2377/metadata/identity/oauth2/token",
            ),
            ("IDENTITY_HEADER", "h"),
            ("IDENTITY_SERVER_THUMBPRINT", thumb),
        ])
    };
    assert_config(
        &sf("not-a-thumbprint").unwrap_err(),
        "IDENTITY_SERVER_THUMBPRINT",
        "40 hexadecimal digits",
    );
    assert_eq!(sf("").unwrap().source_kind(), SourceKind::AppService);
    checked.push((
        "IDENTITY_SERVER_THUMBPRINT",
        "bad: not hex · empty: App Service",
    ));

    // IMDS_ENDPOINT
    let arc = |imds: &str| {
        mi_build(&[
            ("IDENTITY_ENDPOINT", &server.url("/arc/token")),
            ("IMDS_ENDPOINT", imds),
        ])
    };
    assert_config(
        &arc("not a url").unwrap_err(),
        "IMDS_ENDPOINT",
        "not an absolute URL",
    );
    assert_eq!(
        arc(&server.url("")).unwrap().source_kind(),
        SourceKind::AzureArc
    );
    assert_config(
        &arc("").unwrap_err(),
        "IDENTITY_ENDPOINT",
        "refusing to guess",
    );
    checked.push(("IMDS_ENDPOINT", "bad: not a URL · empty: source ambiguous"));

    // MSI_ENDPOINT
    let err = mi_build(&[("MSI_ENDPOINT", "not a url"), ("MSI_SECRET", "s")]).unwrap_err();
    assert_config(&err, "MSI_ENDPOINT", "not an absolute URL");
    let cred = mi_build(&[("MSI_ENDPOINT", ""), ("MSI_SECRET", "s")]).unwrap();
    assert_eq!(cred.source_kind(), SourceKind::Imds);
    checked.push(("MSI_ENDPOINT", "bad: not a URL · empty: unset"));

    // MSI_SECRET
    let msi = |secret: &str| {
        mi_build(&[
            ("MSI_ENDPOINT", &server.url("/MSI/auth")),
            ("MSI_SECRET", secret),
        ])
        .unwrap()
    };
    let err = msi("carriage\rreturn")
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_config(&err, "MSI_SECRET", "not allowed in an HTTP header");
    assert_eq!(msi("").source_kind(), SourceKind::CloudShell);
    checked.push(("MSI_SECRET", "bad: control character · empty: Cloud Shell"));

    // AZURE_POD_IDENTITY_AUTHORITY_HOST
    let err = mi_build(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "169.254.169.254")]).unwrap_err();
    assert_config(
        &err,
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "not an absolute URL",
    );
    let cred = mi_build(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "")]).unwrap();
    assert_eq!(
        cred.endpoint(),
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "empty: the well-known address (built, never contacted here)"
    );
    checked.push((
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "bad: no scheme · empty: default",
    ));

    // DEFAULT_IDENTITY_CLIENT_ID: checked per request, before anything is sent.
    let ml = |default: &str| {
        mi_build(&[
            ("MSI_ENDPOINT", &server.url("/MSI/auth")),
            ("MSI_SECRET", "s"),
            ("DEFAULT_IDENTITY_CLIENT_ID", default),
        ])
        .unwrap()
    };
    let before = server.count();
    for (bad, needle) in [("not-a-guid", "a GUID"), ("clientid", "placeholder")] {
        let err = ml(bad).get_token(&graph()).await.unwrap_err();
        assert_config(&err, "DEFAULT_IDENTITY_CLIENT_ID", needle);
    }
    assert_eq!(server.count(), before, "nothing sent");
    ml("").get_token(&graph()).await.unwrap();
    assert_eq!(server.requests().last().unwrap().query("clientid"), None);
    checked.push((
        "DEFAULT_IDENTITY_CLIENT_ID",
        "bad: not a GUID, placeholder · empty: omitted",
    ));

    // AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST
    let secret_env = |t: &str, c: &str, s: &str, a: Option<&str>| {
        let mut v = vec![
            ("AZURE_TENANT_ID", t),
            ("AZURE_CLIENT_ID", c),
            ("AZURE_CLIENT_SECRET", s),
        ];
        if let Some(a) = a {
            v.push(("AZURE_AUTHORITY_HOST", a));
        }
        ClientSecretCredential::from_environment(&env(&v))
    };
    assert_config(
        &secret_env("contoso/../x", guid, SECRET, None).unwrap_err(),
        "AZURE_TENANT_ID",
        "letters, digits",
    );
    assert_not_set(
        &secret_env("", guid, SECRET, None).unwrap_err(),
        "AZURE_TENANT_ID",
    );
    checked.push(("AZURE_TENANT_ID", "bad: path characters · empty: not set"));
    assert_config(
        &secret_env(tenant, "not a guid!", SECRET, None).unwrap_err(),
        "AZURE_CLIENT_ID",
        "a GUID",
    );
    assert_not_set(
        &secret_env(tenant, "", SECRET, None).unwrap_err(),
        "AZURE_CLIENT_ID",
    );
    checked.push(("AZURE_CLIENT_ID", "bad: not a GUID · empty: not set"));
    assert_config(
        &secret_env(tenant, guid, SECRET, Some("login.microsoftonline.com")).unwrap_err(),
        "AZURE_AUTHORITY_HOST",
        "not an absolute URL",
    );
    assert_config(
        &secret_env(tenant, guid, SECRET, Some("http://login.example")).unwrap_err(),
        "AZURE_AUTHORITY_HOST",
        "must be an https URL",
    );
    secret_env(tenant, guid, SECRET, Some("")).expect("empty: the public cloud (not contacted)");
    checked.push((
        "AZURE_AUTHORITY_HOST",
        "bad: no scheme, http · empty: public cloud",
    ));
    assert_not_set(
        &secret_env(tenant, guid, "", None).unwrap_err(),
        "AZURE_CLIENT_SECRET",
    );
    {
        // A wrong secret, read from the environment by the default chain, at the emulator.
        let app = App::new("daemon").with_secret(SECRET);
        let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
        let chain = DefaultCredential::builder()
            .environment(env(&[
                ("AZURE_TENANT_ID", &emu.tenant_id()),
                ("AZURE_CLIENT_ID", &app.client_id),
                ("AZURE_CLIENT_SECRET", "CANARY-wrong"),
                ("AZURE_AUTHORITY_HOST", &emu.authority_host()),
            ]))
            .links(&[ChainLink::Environment])
            .allow_loopback_http(true)
            .build()
            .unwrap();
        let err = chain.get_token(&graph()).await.unwrap_err();
        assert_clean(&err);
        match &err {
            Error::Chain(chain) => {
                let attempts = &chain.attempts;
                assert_eq!(attempts.len(), 1);
                assert!(!attempts[0].unavailable);
                assert!(attempts[0].reason.contains("AADSTS7000215"), "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(emu.requests(Endpoint::EntraToken), 1);
    }
    checked.push((
        "AZURE_CLIENT_SECRET",
        "bad: wrong (AADSTS7000215) · empty: not set",
    ));

    // AZURE_FEDERATED_TOKEN_FILE: read per request, before anything is sent.
    let dir = TempDir::new("env");
    let wi = |file: &str| {
        WorkloadIdentityCredential::from_environment(&env(&[
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_CLIENT_ID", guid),
            ("AZURE_FEDERATED_TOKEN_FILE", file),
        ]))
    };
    let not_jwt = dir.path().join("not-a-jwt");
    std::fs::write(&not_jwt, "CANARY not a jwt").unwrap();
    for (file, needle) in [
        (dir.path().join("missing"), "does not exist"),
        (dir.path().to_path_buf(), "not a regular file"),
        (not_jwt, "not a JWT"),
    ] {
        let err = wi(&file.display().to_string())
            .unwrap()
            .get_token(&graph())
            .await
            .unwrap_err();
        assert_config(&err, "AZURE_FEDERATED_TOKEN_FILE", needle);
    }
    assert_not_set(&wi("").unwrap_err(), "AZURE_FEDERATED_TOKEN_FILE");
    checked.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        "bad: missing, a directory, not a JWT · empty: not set",
    ));

    // AZURE_CLIENT_CERTIFICATE_PATH, _PASSWORD, AZURE_CLIENT_SEND_CERTIFICATE_CHAIN
    let (pem, p12) = certificate_files(dir.path(), "pfx-password");
    let cert = |path: &Path, password: &str, chain: &str| {
        ClientCertificateCredential::from_environment(&env(&[
            ("AZURE_TENANT_ID", tenant),
            ("AZURE_CLIENT_ID", guid),
            ("AZURE_CLIENT_CERTIFICATE_PATH", &path.display().to_string()),
            ("AZURE_CLIENT_CERTIFICATE_PASSWORD", password),
            ("AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", chain),
        ]))
    };
    assert_config(
        &cert(&dir.path().join("missing.pem"), "", "").unwrap_err(),
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "does not exist",
    );
    assert_not_set(
        &cert(Path::new(""), "", "").unwrap_err(),
        "AZURE_CLIENT_CERTIFICATE_PATH",
    );
    checked.push((
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "bad: missing file · empty: not set",
    ));
    cert(&p12, "pfx-password", "").expect("the right password");
    for password in ["wrong", ""] {
        assert_config(
            &cert(&p12, password, "").unwrap_err(),
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "password is wrong",
        );
    }
    checked.push((
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "bad: wrong · empty: no password (wrong)",
    ));
    for ok in ["", "1", "true", "TRUE", "0", "false"] {
        cert(&pem, "", ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    assert_config(
        &cert(&pem, "", "maybe").unwrap_err(),
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
        "expected `1`, `true`, `0` or `false`",
    );
    checked.push((
        "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
        "bad: `maybe` · empty: off",
    ));

    // AZURE_TOKEN_CREDENTIALS
    let chain = |v: &str| {
        DefaultCredential::builder()
            .environment(env(&[("AZURE_TOKEN_CREDENTIALS", v)]))
            .build()
    };
    assert_config(&chain("bogus").unwrap_err(), "AZURE_TOKEN_CREDENTIALS", "");
    assert_eq!(
        chain("").unwrap().links().len(),
        4,
        "empty: the whole chain"
    );
    checked.push((
        "AZURE_TOKEN_CREDENTIALS",
        "bad: unknown name · empty: every link",
    ));

    // PATH (where `az` is looked up)
    for path in ["/nonexistent-entra-mi-dir", "relative/dir", ""] {
        let cli = AzureCliCredential::builder()
            .environment(env(&[("PATH", path)]))
            .build()
            .unwrap();
        let err = cli.get_token(&graph()).await.unwrap_err();
        assert!(
            matches!(&err, Error::Credential(entra_mi::error::CredentialError::Unavailable { reason, .. }) if reason.contains("not found")),
            "PATH={path:?}: {err:?}"
        );
    }
    checked.push(("PATH", "bad: no az, relative · empty: az not found"));

    println!("environment variables, a bad and an empty value each:");
    for (name, what) in &checked {
        println!("  {name:<38} {what}");
    }
    println!("{} variables", checked.len());
    assert_eq!(checked.len(), 18);
}
