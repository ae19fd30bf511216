//! A table of crafted tokens, each with the check it must fail (or none).

use entra_mi_validate::{Check, MAX_TOKEN_LEN, Policy, TokenValidator};
use serde_json::json;

use crate::support::{
    AUDIENCE, ForeignKey, OTHER_TENANT, ROLE, World, es256, hs256, jwt, kid, with_payload,
};

/// Every token of the table with what it must give.
async fn rows(w: &World) -> Vec<(&'static str, String, Option<Check>)> {
    let now = w.clock.unix_secs();
    let real_kid = w.em.signing_key_ids()[0].clone();
    let good = w.token(json!({}));
    let foreign = ForeignKey::new();
    let header = |alg: &str| json!({"typ": "JWT", "alg": alg, "kid": real_kid});
    let tenant_key = w.em.add_tenant_signing_key(OTHER_TENANT).await.unwrap();
    vec![
        ("valid", good.clone(), None),
        ("a real managed-identity token", w.mi_token(AUDIENCE).await, None),
        ("wrong audience", w.token(json!({"aud": "api://billing"})), Some(Check::Audience)),
        (
            "audience differing only in a trailing slash",
            w.token(json!({"aud": "api://orders/"})),
            Some(Check::Audience),
        ),
        // v2 key sets give every key the issuer `<authority>/{tenantid}/v2.0`: a token whose
        // issuer names another tenant than its `tid` is refused by the key rule first.
        (
            "issuer of another tenant",
            w.token(json!({"iss": format!("https://sts.windows.net/{OTHER_TENANT}/")})),
            Some(Check::Key),
        ),
        (
            "issuer on another host",
            w.token(json!({"iss": format!("https://sts.windows.net.example/{}/", w.tid())})),
            Some(Check::Issuer),
        ),
        (
            "issuer without the trailing slash",
            w.token(json!({"iss": format!("https://sts.windows.net/{}", w.tid())})),
            Some(Check::Issuer),
        ),
        (
            "tid outside the list",
            w.token(json!({"tid": OTHER_TENANT, "iss": format!("https://sts.windows.net/{OTHER_TENANT}/")})),
            Some(Check::Tenant),
        ),
        ("no tid", w.token(json!({"tid": null})), Some(Check::Key)),
        ("no iss", w.token(json!({"iss": null})), Some(Check::Key)),
        (
            "v2 issuer of the tenant",
            w.token(json!({"iss": w.em.issuer_v2(), "ver": "2.0"})),
            None,
        ),
        ("expired beyond the skew", w.token(json!({"exp": now - 301})), Some(Check::Expired)),
        ("expired at the skew's edge", w.token(json!({"exp": now - 300})), Some(Check::Expired)),
        ("expired within the skew", w.token(json!({"exp": now - 299})), None),
        ("nbf ahead beyond the skew", w.token(json!({"nbf": now + 301})), Some(Check::NotYetValid)),
        ("nbf ahead within the skew", w.token(json!({"nbf": now + 300})), None),
        ("missing exp", w.token(json!({"exp": null})), Some(Check::Expired)),
        ("exp as a string", w.token(json!({"exp": (now + 60).to_string()})), Some(Check::Malformed)),
        ("aud as an array", w.token(json!({"aud": [AUDIENCE]})), Some(Check::Malformed)),
        ("roles not strings", w.token(json!({"roles": [1]})), Some(Check::Malformed)),
        ("alg none", jwt(&header("none"), &w.claims(), |_| Vec::new()), Some(Check::Algorithm)),
        (
            "HS256 keyed with the public key",
            jwt(&header("HS256"), &w.claims(), |m| {
                hs256(w.em.public_key_jwk().to_string().as_bytes(), m)
            }),
            Some(Check::Algorithm),
        ),
        ("ES256", jwt(&header("ES256"), &w.claims(), es256), Some(Check::Algorithm)),
        ("RS512", jwt(&header("RS512"), &w.claims(), |m| foreign.sign(m)), Some(Check::Algorithm)),
        ("no alg", jwt(&json!({"kid": real_kid}), &w.claims(), |m| foreign.sign(m)), Some(Check::Algorithm)),
        (
            "unknown kid",
            jwt(&json!({"alg": "RS256", "kid": "not-a-published-key"}), &w.claims(), |m| foreign.sign(m)),
            Some(Check::Key),
        ),
        ("no kid", jwt(&json!({"alg": "RS256"}), &w.claims(), |m| foreign.sign(m)), Some(Check::Key)),
        (
            "the real kid, another key's signature",
            jwt(&header("RS256"), &w.claims(), |m| foreign.sign(m)),
            Some(Check::Signature),
        ),
        (
            "tampered payload",
            with_payload(&good, &crate::support::merge(w.claims(), json!({"roles": [ROLE, "Orders.Admin"]}))),
            Some(Check::Signature),
        ),
        ("empty signature", format!("{}.", good.rsplit_once('.').unwrap().0), Some(Check::Signature)),
        (
            "crit header",
            jwt(&json!({"alg": "RS256", "kid": real_kid, "crit": ["exp"]}), &w.claims(), |m| foreign.sign(m)),
            Some(Check::Malformed),
        ),
        (
            "empty crit header",
            jwt(&json!({"alg": "RS256", "kid": real_kid, "crit": []}), &w.claims(), |m| foreign.sign(m)),
            Some(Check::Malformed),
        ),
        (
            "a key whose issuer names another tenant",
            w.em.sign_token_with_key(&tenant_key, &w.claims()).unwrap(),
            Some(Check::Key),
        ),
        (
            "order: bad alg and wrong audience",
            jwt(&header("HS256"), &crate::support::merge(w.claims(), json!({"aud": "x"})), |m| hs256(b"k", m)),
            Some(Check::Algorithm),
        ),
        (
            "order: crit and alg none",
            jwt(&json!({"alg": "none", "crit": ["b64"]}), &w.claims(), |_| Vec::new()),
            Some(Check::Malformed),
        ),
        (
            "order: unknown kid and expired",
            jwt(&json!({"alg": "RS256", "kid": "nope"}), &crate::support::merge(w.claims(), json!({"exp": 1})), |m| foreign.sign(m)),
            Some(Check::Key),
        ),
        (
            "order: wrong tenant and wrong audience",
            w.token(json!({
                "tid": OTHER_TENANT,
                "iss": format!("https://sts.windows.net/{OTHER_TENANT}/"),
                "aud": "x"
            })),
            Some(Check::Tenant),
        ),
        (
            // Claims are never read before the signature holds: a forged token with every
            // claim wrong is a signature failure.
            "order: bad signature, expired and wrong audience",
            jwt(
                &header("RS256"),
                &crate::support::merge(
                    w.claims(),
                    json!({"exp": 1, "aud": "x", "nbf": 4_000_000_000u64}),
                ),
                |m| foreign.sign(m),
            ),
            Some(Check::Signature),
        ),
        ("order: expired and missing role", w.token(json!({"exp": 1, "roles": null})), Some(Check::Expired)),
        ("garbage", "garbage".to_owned(), Some(Check::Malformed)),
        ("empty", String::new(), Some(Check::Malformed)),
        ("two parts", "eyJhbGciOiJSUzI1NiJ9.e30".to_owned(), Some(Check::Malformed)),
        ("four parts", format!("{good}.x"), Some(Check::Malformed)),
        ("not base64url", "!!!.###.$$$".to_owned(), Some(Check::Malformed)),
        ("padded base64", format!("{}=.{}", good.split('.').next().unwrap(), &good[good.find('.').unwrap() + 1..]), Some(Check::Malformed)),
        (
            "non-JSON header",
            format!("{}.{}", crate::support::b64(b"not json"), &good[good.find('.').unwrap() + 1..]),
            Some(Check::Malformed),
        ),
        (
            "array header",
            format!("{}.{}", crate::support::b64(b"[\"RS256\"]"), &good[good.find('.').unwrap() + 1..]),
            Some(Check::Malformed),
        ),
        (
            "non-JSON payload",
            with_payload(&good, &json!("a string, not an object")),
            Some(Check::Malformed),
        ),
        ("oversized", format!("{good}{}", "A".repeat(MAX_TOKEN_LEN)), Some(Check::Malformed)),
        ("dots only", "..".to_owned(), Some(Check::Malformed)),
        ("binary", "\u{0}\u{1}.\u{2}.\u{3}".to_owned(), Some(Check::Malformed)),
        ("same kid as the real key", { assert_eq!(kid(&good), w.em.signing_key_ids()[0]); good.clone() }, None),
    ]
}

#[tokio::test]
async fn every_crafted_token_fails_the_check_it_should() {
    let w = World::start().await;
    let v = w.builder().policy(Policy::new()).build().unwrap();
    let mut failures = Vec::new();
    for (name, token, want) in rows(&w).await {
        let got = v.validate(&token).await.map(drop).map_err(|e| e.check());
        let want_result = want.map_or(Ok(()), Err);
        if got != want_result {
            failures.push(format!("{name}: want {want_result:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn roles_missing_and_present() {
    let w = World::start().await;
    let v = w
        .builder()
        .policy(Policy::new().require_roles([ROLE]))
        .build()
        .unwrap();
    assert!(v.validate(&w.token(json!({}))).await.is_ok());
    let e = v
        .validate(&w.token(json!({"roles": null})))
        .await
        .unwrap_err();
    assert_eq!(e.check(), Check::Role);
    assert!(e.check().is_policy());
    let e = v
        .validate(&w.token(json!({"roles": ["Orders.Write"]})))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "role: the token does not hold the app role \"Orders.Read\""
    );
    // A real managed-identity token carries the role the emulator granted.
    assert!(v.validate(&w.mi_token(AUDIENCE).await).await.is_ok());
}

#[tokio::test]
async fn issuer_tenant_must_be_the_token_tenant() {
    let w = World::start().await;
    let other_iss = format!("https://sts.windows.net/{OTHER_TENANT}/");
    let two = |w: &World| {
        TokenValidator::builder()
            .authority(w.em.base_url())
            .audience(AUDIENCE)
            .tenant(w.tid())
            .tenant(OTHER_TENANT)
            .manual_clock(w.clock.clone())
            .build()
            .unwrap()
    };
    // Two accepted tenants: each one's issuer is accepted, but only for its own `tid`; with
    // v2 keys (an `issuer` on every key) the key rule refuses the mix first.
    let v = two(&w);
    let e = v
        .validate(&w.token(json!({"iss": other_iss})))
        .await
        .unwrap_err();
    assert_eq!(e.check(), Check::Key, "{e}");
    assert!(
        v.validate(&w.token(json!({"iss": other_iss, "tid": OTHER_TENANT})))
            .await
            .is_ok()
    );
    // Keys without an `issuer` member (a v1 key set): the claims check refuses it.
    let v = two(&w);
    for tenant in [w.tid(), OTHER_TENANT.to_owned()] {
        let v2_issuer = format!("{}/{tenant}/v2.0", w.em.base_url());
        let doc = serde_json::json!({"issuer": v2_issuer, "jwks_uri": w.em.jwks_url()});
        w.em.push_fault(
            entra_mi_emulator::Endpoint::OpenIdConfiguration,
            entra_mi_emulator::Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: doc.to_string().into_bytes(),
            },
        );
        w.em.push_fault(
            entra_mi_emulator::Endpoint::OpenIdConfiguration,
            entra_mi_emulator::Fault::Body {
                status: 200,
                content_type: "application/json".into(),
                body: serde_json::json!({"issuer": format!("https://sts.windows.net/{tenant}/")})
                    .to_string()
                    .into_bytes(),
            },
        );
    }
    let e = v
        .validate(&w.token(json!({"iss": other_iss})))
        .await
        .unwrap_err();
    assert_eq!(e.check(), Check::Issuer, "{e}");
    assert!(e.detail().contains("is not of the token's tenant"), "{e}");
    // Any tenant: the templates are resolved against `tid`.
    let any = TokenValidator::builder()
        .authority(w.em.base_url())
        .audience(AUDIENCE)
        .any_tenant()
        .manual_clock(w.clock.clone())
        .build()
        .unwrap();
    assert!(any.validate(&w.token(json!({}))).await.is_ok());
    let stranger = "0f0f0f0f-0000-4000-8000-000000000000";
    let e = any
        .validate(&w.token(json!({"iss": format!("https://sts.windows.net/{stranger}/")})))
        .await
        .unwrap_err();
    assert_eq!(e.check(), Check::Key, "{e}");
    let e = any
        .validate(&w.token(json!({"iss": format!("https://sts.windows.net.example/{}/", w.tid())})))
        .await
        .unwrap_err();
    assert_eq!(e.check(), Check::Issuer, "{e}");
    assert!(
        any.validate(&w.token(
            json!({"tid": stranger, "iss": format!("https://sts.windows.net/{stranger}/")})
        ))
        .await
        .is_ok()
    );
    // The v2 issuer form of the same tenant, through the template.
    assert!(
        any.validate(&w.token(
            json!({"tid": stranger, "iss": format!("{}/{stranger}/v2.0", w.em.base_url())})
        ))
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn v2_tokens_carry_the_client_id_as_audience() {
    let orders_id = std::sync::OnceLock::new();
    let w = World::with(|b| b.v2_tokens_for(AUDIENCE)).await;
    let token = w.mi_token(AUDIENCE).await;
    let v1_only = w.validator();
    let e = v1_only.validate(&token).await.unwrap_err();
    assert_eq!(e.check(), Check::Audience);
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    orders_id
        .set(claims["aud"].as_str().unwrap().to_owned())
        .unwrap();
    let both = w
        .builder()
        .audience(orders_id.get().unwrap())
        .build()
        .unwrap();
    let c = both.validate(&token).await.unwrap();
    assert_eq!(c.version(), Some("2.0"));
    assert_eq!(c.issuer(), Some(w.em.issuer_v2().as_str()));
    assert_eq!(c.app_id(), Some(w.caller.client_id.as_str()));
    assert!(c.has_role(ROLE));
}
