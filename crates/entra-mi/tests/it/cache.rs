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

#[tokio::test]
async fn a_cached_token_is_served_without_a_request() {
    let s = setup(|c| token_reply(c, "tok-A", 3600), false).await;
    let h = s.provider.handle(&graph());
    assert!(h.cached_header().is_none(), "cold cache");
    let first = h.header().await.unwrap();
    assert!(first.is_sensitive());
    assert_eq!(first.as_bytes(), b"Bearer tok-A");
    for _ in 0..10 {
        assert_eq!(h.header().await.unwrap(), first);
        assert_eq!(s.provider.header(&graph()).await.unwrap(), first);
    }
    assert_eq!(s.server.count(), 1);
    let stats = s.provider.stats();
    assert_eq!(stats.fetches, 1);
    assert_eq!(stats.waits, 1);
    assert_eq!(stats.hits, 20);
    assert_eq!(stats.failures, 0);
    let token = h.token().await.unwrap();
    assert_eq!(token.secret(), "tok-A");
    assert!(token.refresh_on().unwrap() < token.expires_on());
}

#[tokio::test]
async fn audiences_and_tenants_have_their_own_slots() {
    let s = setup(|c| token_reply(c, "tok", 3600), false).await;
    s.server.push(token_reply(&s.clock, "graph-token", 3600));
    s.server.push(token_reply(&s.clock, "arm-token", 3600));
    let g = s.provider.header(&graph()).await.unwrap();
    let arm = Audience::new("https://management.azure.com/").unwrap();
    let a = s.provider.header(&arm).await.unwrap();
    assert_eq!(g.as_bytes(), b"Bearer graph-token");
    assert_eq!(a.as_bytes(), b"Bearer arm-token");
    // The slash matters: a different audience, a different slot.
    let arm_no_slash = Audience::new("https://management.azure.com").unwrap();
    s.provider.header(&arm_no_slash).await.unwrap();
    assert_eq!(s.server.count(), 3);
    assert_eq!(
        s.server.requests()[2].query("resource").as_deref(),
        Some("https://management.azure.com")
    );
}

#[tokio::test]
async fn stale_tokens_are_served_at_once_while_one_refresh_runs() {
    let s = setup(|c| token_reply(c, "tok-A", 3600), false).await;
    let h = s.provider.handle(&graph());
    h.header().await.unwrap();
    // A 1 h token refreshes 5 min before expiry (no jitter here).
    s.clock.advance(Duration::from_secs(3300 - 1));
    assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-A");
    assert_eq!(s.provider.stats().stale_hits, 0);
    s.clock.advance(Duration::from_secs(2));
    s.server.push(Reply::Delayed(
        Duration::from_millis(300),
        Box::new(token_reply(&s.clock, "tok-B", 3600)),
    ));
    // Many callers see the stale token at once; exactly one refresh goes out.
    for _ in 0..50 {
        assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-A");
    }
    assert!(eventually(5, || s.server.count() == 2).await);
    assert!(
        eventually(5, || h.cached_header().unwrap().as_bytes()
            == b"Bearer tok-B")
        .await
    );
    assert_eq!(s.server.count(), 2);
    let stats = s.provider.stats();
    assert!(stats.stale_hits >= 50);
    assert_eq!(stats.fetches, 2);
    assert_eq!(stats.waits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_callers_cause_one_request() {
    let s = setup(|c| token_reply(c, "tok", 3600), false).await;
    s.server.push(Reply::Delayed(
        Duration::from_millis(300),
        Box::new(token_reply(&s.clock, "tok-1", 3600)),
    ));
    let h = s.provider.handle(&graph());
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.header().await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().as_bytes(), b"Bearer tok-1");
    }
    assert_eq!(s.server.count(), 1);
    assert_eq!(s.provider.stats().fetches, 1);
    assert_eq!(s.provider.stats().waits, 1000);
}

#[tokio::test]
async fn a_dropped_first_caller_does_not_cancel_the_fetch() {
    let s = setup(|c| token_reply(c, "tok", 3600), false).await;
    s.server.push(Reply::Delayed(
        Duration::from_millis(400),
        Box::new(token_reply(&s.clock, "tok-1", 3600)),
    ));
    let h = s.provider.handle(&graph());
    let first = tokio::time::timeout(Duration::from_millis(50), h.header()).await;
    assert!(first.is_err(), "the first caller gave up");
    let second = h.header().await.unwrap();
    assert_eq!(second.as_bytes(), b"Bearer tok-1");
    assert_eq!(
        s.server.count(),
        1,
        "the second caller joined the same fetch"
    );
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_valid_token_and_backs_off() {
    let s = setup(|_| Reply::json(500, json!({"error": "unknown"})), false).await;
    s.server.push(token_reply(&s.clock, "tok-A", 3600));
    let h = s.provider.handle(&graph());
    h.header().await.unwrap();
    s.clock.advance(Duration::from_secs(3301));
    assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-A");
    assert!(eventually(5, || s.provider.stats().failures == 1).await);
    assert_eq!(s.server.count(), 2);
    // Within the 30 s backoff: still served, no new request.
    for _ in 0..29 {
        s.clock.advance(Duration::from_secs(1));
        assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-A");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(s.server.count(), 2, "backed off");
    s.clock.advance(Duration::from_secs(2));
    s.server.push(token_reply(&s.clock, "tok-B", 3600));
    h.cached_header().unwrap();
    assert!(
        eventually(5, || h.cached_header().unwrap().as_bytes()
            == b"Bearer tok-B")
        .await
    );
    assert_eq!(s.server.count(), 3);
}

#[tokio::test]
async fn expired_tokens_make_callers_wait_and_errors_reach_them() {
    let s = setup(
        |_| Reply::json(500, json!({"error": "unknown", "error_description": "no"})),
        false,
    )
    .await;
    s.server.push(token_reply(&s.clock, "tok-A", 3600));
    let h = s.provider.handle(&graph());
    h.header().await.unwrap();
    // Past expiry minus the 60 s buffer.
    s.clock.advance(Duration::from_secs(3600 - 59));
    assert!(
        h.cached_header().is_none(),
        "an expiring token is never handed out"
    );
    let err = h.header().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    let requests = s.server.count();
    // Within the cold retry interval the last error comes back without a request.
    let again = h.header().await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    assert_eq!(s.server.count(), requests);
    s.clock.advance(Duration::from_secs(2));
    s.server.push(token_reply(&s.clock, "tok-B", 3600));
    assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-B");
}

#[tokio::test]
async fn eager_mode_refreshes_without_traffic() {
    let s = setup(|c| token_reply(c, "tok-A", 3600), true).await;
    let h = s.provider.handle(&graph());
    h.header().await.unwrap();
    assert!(
        eventually(5, || s.clock.pending_sleeps() == 1).await,
        "a timer is set"
    );
    s.server.push(token_reply(&s.clock, "tok-B", 3600));
    s.clock.advance(Duration::from_secs(3300));
    assert!(
        eventually(5, || s.server.count() == 2).await,
        "refreshed by the timer"
    );
    assert!(
        eventually(5, || h.cached_header().unwrap().as_bytes()
            == b"Bearer tok-B")
        .await
    );
    assert_eq!(s.provider.stats().stale_hits, 0, "no caller saw it stale");
    drop(h);
    drop(s.provider);
}

#[tokio::test]
async fn a_refresh_returning_the_same_token_does_not_loop() {
    // The endpoint keeps returning one token with a fixed absolute expiry, as MI endpoints do.
    let clock = ManualClock::new();
    let expires_on = clock
        .system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": "same-token", "expires_on": expires_on.to_string(), "token_type": "Bearer"}),
    ))
    .await;
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://{}", server.addr),
        )]))
        .time_source(clock.time_source(0.0))
        .build()
        .unwrap();
    let provider = TokenProvider::builder(credential)
        .time_source(clock.time_source(0.0))
        .build();
    let h = provider.handle(&graph());
    h.header().await.unwrap();
    // Walk through the token's whole life, one request every second.
    for _ in 0..3540 {
        clock.advance(Duration::from_secs(1));
        if let Some(v) = h.cached_header() {
            assert_eq!(v.as_bytes(), b"Bearer same-token");
        }
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let n = server.count();
    assert!(
        n <= 8,
        "{n} requests for one token's life: the refresh loops"
    );
    assert!(n >= 2, "it did try to refresh");
}

#[tokio::test]
async fn invalidate_if_current_only_drops_the_matching_token() {
    let s = setup(|c| token_reply(c, "tok", 3600), false).await;
    s.server.push(token_reply(&s.clock, "tok-A", 3600));
    s.server.push(token_reply(&s.clock, "tok-B", 3600));
    let h = s.provider.handle(&graph());
    let a = h.token().await.unwrap();
    let stranger = AccessToken::new("tok-X", a.expires_on());
    assert!(!h.invalidate_if_current(&stranger));
    assert!(!s.provider.invalidate_if_current(&graph(), &stranger));
    assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-A");
    assert!(s.provider.invalidate_if_current(&graph(), &a));
    assert!(h.cached_header().is_none());
    let b = h.token().await.unwrap();
    assert_eq!(b.secret(), "tok-B");
    // A second 401 for the old token does not drop the new one.
    assert!(!h.invalidate_if_current(&a));
    assert!(!h.invalidate_header_if_current(&a.header_value().unwrap()));
    assert!(h.invalidate_header_if_current(&b.header_value().unwrap()));
    assert_eq!(s.server.count(), 2);
    assert_eq!(s.provider.stats().invalidations, 2);
}

#[tokio::test]
async fn refresh_in_from_the_source_sets_the_refresh_point() {
    let s = setup(|c| {
        let now = c.system_now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        Reply::json(200, json!({"access_token": "tok", "expires_in": 86400, "expires_on": now + 86400, "refresh_in": 600}))
    }, false).await;
    let h = s.provider.handle(&graph());
    h.header().await.unwrap();
    s.clock.advance(Duration::from_secs(599));
    h.cached_header().unwrap();
    assert_eq!(s.provider.stats().stale_hits, 0);
    s.clock.advance(Duration::from_secs(2));
    h.cached_header().unwrap();
    assert_eq!(s.provider.stats().stale_hits, 1);
}

#[tokio::test]
async fn long_tokens_refresh_at_half_life_and_short_ones_five_minutes_early() {
    for (lifetime, fresh_until) in [
        (86_400u64, 43_200u64),
        (7200, 3600),
        (7199, 6899),
        (600, 300),
        (60, 30),
    ] {
        let s = setup(move |c| token_reply(c, "tok", lifetime), false).await;
        let h = s.provider.handle(&graph());
        h.header().await.unwrap();
        s.clock.advance(Duration::from_secs(fresh_until - 1));
        h.cached_header().unwrap();
        assert_eq!(
            s.provider.stats().stale_hits,
            0,
            "lifetime {lifetime}: fresh before {fresh_until}"
        );
        s.clock.advance(Duration::from_secs(2));
        h.cached_header().unwrap();
        assert_eq!(
            s.provider.stats().stale_hits,
            1,
            "lifetime {lifetime}: stale after {fresh_until}"
        );
    }
}

#[tokio::test]
async fn jitter_only_moves_the_refresh_earlier_and_within_bounds() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, "tok", 86_400)).await;
    let env = Environment::from_vars([(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://{}", server.addr),
    )]);
    let credential = ManagedIdentityCredential::builder()
        .environment(env)
        .time_source(clock.time_source(0.0))
        .build()
        .unwrap();
    // Maximal jitter: refresh up to 5 min before the half-life point, never later.
    let provider = TokenProvider::builder(credential)
        .time_source(clock.time_source(0.99))
        .build();
    let h = provider.handle(&graph());
    h.header().await.unwrap();
    clock.advance(Duration::from_secs(43_200 - 300 - 5));
    h.cached_header().unwrap();
    assert_eq!(provider.stats().stale_hits, 0);
    clock.advance(Duration::from_secs(10));
    h.cached_header().unwrap();
    assert_eq!(provider.stats().stale_hits, 1);
}

/// A credential written in the test: it panics on its first `panics` calls.
#[derive(Debug)]
struct Panics {
    calls: AtomicUsize,
    panics: usize,
}

#[async_trait]
impl TokenCredential for Panics {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.panics {
            panic!("credential bug");
        }
        let _ = request;
        Ok(AccessToken::new(
            "tok-ok",
            std::time::SystemTime::now() + Duration::from_secs(3600),
        ))
    }
    fn name(&self) -> &str {
        "panics"
    }
}

/// A panicking credential is a failing one: callers get `FetchAborted`, the credential is asked
/// again only after the cold retry interval (not by every caller), and then works.
#[tokio::test]
async fn a_credential_that_panics_backs_off_like_one_that_fails() {
    let cred = Arc::new(Panics {
        calls: AtomicUsize::new(0),
        panics: usize::MAX,
    });
    let clock = ManualClock::with_wall_time(std::time::SystemTime::now());
    let provider = TokenProvider::builder_shared(cred.clone())
        .time_source(clock.time_source(0.0))
        .build();
    for _ in 0..20 {
        let err = provider.header(&graph()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Credential(entra_mi::error::CredentialError::Aborted { .. })
            ),
            "{err:?}"
        );
    }
    assert_eq!(
        cred.calls.load(Ordering::SeqCst),
        1,
        "one call, then back-off"
    );
    clock.advance(Duration::from_secs(2));
    assert!(provider.header(&graph()).await.is_err());
    assert_eq!(cred.calls.load(Ordering::SeqCst), 2);
    assert_eq!(provider.stats().failures, 2);

    let cred = Arc::new(Panics {
        calls: AtomicUsize::new(0),
        panics: 1,
    });
    let provider = TokenProvider::builder_shared(cred.clone())
        .time_source(clock.time_source(0.0))
        .build();
    assert!(provider.header(&graph()).await.is_err());
    clock.advance(Duration::from_secs(2));
    let ok = provider.header(&graph()).await.unwrap();
    assert_eq!(ok.as_bytes(), b"Bearer tok-ok");
    assert_eq!(cred.calls.load(Ordering::SeqCst), 2);
}

/// Each thread serves hits from its own copy of the entry; a replacement or an invalidation
/// made on another thread must reach it at once.
#[tokio::test]
async fn per_thread_copies_follow_invalidation_and_replacement_on_other_threads() {
    let s = setup(|c| token_reply(c, "tok", 3600), false).await;
    s.server.push(token_reply(&s.clock, "tok-A", 3600));
    s.server.push(token_reply(&s.clock, "tok-B", 3600));
    let h = s.provider.handle(&graph());
    let a = h.token().await.unwrap();
    let (to_worker, from_main) = std::sync::mpsc::channel::<()>();
    let (to_main, from_worker) = std::sync::mpsc::channel::<Option<Vec<u8>>>();
    let worker = {
        let h = h.clone();
        std::thread::spawn(move || {
            // Three looks, each after the main thread says go: warm copy, after the
            // invalidation, after the new token.
            for _ in 0..3 {
                if from_main.recv_timeout(Duration::from_secs(10)).is_err() {
                    return;
                }
                let seen = h.cached_header().map(|v| v.as_bytes().to_vec());
                // Again, many times: from the copy of the entry the first look made, and
                // past the point where the thread makes its own copy of the header.
                for _ in 0..200 {
                    let again = h.cached_header();
                    assert_eq!(seen.as_deref(), again.as_ref().map(|v| v.as_bytes()));
                    assert!(again.is_none_or(|v| v.is_sensitive()));
                }
                to_main.send(seen).unwrap();
            }
        })
    };
    let look = |tx: &std::sync::mpsc::Sender<()>| {
        tx.send(()).unwrap();
        from_worker.recv_timeout(Duration::from_secs(10)).unwrap()
    };
    assert_eq!(look(&to_worker).as_deref(), Some(&b"Bearer tok-A"[..]));
    assert!(h.invalidate_if_current(&a));
    assert_eq!(
        look(&to_worker),
        None,
        "the worker's copy outlived the invalidation"
    );
    let b = h.token().await.unwrap();
    assert_eq!(b.secret(), "tok-B");
    assert_eq!(look(&to_worker).as_deref(), Some(&b"Bearer tok-B"[..]));
    worker.join().unwrap();
}

/// Tokens named by a call number and the audience they are for (`tok-3 for api://a`), living
/// `lifetime`; counts its calls.
#[derive(Debug)]
struct Numbered {
    calls: AtomicUsize,
    lifetime: Duration,
}

impl Numbered {
    fn living(lifetime: Duration) -> Self {
        Self {
            calls: AtomicUsize::new(0),
            lifetime,
        }
    }
}

#[async_trait]
impl TokenCredential for Numbered {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(AccessToken::new(
            format!("tok-{n}-for-{}", request.audience().resource()),
            std::time::SystemTime::now() + self.lifetime,
        ))
    }
    fn name(&self) -> &str {
        "numbered"
    }
}

/// A thread's copy outlives the thread (thread ids are reused, and with them the copies): a
/// thread started after the token was replaced must serve the new token, whichever dead
/// thread's copy it inherits. Each thread first uses another audience, so that it already has
/// an id (and the dead thread's copy) when it first looks at the replaced one.
#[tokio::test]
async fn a_new_thread_never_serves_a_dead_threads_copy_of_a_replaced_token() {
    let provider = TokenProvider::new(Numbered::living(Duration::from_secs(3600)));
    let h = provider.handle(&graph());
    let other = provider.handle(&Audience::azure_resource_manager());
    other.header().await.unwrap();
    let first = h.token().await.unwrap();
    let serve = || {
        let (h, other) = (h.clone(), other.clone());
        std::thread::spawn(move || {
            assert!(other.cached_header().is_some());
            // Past the point where the thread makes its own copy of the header.
            let seen: Vec<_> = (0..200)
                .map(|_| h.cached_header().map(|v| v.as_bytes().to_vec()))
                .collect();
            assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
            seen[0].clone()
        })
        .join()
        .unwrap()
    };
    // Several threads in turn, each warming a copy and exiting.
    for _ in 0..4 {
        assert_eq!(
            serve().as_deref(),
            Some(format!("Bearer {}", first.secret()).as_bytes())
        );
    }
    assert!(h.invalidate_if_current(&first));
    for _ in 0..4 {
        assert_eq!(
            serve(),
            None,
            "a dead thread's copy outlived the invalidation"
        );
    }
    let second = h.token().await.unwrap();
    assert_ne!(second.secret(), first.secret());
    for _ in 0..4 {
        assert_eq!(
            serve().as_deref(),
            Some(format!("Bearer {}", second.secret()).as_bytes())
        );
    }
}

/// A thread-local whose destructor uses the cache, registered before the thread first used
/// the cache: its destructor runs after the cache's per-thread state has been torn down.
struct UsesCacheOnExit {
    handle: std::cell::RefCell<Option<entra_mi::TokenHandle>>,
    seen: std::sync::mpsc::Sender<Option<Vec<u8>>>,
}

impl Drop for UsesCacheOnExit {
    fn drop(&mut self) {
        if let Some(h) = self.handle.borrow_mut().take() {
            let _ = self
                .seen
                .send(h.cached_header().map(|v| v.as_bytes().to_vec()));
        }
    }
}

thread_local! {
    static ON_EXIT: std::cell::RefCell<Option<UsesCacheOnExit>> =
        const { std::cell::RefCell::new(None) };
}

/// A cache used from a thread-local destructor, at thread exit, still serves the token and
/// does not panic (a panic there aborts the process).
#[tokio::test]
async fn the_cache_works_from_a_thread_local_destructor() {
    let provider = TokenProvider::new(Numbered::living(Duration::from_secs(3600)));
    let h = provider.handle(&graph());
    let first = h.token().await.unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn({
        let h = h.clone();
        move || {
            // Registered first, so (destructors run last-registered first) torn down last.
            ON_EXIT.with(|e| {
                *e.borrow_mut() = Some(UsesCacheOnExit {
                    handle: std::cell::RefCell::new(Some(h.clone())),
                    seen: tx,
                })
            });
            assert!(h.cached_header().is_some());
        }
    });
    worker.join().expect("the thread exits cleanly");
    let seen = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        seen.as_deref(),
        Some(format!("Bearer {}", first.secret()).as_bytes())
    );
}

/// One thread using many audiences serves each from its own copy, never another audience's
/// token, and every hit is counted.
#[tokio::test]
async fn one_thread_serves_many_audiences_each_its_own_token() {
    let provider = TokenProvider::new(Numbered::living(Duration::from_secs(3600)));
    let handles: Vec<_> = (0..40)
        .map(|i| provider.handle(&Audience::new(&format!("api://app-{i}")).unwrap()))
        .collect();
    for h in &handles {
        h.header().await.unwrap();
    }
    let before = provider.stats().hits;
    let served = std::thread::spawn({
        let handles = handles.clone();
        move || {
            let mut served = 0;
            for round in 0..100 {
                for (i, h) in handles.iter().enumerate() {
                    let header = h.cached_header().expect("cached");
                    let text = header.to_str().unwrap();
                    assert!(
                        text.ends_with(&format!("-for-api://app-{i}")),
                        "round {round}: audience {i} got {text}"
                    );
                    served += 1;
                }
            }
            served
        }
    })
    .join()
    .unwrap();
    assert_eq!(served, 4_000);
    assert_eq!(provider.stats().hits - before, 4_000);
}

/// `expires_in` counts whole seconds: even a token of a few seconds stops being served at
/// least a second before its computed expiry (a tenth of 5 s would leave only half a second).
#[tokio::test]
async fn short_tokens_stop_being_served_a_second_before_expiry() {
    let s = setup(|c| token_reply(c, "tok-short", 5), false).await;
    let h = s.provider.handle(&graph());
    h.header().await.unwrap();
    s.clock.advance(Duration::from_millis(3_990));
    assert!(
        h.cached_header().is_some(),
        "still usable (stale) just before"
    );
    s.clock.advance(Duration::from_millis(10));
    assert!(
        h.cached_header().is_none(),
        "1 s before the computed expiry the token is no longer served"
    );
}

/// A clock that moves in 50 ms steps, like `CLOCK_MONOTONIC_COARSE` moves in scheduler ticks
/// (1–4 ms): it can read behind the timer that the cache sleeps on.
#[derive(Debug)]
struct SteppedClock(std::time::Instant);

impl Clock for SteppedClock {
    fn monotonic(&self) -> Duration {
        let step = Duration::from_millis(50);
        step * (self.0.elapsed().as_millis() / step.as_millis()) as u32
    }
    fn system_now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

#[tokio::test]
async fn an_eager_refresh_is_not_lost_to_a_coarse_clock() {
    // The timer wakes the refresh at its time by the runtime's clock; the cache's coarse clock
    // may still read a little earlier. The refresh must run all the same: nothing else would
    // schedule it, and with no traffic the token would simply expire.
    let credential = Arc::new(Numbered::living(Duration::from_secs(3)));
    let time = entra_mi::time::TimeSource::new(
        Arc::new(SteppedClock(std::time::Instant::now())),
        Arc::new(entra_mi::time::TokioSleep),
        Arc::new(entra_mi::time::RandomJitter),
    );
    let provider = TokenProvider::builder(credential.clone())
        .time_source(time)
        .eager_refresh(true)
        .build();
    provider.header(&Audience::microsoft_graph()).await.unwrap();
    // Due at about half the 3 s life; no caller asks in between.
    let refreshed = eventually(3, || credential.calls.load(Ordering::SeqCst) >= 2).await;
    assert!(refreshed, "the eager refresh ran");
}
