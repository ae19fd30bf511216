//! No error, `Debug` or answer of this crate holds a token or its signature.

use entra_mi_validate::{Check, Policy, TokenValidator};
use serde_json::json;

use crate::support::{ForeignKey, World, jwt};

/// Fails if `text` holds the token, its signature, or a long piece of either.
fn assert_clean(text: &str, token: &str) {
    let signature = token.rsplit('.').next().unwrap_or_default();
    assert!(
        !token.is_empty() && !text.contains(token),
        "the token leaked: {text}"
    );
    if signature.len() >= 16 {
        assert!(!text.contains(signature), "the signature leaked: {text}");
        for window in signature.as_bytes().windows(16).step_by(8) {
            let piece = std::str::from_utf8(window).unwrap();
            assert!(
                !text.contains(piece),
                "a piece of the signature leaked: {text}"
            );
        }
    }
}

#[tokio::test]
async fn errors_never_hold_the_token() {
    let w = World::start().await;
    let v = w.validator();
    let foreign = ForeignKey::new();
    let canary = "CANARY-SECRET-CANARY";
    let now = w.clock.unix_secs();
    let real_kid = w.em.signing_key_ids()[0].clone();
    let tokens = vec![
        w.token(json!({"exp": now - 1000, "canary": canary})),
        w.token(json!({"aud": "x", "canary": canary})),
        w.token(json!({"tid": "other", "canary": canary})),
        jwt(
            &json!({"alg": "RS256", "kid": real_kid}),
            &w.claims(),
            |m| foreign.sign(m),
        ),
        // The token itself as the kid and the alg: too long to be quoted.
        {
            let inner = w.token(json!({}));
            jwt(&json!({"alg": inner, "kid": inner}), &w.claims(), |m| {
                foreign.sign(m)
            })
        },
        {
            let inner = w.token(json!({}));
            jwt(&json!({"alg": "RS256", "kid": inner}), &w.claims(), |m| {
                foreign.sign(m)
            })
        },
        format!("{}.{canary}", w.token(json!({}))),
        format!("{canary}{}", "x".repeat(20_000)),
        "eyJhbGciOiJub25lIn0.eyJjYW5hcnkiOiJDQU5BUlktU0VDUkVULUNBTkFSWSJ9.".to_owned(),
    ];
    let policy = Policy::new().require_roles(["Orders.Write"]);
    for token in &tokens {
        let e = v.validate_with(token, &policy).await.unwrap_err();
        for text in [e.to_string(), format!("{e:?}"), e.detail().to_owned()] {
            assert_clean(&text, token);
            assert!(!text.contains(canary), "{text}");
        }
    }
    // A policy refusal of a valid token.
    let good = w.token(json!({}));
    let e = v.validate_with(&good, &policy).await.unwrap_err();
    assert_eq!(e.check(), Check::Role);
    assert_clean(&e.to_string(), &good);
    assert_clean(&format!("{e:?}"), &good);
    // Debug of the validator (which remembers the token) and of the claims.
    let claims = v.validate(&good).await.unwrap();
    assert_clean(&format!("{v:?}"), &good);
    assert_clean(&format!("{claims:?}"), &good);
    assert_clean(&format!("{:?}", TokenValidator::builder()), &good);
}
