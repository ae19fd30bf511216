//! Discovery, key rotation, re-fetch limits, background refresh, and fetch failures.

use std::time::Duration;

use entra_mi_emulator::{Endpoint, Fault};
use entra_mi_validate::{BuildError, Check, TokenValidator};
use serde_json::json;

use crate::support::{AUDIENCE, ForeignKey, World, jwt};

/// Validates `token` (which may start a background refresh) until `f` holds; bounded.
async fn until(what: &str, v: &TokenValidator, token: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        v.validate(token).await.unwrap();
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn keys_are_fetched_lazily_once() {
    let w = World::start().await;
    let v = w.validator();
    assert_eq!(
        w.em.requests(Endpoint::Jwks),
        0,
        "nothing before the first token"
    );
    for _ in 0..3 {
        v.validate(&w.token(json!({}))).await.unwrap();
    }
    assert_eq!(
        w.em.requests(Endpoint::OpenIdConfiguration),
        2,
        "v2 and v1 documents"
    );
    assert_eq!(w.em.requests(Endpoint::Jwks), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_share_one_fetch() {
    let w = World::start().await;
    // Slow the first document down so every request arrives while it is in flight.
    w.em.push_fault(
        Endpoint::OpenIdConfiguration,
        Fault::Delay(Duration::from_millis(300)),
    );
    let v = w.validator();
    let tokens: Vec<String> = (0..16)
        .map(|i| w.token(json!({"uti": format!("t{i}")})))
        .collect();
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let v = v.clone();
            tokio::spawn(async move { v.validate(&t).await.map(drop) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(w.em.requests(Endpoint::OpenIdConfiguration), 2);
    assert_eq!(w.em.requests(Endpoint::Jwks), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_share_one_failure() {
    let w = World::start().await;
    w.em.push_fault(
        Endpoint::OpenIdConfiguration,
        Fault::Delay(Duration::from_millis(300)),
    );
    w.em.push_fault(
        Endpoint::OpenIdConfiguration,
        Fault::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    );
    // The delay and the failure hit the first document only.
    w.em.reset_counts();
    let v = w.validator();
    let token = w.token(json!({}));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (v, t) = (v.clone(), token.clone());
            tokio::spawn(async move { v.validate(&t).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    // The first fetch was delayed and answered (then its v1 document failed); everyone who
    // waited for it got its answer, and no one fetched again.
    let failed = outcomes.iter().filter(|r| r.is_err()).count();
    assert_eq!(failed, 8, "every caller got the shared failure");
    for r in outcomes.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.check(), Check::Discovery, "{r}");
    }
    assert_eq!(
        w.em.requests(Endpoint::OpenIdConfiguration),
        2,
        "one discovery (its two documents) for all"
    );
}

#[tokio::test]
async fn a_rotation_is_picked_up_with_one_refetch_and_a_burst_of_unknown_kids_costs_nothing() {
    let w = World::start().await;
    let v = w.validator();
    v.validate(&w.token(json!({}))).await.unwrap();
    assert_eq!(w.em.requests(Endpoint::Jwks), 1);
    // Signed with the old key, and not seen before the rotation (so not remembered).
    let old_unseen = w.token(json!({"uti": "signed-before-the-rotation"}));

    let new = w.em.rotate_signing_key().await.unwrap();
    let rotated = w.token(json!({}));
    assert_eq!(crate::support::kid(&rotated), new);
    v.validate(&rotated).await.unwrap();
    assert_eq!(
        w.em.requests(Endpoint::Jwks),
        2,
        "one re-fetch for the new key"
    );

    // A burst of made-up kids right after: no re-fetch for 5 minutes.
    let foreign = ForeignKey::new();
    for i in 0..25 {
        let t = jwt(
            &json!({"alg": "RS256", "kid": format!("made-up-{i}")}),
            &w.claims(),
            |m| foreign.sign(m),
        );
        assert_eq!(v.validate(&t).await.unwrap_err().check(), Check::Key);
    }
    assert_eq!(w.em.requests(Endpoint::Jwks), 2);

    // After the interval, one more re-fetch for an unknown kid, then quiet again.
    w.clock.advance(Duration::from_secs(301));
    for i in 0..5 {
        let t = jwt(
            &json!({"alg": "RS256", "kid": format!("later-{i}")}),
            &w.claims(),
            |m| foreign.sign(m),
        );
        assert_eq!(v.validate(&t).await.unwrap_err().check(), Check::Key);
    }
    assert_eq!(w.em.requests(Endpoint::Jwks), 3);
    // The old key is still published: its tokens still verify.
    assert_eq!(w.em.signing_key_ids().len(), 2);
    v.validate(&old_unseen).await.unwrap();
    assert_eq!(w.em.requests(Endpoint::Jwks), 3, "the old key was kept");
}

#[tokio::test]
async fn only_rs256_signing_keys_are_used_and_entras_keys_carry_no_alg() {
    let w = World::start().await;
    let jwk = w.em.public_key_jwk();
    assert!(
        jwk.get("alg").is_none(),
        "the emulator publishes keys as Entra does: {jwk}"
    );
    let with = |changes: serde_json::Value| crate::support::merge(jwk.clone(), changes);
    // Another usable key, so that a key set whose entry for the token's kid is skipped is
    // still a key set.
    let other = with(json!({"kid": "another-key"}));
    let cases = [
        ("no alg (as Entra)", json!([jwk]), None),
        ("alg RS256", json!([with(json!({"alg": "RS256"}))]), None),
        ("use sig", json!([with(json!({"use": "sig"}))]), None),
        (
            "alg RS384",
            json!([with(json!({"alg": "RS384"})), other]),
            Some(Check::Key),
        ),
        (
            "alg none",
            json!([with(json!({"alg": "none"})), other]),
            Some(Check::Key),
        ),
        (
            "use enc",
            json!([with(json!({"use": "enc"})), other]),
            Some(Check::Key),
        ),
        (
            "kty EC",
            json!([with(json!({"kty": "EC"})), other]),
            Some(Check::Key),
        ),
        (
            "issuer not a string",
            json!([with(json!({"issuer": 5})), other]),
            Some(Check::Key),
        ),
        (
            "n not base64url",
            json!([with(json!({"n": "%%%"})), other]),
            Some(Check::Key),
        ),
        (
            "no e",
            json!([with(json!({"e": null})), other]),
            Some(Check::Key),
        ),
    ];
    for (name, keys, want) in cases {
        let v = w.validator();
        // The same key set for the first fetch and for the one re-fetch a missing kid makes.
        let fetches = if want.is_some() { 2 } else { 1 };
        w.em.reset_counts();
        for _ in 0..fetches {
            w.em.push_fault(
                Endpoint::Jwks,
                Fault::Body {
                    status: 200,
                    content_type: "application/json".into(),
                    body: json!({ "keys": keys }).to_string().into_bytes(),
                },
            );
        }
        let got = v
            .validate(&w.token(json!({})))
            .await
            .map(drop)
            .map_err(|e| e.check());
        assert_eq!(got, want.map_or(Ok(()), Err), "{name}");
        assert_eq!(w.em.requests(Endpoint::Jwks), fetches, "{name}");
    }
}

#[tokio::test]
async fn a_withdrawn_key_takes_its_remembered_tokens_with_it() {
    let w = World::start().await;
    let v = w.validator();
    let old_token = w.token(json!({}));
    v.validate(&old_token).await.unwrap();
    assert_eq!(v.verified_tokens(), 1);
    w.em.rotate_signing_key().await.unwrap();
    w.em.retire_old_signing_keys();
    v.refresh_keys().await.unwrap();
    assert_eq!(
        v.verified_tokens(),
        0,
        "tokens of the withdrawn key are forgotten"
    );
    assert_eq!(
        v.validate(&old_token).await.unwrap_err().check(),
        Check::Key
    );
    v.validate(&w.token(json!({}))).await.unwrap();
}

#[tokio::test]
async fn keys_refresh_in_the_background_and_stale_keys_stay_when_it_fails() {
    let w = World::start().await;
    let v = w
        .builder()
        .key_refresh_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let token = w.token(json!({"exp": w.clock.unix_secs() + 86_400}));
    v.validate(&token).await.unwrap();
    assert_eq!(w.em.requests(Endpoint::Jwks), 1);

    // A day later the refresh is due; a request (even a remembered token) starts it in the
    // background and is answered at once.
    w.clock.advance(Duration::from_secs(3601));
    until("a background refresh", &v, &token, || {
        w.em.requests(Endpoint::Jwks) == 2
    })
    .await;

    // The next refresh fails: the keys in hand stay in use.
    w.em.push_fault(Endpoint::OpenIdConfiguration, Fault::Html);
    w.clock.advance(Duration::from_secs(3601));
    let docs = w.em.requests(Endpoint::OpenIdConfiguration);
    until("a failed refresh", &v, &token, || {
        w.em.requests(Endpoint::OpenIdConfiguration) == docs + 1
    })
    .await;
    v.forget_verified_tokens();
    v.validate(&w.token(json!({"uti": "fresh", "exp": w.clock.unix_secs() + 600})))
        .await
        .unwrap();
    assert_eq!(
        w.em.requests(Endpoint::Jwks),
        2,
        "no key set fetched by the failed refresh"
    );
    // It is tried again after the re-fetch interval.
    w.clock.advance(Duration::from_secs(301));
    until("the retried refresh", &v, &token, || {
        w.em.requests(Endpoint::Jwks) == 3
    })
    .await;
}

async fn discovery_error(w: &World, v: &TokenValidator) -> String {
    let e = v.validate(&w.token(json!({}))).await.unwrap_err();
    assert_eq!(e.check(), Check::Discovery, "{e}");
    e.to_string()
}

#[tokio::test]
async fn broken_discovery_answers_are_discovery_errors() {
    let w = World::start().await;
    let cases: Vec<(Endpoint, Fault, &str)> = vec![
        (
            Endpoint::OpenIdConfiguration,
            Fault::Status {
                status: 404,
                retry_after: None,
                body: None,
            },
            "HTTP 404",
        ),
        (
            Endpoint::OpenIdConfiguration,
            Fault::Html,
            "not a JSON discovery document",
        ),
        (
            Endpoint::OpenIdConfiguration,
            Fault::TruncatedJson,
            "not a JSON discovery document",
        ),
        (Endpoint::OpenIdConfiguration, Fault::CloseConnection, "GET"),
        (
            Endpoint::OpenIdConfiguration,
            Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: br#"{"issuer": 5}"#.to_vec(),
            },
            "no `issuer` string",
        ),
        (
            Endpoint::OpenIdConfiguration,
            Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: br#"{"issuer": "https://x/", "jwks_uri": "http://keys.example/keys"}"#
                    .to_vec(),
            },
            "plain http is accepted only for loopback hosts",
        ),
        (
            Endpoint::Jwks,
            Fault::Oversized(2 << 20),
            "over 1048576 bytes",
        ),
        (
            Endpoint::Jwks,
            Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: br#"{"keys": [{"kty": "EC", "kid": "a"}]}"#.to_vec(),
            },
            "no usable RS256 signing key",
        ),
        (
            Endpoint::Jwks,
            Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: br#"{"keys": "no"}"#.to_vec(),
            },
            "not a JSON key set",
        ),
    ];
    for (ep, fault, expect) in cases {
        let v = w.validator();
        w.em.push_fault(ep, fault.clone());
        let e = discovery_error(&w, &v).await;
        assert!(e.contains(expect), "{fault:?}: {e}");
        // A second later the next request fetches again, and succeeds.
        w.clock.advance(Duration::from_secs(1));
        v.validate(&w.token(json!({}))).await.unwrap();
    }
}

#[tokio::test]
async fn a_failed_first_fetch_stands_for_a_while_doubling_then_is_tried_again() {
    let w = World::start().await;
    let v = w.validator();
    let fail = || {
        w.em.push_fault(
            Endpoint::OpenIdConfiguration,
            Fault::Status {
                status: 429,
                retry_after: None,
                body: None,
            },
        )
    };
    fail();
    fail();
    w.em.reset_counts();
    let docs = || w.em.requests(Endpoint::OpenIdConfiguration);
    // The first failure: its error answers every request for a second, without a fetch.
    for _ in 0..20 {
        let e = discovery_error(&w, &v).await;
        assert!(e.contains("HTTP 429"), "{e}");
    }
    assert_eq!(docs(), 1);
    w.clock.advance(Duration::from_millis(999));
    discovery_error(&w, &v).await;
    assert_eq!(docs(), 1);
    // Then one fetch, failing again: now two seconds.
    w.clock.advance(Duration::from_millis(1));
    discovery_error(&w, &v).await;
    assert_eq!(docs(), 2);
    w.clock.advance(Duration::from_secs(1));
    discovery_error(&w, &v).await;
    assert_eq!(docs(), 2);
    w.clock.advance(Duration::from_secs(1));
    v.validate(&w.token(json!({}))).await.unwrap();
    assert_eq!(docs(), 4, "the failed v2 document, then both documents");

    // An explicit refresh does not wait for the back-off.
    let v = w.validator();
    fail();
    discovery_error(&w, &v).await;
    v.refresh_keys().await.unwrap();
    v.validate(&w.token(json!({}))).await.unwrap();
    // And reports a failure once there are keys.
    fail();
    let e = v.refresh_keys().await.unwrap_err();
    assert_eq!(e.check(), Check::Discovery, "{e}");
    v.validate(&w.token(json!({"uti": "kept"}))).await.unwrap();
}

#[tokio::test]
async fn a_hanging_authority_times_out() {
    let w = World::start().await;
    let v = w
        .builder()
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    w.em.push_fault(Endpoint::OpenIdConfiguration, Fault::Hang);
    let e = discovery_error(&w, &v).await;
    assert!(e.contains("no complete answer within 0.3 s"), "{e}");
}

#[tokio::test]
async fn an_unreachable_authority_is_a_discovery_error() {
    let w = World::start().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let v = TokenValidator::builder()
        .authority(format!("http://{closed}"))
        .audience(AUDIENCE)
        .tenant(w.tid())
        .build()
        .unwrap();
    let e = discovery_error(&w, &v).await;
    assert!(e.contains("cannot connect"), "{e}");
}

#[test]
fn authorities_are_https_or_loopback() {
    let build = |a: &str| {
        TokenValidator::builder()
            .authority(a)
            .audience("a")
            .any_tenant()
            .build()
    };
    for ok in [
        "https://login.microsoftonline.com",
        "https://login.microsoftonline.us/",
        "http://127.0.0.1:8080",
        "http://127.8.9.10",
        "http://[::1]:1",
        "http://localhost:3000",
    ] {
        assert!(build(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://login.microsoftonline.com",
        "http://10.0.0.1",
        "http://localhost.example.com",
        "ftp://x",
        "not a url",
        "https://x?tenant=y",
        "https://user@x",
    ] {
        assert!(
            matches!(build(bad), Err(BuildError::Authority { .. })),
            "{bad}"
        );
    }
    assert!(matches!(
        TokenValidator::builder().audience("a").build(),
        Err(BuildError::TenantChoice)
    ));
    assert!(matches!(
        TokenValidator::builder()
            .audience("a")
            .tenant("t")
            .any_tenant()
            .build(),
        Err(BuildError::TenantChoice)
    ));
    assert!(matches!(
        TokenValidator::builder().tenant("t").build(),
        Err(BuildError::NoAudience)
    ));
    assert!(matches!(
        TokenValidator::builder()
            .audience("a")
            .tenant("t/../x")
            .build(),
        Err(BuildError::Tenant(_))
    ));
}
