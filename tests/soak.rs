//! Soak: 64 concurrent callers — half through the reqwest middleware, half through the tower
//! layer over a hyper client, one shared [`TokenProvider`] and routing table — call a
//! downstream API that validates every token like a resource server does (RS256 signature
//! against the emulator's JWKS, `iss`, `aud`, `exp` without leeway), while the emulator hands
//! out six-second tokens and faults are injected into some of the refreshes.
//!
//! Asserted: no failed request, no expired token sent, at most `cycles + 2` fetches, at least
//! ten refresh cycles, one audience in the cache throughout, and live heap and RSS that do not
//! grow between an early cycle and the end.
//!
//! Every loop is bounded by an iteration count and by a deadline; the whole test runs in well
//! under a minute. This file holds a single test: it installs a counting global allocator.

use entra_mi_test_support as support;

use std::alloc::System;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use bytes::Bytes;
use entra_mi::{
    Audience, Environment, ManagedIdentityCredential, RetryOptions, Route, TokenProvider,
    TokenRouter,
};
use entra_mi_emulator::{Emulator, Endpoint, Fault};
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_tower::BearerAuthLayer;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tower::{Layer, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const AUD: &str = "api://soak-test";

/// Token lifetime. The cache refreshes a token this short at half its life minus an early
/// jitter of up to a tenth of it (2.4–3 s), stops serving it a tenth of its life before the
/// expiry it computed, and the emulator's `exp` is whole seconds (so the real expiry can be up
/// to a second before the one the client computed from `expires_in`): six seconds leaves two
/// seconds between a refresh and the real expiry, room for the slowest injected fault (~1.3 s),
/// while giving a cycle every ~3 s.
const LIFETIME: Duration = Duration::from_secs(6);
/// Stop once this many distinct tokens have been seen (12 refresh cycles) …
const TARGET_TOKENS: usize = 13;
/// … or at this deadline, whichever comes first.
const SOAK_DEADLINE: Duration = Duration::from_secs(46);
const CALLERS_PER_MIDDLEWARE: usize = 32;
/// Pause between two requests of one caller: about 1,600 requests per second in all.
const PACE: Duration = Duration::from_millis(40);
/// Bound on the requests of one caller (the deadline ends the loop long before).
const MAX_REQUESTS_PER_CALLER: usize = 2_000;
/// Bound on one request, token wait included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn unix_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Resident set size of this process in KiB (`VmRSS` of `/proc/self/status`), if readable.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes currently allocated on the heap, as counted by the global allocator.
fn live_heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// The number of audiences the provider holds, read from its `Debug` (`audiences: N`).
fn audiences(provider: &TokenProvider) -> usize {
    let shown = format!("{provider:?}");
    let rest = shown
        .split("audiences: ")
        .nth(1)
        .expect("the provider's Debug names its audiences");
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The downstream: a lean resource server. Unlike `support::downstream` it keeps counters and
// one entry per distinct token only, so its memory does not grow with the number of requests.

#[derive(Debug, Clone, Copy)]
struct TokenSeen {
    exp: u64,
    requests: u64,
}

struct Api {
    key: DecodingKey,
    validation: Validation,
    ok: AtomicU64,
    rejected: AtomicU64,
    /// Requests whose token's `exp` had passed when they arrived (millisecond wall clock
    /// against `exp`: stricter than the validator's whole-second comparison).
    expired: AtomicU64,
    tokens: Mutex<HashMap<String, TokenSeen>>,
}

impl Api {
    fn distinct_tokens(&self) -> usize {
        self.tokens.lock().unwrap().len()
    }
}

async fn start_api(emu: &Emulator) -> (Arc<Api>, String, tokio::task::JoinHandle<()>) {
    let jwks: serde_json::Value = serde_json::from_slice(
        &reqwest::get(emu.jwks_url())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    let jwk = &jwks["keys"][0];
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[emu.issuer()]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    validation.leeway = 0;
    let api = Arc::new(Api {
        key,
        validation,
        ok: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        expired: AtomicU64::new(0),
        tokens: Mutex::new(HashMap::new()),
    });
    let app = Router::new().fallback(any(handle)).with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (api, url, task)
}

fn status(code: StatusCode) -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = code;
    if code == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="soak", error="invalid_token""#),
        );
    }
    resp
}

async fn handle(State(api): State<Arc<Api>>, req: Request) -> Response {
    let arrived_ms = unix_millis();
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(token) = token else {
        api.rejected.fetch_add(1, Ordering::SeqCst);
        return status(StatusCode::UNAUTHORIZED);
    };
    let claims = match jsonwebtoken::decode::<serde_json::Value>(&token, &api.key, &api.validation)
    {
        Ok(data) => data.claims,
        Err(_) => {
            api.rejected.fetch_add(1, Ordering::SeqCst);
            let exp = support::jwt_claims(&token)["exp"].as_u64().unwrap_or(0);
            if arrived_ms >= u128::from(exp) * 1000 {
                api.expired.fetch_add(1, Ordering::SeqCst);
            }
            return status(StatusCode::UNAUTHORIZED);
        }
    };
    let exp = claims["exp"].as_u64().unwrap_or(0);
    if arrived_ms >= u128::from(exp) * 1000 {
        api.expired.fetch_add(1, Ordering::SeqCst);
    }
    {
        let mut tokens = api.tokens.lock().unwrap();
        // Bounded: a runaway would be caught by the fetch assertion long before this.
        if tokens.len() < 10_000 || tokens.contains_key(&token) {
            tokens
                .entry(token)
                .or_insert(TokenSeen { exp, requests: 0 })
                .requests += 1;
        }
    }
    api.ok.fetch_add(1, Ordering::SeqCst);
    status(StatusCode::OK)
}

// ---------------------------------------------------------------------------------------------

/// Faults queued on the IMDS endpoint once the n-th distinct token has been seen, so that the
/// refresh that replaces it meets them. Every one is retried by the credential's retry policy
/// within about 1.3 s, so the cache keeps serving the current (stale but valid) token meanwhile.
fn faults_after_token(n: usize) -> Vec<Fault> {
    let status = |status: u16, retry_after: Option<&str>| Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
        body: None,
    };
    match n {
        2 => vec![status(500, None)],
        3 => vec![status(429, Some("1"))],
        4 => vec![Fault::Delay(Duration::from_millis(1000))],
        5 => vec![status(503, None), status(502, None)],
        7 => vec![Fault::CloseConnection],
        8 => vec![status(429, None), status(500, None)],
        9 => vec![status(410, None)],
        10 => vec![Fault::Delay(Duration::from_millis(700))],
        11 => vec![status(504, None)],
        _ => vec![],
    }
}

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_64_callers_through_both_middlewares_across_refreshes_and_faults() {
    let started = Instant::now();
    let emu = Emulator::builder()
        .token_lifetime(LIFETIME)
        // Every fetch mints a new token. With endpoint-side caching (the default, like real
        // managed-identity endpoints) the emulator returns the held token until it is past half
        // its life; the cache asks just before that (half-life minus its early jitter), gets
        // the same token back, and — its backoff (≥ 30 s) being longer than these tokens live —
        // fetches again only when the token is no longer usable: more fetches than cycles, and
        // callers wait at the end of each cycle. The token re-served then has a few seconds
        // left, stated as whole seconds, so the cache's buffer (a tenth of that) is shorter
        // than the rounding and the token can be sent up to a second past its `exp` (measured:
        // about 1,000 such requests in 25 s, all still accepted by a whole-second validator).
        .cache_tokens(false)
        .start()
        .await
        .unwrap();
    let (api, api_url, api_task) = start_api(&emu).await;

    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emu.imds_host(),
        )]))
        .retry(
            RetryOptions::default()
                .max_retries(4)
                .initial_delay(Duration::from_millis(100))
                .max_delay(Duration::from_millis(400))
                .deadline(Duration::from_secs(10)),
        )
        .attempt_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    // Default refresh settings: half-life minus up to a tenth of the lifetime of jitter, serve
    // until a tenth of the lifetime before expiry. No refresh option had to be changed for
    // six-second tokens.
    let provider = TokenProvider::new(credential);
    let router = TokenRouter::builder(&provider)
        .route(Route::new(&api_url, Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let reqwest_client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerAuthMiddleware::new(router.clone()))
        .build();
    let tower_client = BearerAuthLayer::new(router)
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Outcomes::default());
    let deadline = started + SOAK_DEADLINE;
    let mut callers = Vec::new();
    for i in 0..CALLERS_PER_MIDDLEWARE {
        let (client, url, stop, outcomes) = (
            reqwest_client.clone(),
            format!("{api_url}r/{i}"),
            stop.clone(),
            outcomes.clone(),
        );
        callers.push(tokio::spawn(async move {
            for _ in 0..MAX_REQUESTS_PER_CALLER {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    break;
                }
                let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let resp = client.get(&url).send().await.ok()?;
                    let ok = resp.status() == 200;
                    resp.bytes().await.ok()?;
                    Some(ok)
                })
                .await;
                let counter = match sent {
                    Ok(Some(true)) => &outcomes.ok,
                    _ => &outcomes.failed,
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    for i in 0..CALLERS_PER_MIDDLEWARE {
        let (svc, url, stop, outcomes) = (
            tower_client.clone(),
            format!("{api_url}t/{i}"),
            stop.clone(),
            outcomes.clone(),
        );
        callers.push(tokio::spawn(async move {
            for _ in 0..MAX_REQUESTS_PER_CALLER {
                if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    break;
                }
                let req = http::Request::get(&url).body(Full::default()).unwrap();
                let sent = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let resp = svc.clone().oneshot(req).await.ok()?;
                    let ok = resp.status() == 200;
                    resp.into_body().collect().await.ok()?;
                    Some(ok)
                })
                .await;
                let counter = match sent {
                    Ok(Some(true)) => &outcomes.ok,
                    _ => &outcomes.failed,
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(PACE).await;
            }
        }));
    }

    // The conductor: watches the cycles, queues faults, samples memory and the audiences.
    let mut seen_tokens = 0;
    let mut faults_status = 0usize;
    let mut faults_delay = 0usize;
    let mut early: Option<(i64, Option<u64>)> = None;
    let mut audience_counts = Vec::new();
    for _ in 0..(SOAK_DEADLINE.as_millis() / 20 + 1) {
        if Instant::now() >= deadline {
            break;
        }
        let n = api.distinct_tokens();
        if n != seen_tokens {
            seen_tokens = n;
            for fault in faults_after_token(n) {
                match fault {
                    Fault::Delay(_) => faults_delay += 1,
                    _ => faults_status += 1,
                }
                emu.push_fault(Endpoint::Imds, fault);
            }
            audience_counts.push(audiences(&provider));
            if n == 3 {
                // Two cycles in: connections, pools and buffers are warm.
                early = Some((live_heap(), rss_kib()));
            }
            if n >= TARGET_TOKENS {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The late sample is taken while the callers still run, like the early one.
    let late = (live_heap(), rss_kib());
    stop.store(true, Ordering::SeqCst);
    for c in callers {
        tokio::time::timeout(REQUEST_TIMEOUT + PACE * 2, c)
            .await
            .expect("every caller stops within one request")
            .unwrap();
    }
    audience_counts.push(audiences(&provider));
    let stats = provider.stats();
    let imds_requests = emu.requests(Endpoint::Imds);
    let tokens: Vec<TokenSeen> = {
        let mut t: Vec<TokenSeen> = api.tokens.lock().unwrap().values().copied().collect();
        t.sort_by_key(|t| t.exp);
        t
    };
    let cycles = tokens.len() as u64;
    let (ok, failed) = (
        outcomes.ok.load(Ordering::SeqCst),
        outcomes.failed.load(Ordering::SeqCst),
    );
    let (early_heap, early_rss) = early.expect("the soak reached its third token");
    let (late_heap, late_rss) = late;
    println!(
        "soak: {:.1} s, {ok} requests ok, {failed} failed, {} rejected, {} expired; \
         {cycles} tokens (exp spread {:?}), requests per token {:?}; cache {stats:?}; \
         IMDS requests {imds_requests} ({faults_status} status/connection faults, \
         {faults_delay} delays); live heap {early_heap} -> {late_heap} B; RSS {early_rss:?} -> \
         {late_rss:?} KiB; audiences {audience_counts:?}",
        started.elapsed().as_secs_f64(),
        api.rejected.load(Ordering::SeqCst),
        api.expired.load(Ordering::SeqCst),
        tokens
            .windows(2)
            .map(|w| w[1].exp - w[0].exp)
            .collect::<Vec<_>>(),
        tokens.iter().map(|t| t.requests).collect::<Vec<_>>(),
    );

    // No failed request, and every one reached the API with a valid token.
    assert_eq!(failed, 0, "failed requests");
    assert_eq!(
        api.rejected.load(Ordering::SeqCst),
        0,
        "tokens the API rejected"
    );
    assert_eq!(
        api.ok.load(Ordering::SeqCst),
        ok,
        "every success was validated"
    );
    assert!(ok > 1_000, "the soak ran: {ok} requests");
    // No token was sent once its `exp` had passed (to the millisecond).
    assert_eq!(api.expired.load(Ordering::SeqCst), 0, "expired tokens sent");
    // Refresh cycles: every fetch mints a distinct token (no endpoint-side cache), so a cycle
    // is one distinct token seen by the API; the first is the cold fetch, each further one a
    // refresh.
    assert!(cycles >= 11, "at least ten refresh cycles: {cycles} tokens");
    // Fetches: the cache's single flight means one credential call per cycle; +2 allows a
    // refresh that finished as the callers stopped and one in flight at that moment. The
    // injected faults were absorbed by the credential's retries: the cache saw no failure.
    assert!(
        stats.fetches <= cycles + 2,
        "fetches {} for {cycles} cycles",
        stats.fetches
    );
    assert_eq!(
        stats.failures, 0,
        "no refresh failed as far as the cache can tell"
    );
    // On the wire: at most one successful answer per fetch, plus one request per queued
    // status or connection fault (a delay answers normally after its pause).
    assert!(
        imds_requests as u64 <= stats.fetches + faults_status as u64,
        "IMDS requests {imds_requests} for {} fetches and {faults_status} faults",
        stats.fetches
    );
    assert!(faults_status >= 8, "faults were injected: {faults_status}");
    // Stable memory: one audience throughout; live heap and RSS do not grow between the third
    // token and the end (generous bounds: pools and in-flight requests vary, a per-request
    // leak over tens of thousands of requests would not fit).
    assert!(
        audience_counts.iter().all(|&n| n == 1),
        "{audience_counts:?}"
    );
    assert!(
        late_heap - early_heap < 8 << 20,
        "live heap grew from {early_heap} to {late_heap} bytes"
    );
    if let (Some(a), Some(b)) = (early_rss, late_rss) {
        assert!(b < a + 64 * 1024, "RSS grew from {a} KiB to {b} KiB");
    }
    api_task.abort();
}
