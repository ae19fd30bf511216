//! Serving from the cache: hits, slots, stale tokens, cold callers, failures.

use super::*;

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
async fn a_header_future_looks_at_the_cache_when_first_polled() {
    let s = setup(|c| token_reply(c, "tok-A", 3600), false).await;
    let h = s.provider.handle(&graph());
    // Made while the cache is cold, polled after another caller cached a token: served from
    // the cache, no second request.
    let early = h.header();
    let first = h.header().await.unwrap();
    assert_eq!(early.await.unwrap(), first);
    assert_eq!(s.server.count(), 1);
    let stats = s.provider.stats();
    assert_eq!(
        (stats.waits, stats.hits),
        (1, 1),
        "the early future was a cache hit"
    );
    // Dropped before its first poll: nothing happens.
    drop(h.header());
    assert_eq!(s.provider.stats().fetches, 1);
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
