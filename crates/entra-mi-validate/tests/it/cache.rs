//! The verified-token cache: repeats, expiry, bounds, and exact comparison.

use std::time::Duration;

use entra_mi_emulator::Endpoint;
use entra_mi_validate::{Check, Policy};
use serde_json::json;

use crate::support::{ROLE, World, merge, with_payload};

#[tokio::test]
async fn a_repeated_token_is_answered_from_memory_until_it_expires() {
    let w = World::start().await;
    let v = w.validator();
    let now = w.clock.unix_secs();
    let token = w.token(json!({"exp": now + 600}));
    let policy = Policy::new().require_roles([ROLE]);
    assert!(
        v.validate_cached_with(&token, &policy).is_none(),
        "not seen yet"
    );
    v.validate(&token).await.unwrap();
    assert_eq!(v.verified_tokens(), 1);
    let hit = v.validate_cached_with(&token, &policy).expect("remembered");
    assert!(hit.unwrap().has_role(ROLE));
    // A policy still applies to a remembered token.
    let e = v
        .validate_cached_with(&token, &Policy::new().require_roles(["Orders.Write"]))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.check(), Check::Role);
    // Expired (with the skew) even though it was verified before.
    w.clock.advance(Duration::from_secs(600 + 299));
    assert!(v.validate_cached_with(&token, &policy).unwrap().is_ok());
    w.clock.advance(Duration::from_secs(1));
    let e = v
        .validate_cached_with(&token, &policy)
        .unwrap()
        .unwrap_err();
    assert_eq!(e.check(), Check::Expired, "{e}");
    assert_eq!(v.verified_tokens(), 0, "forgotten once expired");
    assert_eq!(
        v.validate(&token).await.unwrap_err().check(),
        Check::Expired
    );
    assert_eq!(w.em.requests(Endpoint::Jwks), 1);
}

#[tokio::test]
async fn the_whole_token_is_compared() {
    let w = World::start().await;
    let v = w.validator();
    let good = w.token(json!({}));
    v.validate(&good).await.unwrap();
    // Same signature (and so the same hashed tail), another payload: not a hit.
    let tampered = with_payload(
        &good,
        &merge(w.claims(), json!({"roles": ["Orders.Admin"]})),
    );
    assert!(v.validate_cached_with(&tampered, &Policy::new()).is_none());
    assert_eq!(
        v.validate(&tampered).await.unwrap_err().check(),
        Check::Signature
    );
    // A prefix or an extension of a remembered token is not it either.
    assert!(v.validate_cached_with(&good[1..], &Policy::new()).is_none());
    assert!(
        v.validate_cached_with(&format!("x{good}"), &Policy::new())
            .is_none()
    );
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let w = World::start().await;
    let v = w.builder().verified_cache_capacity(4).build().unwrap();
    for i in 0..40 {
        v.validate(&w.token(json!({"uti": format!("u{i}")})))
            .await
            .unwrap();
        assert!(v.verified_tokens() <= 4, "{}", v.verified_tokens());
    }
    let none = w.builder().verified_cache_capacity(0).build().unwrap();
    let t = w.token(json!({}));
    none.validate(&t).await.unwrap();
    assert_eq!(none.verified_tokens(), 0);
    assert!(none.validate_cached_with(&t, &Policy::new()).is_none());
}
