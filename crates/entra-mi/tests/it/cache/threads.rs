//! Panicking credentials and the per-thread copies of entries.

use super::*;

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
            matches!(&err, Error::Credential(family) if matches!(&**family, entra_mi::error::CredentialError::Aborted { .. })),
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
