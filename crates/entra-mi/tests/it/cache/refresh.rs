//! When the cache refreshes: eager mode, refresh points, half-life, jitter.

use super::*;

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
    let mut served = 0;
    for _ in 0..3540 {
        clock.advance(Duration::from_secs(1));
        if let Some(v) = h.cached_header() {
            assert_eq!(v.as_bytes(), b"Bearer same-token");
            served += 1;
        }
        tokio::task::yield_now().await;
    }
    // Fresh until the refresh point (55 min), stale but served after it.
    assert!(
        served >= 3300,
        "the token was served {served} times in 3540 s"
    );
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
