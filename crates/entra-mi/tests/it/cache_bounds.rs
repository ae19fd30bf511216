//! The cache's bounds: a machine that slept never serves an expired token, a fetch that never
//! returns fails its waiters, a claims fetch is never overwritten by a plain one, a custom
//! token no header can carry is an error, callers outside a tokio runtime share one fetch, and
//! no log event is written while a cache lock is held.

use entra_mi_test_support as support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use entra_mi::time::{Clock, ManualClock};
use entra_mi::{
    AccessToken, Audience, Environment, Error, ManagedIdentityCredential, RetryOptions,
    TokenCredential, TokenProvider, TokenRequest,
};
use support::{RawServer, Reply, imds_body};

fn graph() -> Audience {
    Audience::microsoft_graph()
}

fn unix(clock: &ManualClock) -> u64 {
    clock
        .system_now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An IMDS credential against `server`, and a provider, both on `clock`.
fn provider_on(server: &RawServer, clock: &ManualClock) -> TokenProvider {
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://{}", server.addr),
        )]))
        .time_source(clock.time_source(0.0))
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();
    TokenProvider::builder(credential)
        .time_source(clock.time_source(0.0))
        .build()
}

/// The monotonic clock stands still while the machine sleeps; the wall clock does not. After
/// a suspend past the refresh point the token is stale (served while a refresh runs); after a
/// suspend past its expiry it is never served, on the per-thread hit path included.
#[tokio::test]
async fn a_machine_that_slept_never_serves_an_expired_token() {
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let server = RawServer::start(Reply::json(200, imds_body("tok-A", unix(&clock), 3600))).await;
    let provider = provider_on(&server, &clock);
    let h = provider.handle(&graph());
    assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-A");
    // Many hits: this thread now serves its own copy.
    for _ in 0..200 {
        assert!(h.cached_header().is_some());
    }
    // Asleep for two hours: the token expired an hour ago in wall-clock terms.
    clock.suspend(Duration::from_secs(7200));
    assert!(
        h.cached_header().is_none(),
        "a token that expired while the machine slept was served"
    );
    assert!(provider.cached_header(&graph()).is_none());
    // The next caller waits for a new one.
    server.push(Reply::json(200, imds_body("tok-B", unix(&clock), 3600)));
    assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-B");
    assert_eq!(server.count(), 2);

    // Asleep past the refresh point only (5 min before expiry): stale, still served once,
    // and a refresh starts.
    for _ in 0..200 {
        assert!(h.cached_header().is_some());
    }
    server.push(Reply::json(200, imds_body("tok-C", unix(&clock), 3600)));
    clock.suspend(Duration::from_secs(3600 - 240));
    assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-B");
    assert!(provider.stats().stale_hits >= 1);
    assert!(
        support::eventually(5, || h
            .cached_header()
            .is_some_and(|v| v.as_bytes() == b"Bearer tok-C"))
        .await,
        "the refresh after the suspend was not started"
    );
}

/// A wall clock set back does not stretch a token's life: the monotonic clock still judges it.
#[tokio::test]
async fn a_wall_clock_set_back_does_not_stretch_a_token() {
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let server = RawServer::start(Reply::json(200, imds_body("tok-A", unix(&clock), 3600))).await;
    let provider = provider_on(&server, &clock);
    let h = provider.handle(&graph());
    h.header().await.unwrap();
    for _ in 0..200 {
        assert!(h.cached_header().is_some());
    }
    // The wall clock is set back two hours; the token is still fresh (on both clocks)…
    clock.set_wall_back(Duration::from_secs(7200));
    for _ in 0..200 {
        assert!(h.cached_header().is_some());
    }
    // …until a minute before its expiry on the monotonic clock, where the wall clock (now
    // two hours behind) would still call it fresh.
    clock.advance(Duration::from_secs(3600 - 50));
    assert!(h.cached_header().is_none(), "the token outlived its expiry");
    assert!(provider.cached_header(&graph()).is_none());
}

/// A credential whose fetch never completes.
#[derive(Debug)]
struct Hangs(AtomicUsize);

#[async_trait]
impl TokenCredential for Hangs {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
    fn name(&self) -> &str {
        "hangs"
    }
}

/// A fetch that never returns ends at the provider's fetch timeout, and every caller waiting
/// for it gets a typed error instead of hanging.
#[tokio::test]
async fn a_fetch_that_never_returns_fails_every_waiter_at_the_timeout() {
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let credential = Arc::new(Hangs(AtomicUsize::new(0)));
    let provider = TokenProvider::builder_shared(credential.clone())
        .time_source(clock.time_source(0.0))
        .fetch_timeout(Duration::from_secs(30))
        .build();
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let p = provider.clone();
            tokio::spawn(async move { p.header(&graph()).await })
        })
        .collect();
    assert!(
        support::eventually(5, || clock.pending_sleeps() == 1
            && provider.stats().waits >= 8)
        .await,
        "the fetch and its timeout did not start"
    );
    clock.advance(Duration::from_secs(30));
    for w in waiters {
        let result = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("a waiter hung")
            .unwrap();
        match &result {
            Err(Error::Deadline(family))
                if let entra_mi::error::DeadlineError::FetchTimeout { timeout, .. } =
                    family.as_ref() =>
            {
                assert_eq!(*timeout, Duration::from_secs(30))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(credential.0.load(Ordering::SeqCst), 1, "one fetch for all");
    assert_eq!(provider.stats().failures, 1);
}

/// A credential whose token carries the claims it was asked for, and which answers a plain
/// request only after a claims request has been answered (so a plain fetch in flight ends
/// last, if the two ever overlap).
#[derive(Debug, Default)]
struct ClaimsAware {
    calls: AtomicUsize,
    claims_answered: tokio::sync::Notify,
}

#[async_trait]
impl TokenCredential for ClaimsAware {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let expires = SystemTime::now() + Duration::from_secs(3600);
        match request.claims() {
            Some(_) => {
                let token = AccessToken::new(format!("with-claims-{n}"), expires);
                self.claims_answered.notify_waiters();
                Ok(token)
            }
            None if n == 0 => Ok(AccessToken::new("plain-0", expires)),
            None => {
                // Held back until a claims answer went out, for at most 2 s.
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), self.claims_answered.notified())
                        .await;
                Ok(AccessToken::new(format!("plain-{n}"), expires))
            }
        }
    }
    fn name(&self) -> &str {
        "claims-aware"
    }
}

/// A claims fetch is the slot's flight: a plain refetch running when it starts ends first, and
/// one started meanwhile joins it, so the token carrying the claims is what stays cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_refetch_never_overwrites_the_token_carrying_claims() {
    let credential = Arc::new(ClaimsAware::default());
    let provider = TokenProvider::builder_shared(credential.clone()).build();
    let h = provider.handle(&graph());
    let first = h.token().await.unwrap();
    assert_eq!(first.secret(), "plain-0");
    // The API rejected it: a plain refetch starts (and is held back by the credential)…
    assert!(h.invalidate_if_current(&first));
    let plain = {
        let h = h.clone();
        tokio::spawn(async move { h.header().await })
    };
    assert!(support::eventually(5, || credential.calls.load(Ordering::SeqCst) == 2).await);
    // …while a claims challenge asks for a token with claims.
    let with_claims = h
        .fetch_with_claims(r#"{"access_token":{"nbf":{"essential":true}}}"#)
        .await
        .unwrap();
    assert!(
        with_claims.secret().starts_with("with-claims"),
        "{with_claims:?}"
    );
    let _ = plain.await.unwrap();
    let cached = h.token().await.unwrap();
    assert_eq!(
        cached.secret(),
        with_claims.secret(),
        "the token carrying the claims was replaced by a plain one"
    );
}

/// A custom credential's token.
#[derive(Debug)]
struct Custom(&'static str, &'static str);

#[async_trait]
impl TokenCredential for Custom {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        Ok(
            AccessToken::new(self.0, SystemTime::now() + Duration::from_secs(3600))
                .with_token_type(self.1),
        )
    }
    fn name(&self) -> &str {
        "custom"
    }
}

/// A token or token type no header can carry is `Error::Credential`, never an empty
/// `Authorization` header; the error shows neither.
#[tokio::test]
async fn a_token_no_header_can_carry_is_a_credential_error() {
    for (token, token_type) in [
        ("SECRET with spaces", "Bearer"),
        ("SECRET-line\nbreak", "Bearer"),
        ("SECRET-\u{7f}", "Bearer"),
        ("SECRET-ok", ""),
        ("SECRET-ok", "Bear er"),
        ("", "Bearer"),
    ] {
        let provider = TokenProvider::new(Custom(token, token_type));
        let err = provider.header(&graph()).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(
            matches!(&err, Error::Credential(family) if matches!(&**family, entra_mi::error::CredentialError::Failed { .. })),
            "{shown}"
        );
        assert!(
            shown.contains("cannot be sent in an HTTP header"),
            "{shown}"
        );
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(provider.cached_header(&graph()).is_none());
    }
}

/// A minimal executor that is not tokio: polls the future on this thread, parking in between.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// A credential that needs no runtime: it answers once two callers are in (bounded).
#[derive(Debug)]
struct NoRuntime {
    calls: AtomicUsize,
    provider: Mutex<Option<TokenProvider>>,
}

#[async_trait]
impl TokenCredential for NoRuntime {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let provider = self.provider.lock().unwrap().clone().unwrap();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while provider.stats().waits < 1 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(AccessToken::new(
            "tok-shared",
            SystemTime::now() + Duration::from_secs(3600),
        ))
    }
    fn name(&self) -> &str {
        "no-runtime"
    }
}

/// Outside a tokio runtime the first caller runs the fetch in its own task, and concurrent
/// callers join it instead of fetching again.
#[test]
fn callers_outside_a_runtime_share_one_fetch() {
    let credential = Arc::new(NoRuntime {
        calls: AtomicUsize::new(0),
        provider: Mutex::new(None),
    });
    let provider = TokenProvider::builder_shared(credential.clone()).build();
    *credential.provider.lock().unwrap() = Some(provider.clone());
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let p = provider.clone();
            std::thread::spawn(move || block_on(p.header(&graph())))
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap().as_bytes(), b"Bearer tok-shared");
    }
    assert_eq!(credential.calls.load(Ordering::SeqCst), 1);
}

/// A `tracing` layer that asks the cache for a token (taking the slot's lock) on every event:
/// an event written while the cache holds that lock would deadlock.
struct ReentrantLayer {
    provider: Arc<Mutex<Option<TokenProvider>>>,
    events: Arc<AtomicUsize>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ReentrantLayer {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.events.fetch_add(1, Ordering::SeqCst);
        if let Some(p) = self.provider.lock().unwrap().clone() {
            let h = p.handle(&graph());
            // Each takes the slot's lock.
            let _ = h.invalidate_if_current(&AccessToken::new("other", SystemTime::now()));
            let _ = h.cached_header();
        }
    }
}

#[test]
fn no_log_event_is_written_while_a_cache_lock_is_held() {
    use tracing_subscriber::layer::SubscriberExt;
    let provider_cell = Arc::new(Mutex::new(None));
    let events = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(ReentrantLayer {
        provider: provider_cell.clone(),
        events: events.clone(),
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _guard = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = ManualClock::with_wall_time(SystemTime::now());
            let server =
                RawServer::start(Reply::json(200, imds_body("tok-A", unix(&clock), 3600))).await;
            let provider = provider_on(&server, &clock);
            *provider_cell.lock().unwrap() = Some(provider.clone());
            let h = provider.handle(&graph());
            // A fetch (logged when cached), an invalidation, a failure, a stale refresh.
            let token = h.token().await.unwrap();
            assert!(h.invalidate_if_current(&token));
            server.push(Reply::json(500, serde_json::json!({"error": "boom"})));
            assert!(h.header().await.is_err());
            clock.advance(Duration::from_secs(2));
            h.header().await.unwrap();
            clock.advance(Duration::from_secs(3000));
            let _ = h.cached_header();
            let _ = h.header().await;
            // The same token handed back after a rejection, and held back.
            let token = h.token().await.unwrap();
            let _ = h.invalidate_if_current(&token);
            let _ = h.header().await;
            let token = h.token().await.unwrap();
            let _ = h.invalidate_if_current(&token);
        });
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a log event written under a cache lock deadlocked");
    worker.join().unwrap();
    assert!(
        events.load(Ordering::SeqCst) > 5,
        "the layer saw the events"
    );
}
