//! Issued tokens (signature, claims, roles), discovery documents, the endpoint-side token
//! cache, counters and the emulator's lifecycle.

use crate::common;

use std::time::Duration;

use common::{app_service, claims, get, imds, now, verify};
use entra_mi_emulator::{Emulator, EmulatorError, Endpoint, Identity, MAX_TOKEN_LIFETIME};
use reqwest::StatusCode;

const ARM: &str = "https://management.azure.com/";

#[tokio::test]
async fn tokens_verify_against_the_published_keys() {
    let ua = Identity::user_assigned("signer");
    let em = Emulator::builder()
        .tenant_id("11111111-2222-4333-8444-555555555555")
        .identity(ua.clone())
        .start()
        .await
        .unwrap();
    let before = now();
    let token = imds(&em, ARM, &format!("&client_id={}", ua.client_id))
        .await
        .token();
    let (header, c) = verify(&em, &token, ARM).await;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        header.kid.as_deref(),
        em.public_key_jwk()["kid"].as_str(),
        "kid names the published key"
    );

    assert_eq!(c["aud"], ARM);
    assert_eq!(
        c["iss"],
        "https://sts.windows.net/11111111-2222-4333-8444-555555555555/"
    );
    assert_eq!(c["iss"], em.issuer().as_str());
    assert_eq!(c["tid"], "11111111-2222-4333-8444-555555555555");
    assert_eq!(em.tenant_id(), "11111111-2222-4333-8444-555555555555");
    assert_eq!(c["oid"], ua.object_id.as_str());
    assert_eq!(c["sub"], ua.object_id.as_str());
    assert_eq!(c["appid"], ua.client_id.as_str());
    assert_eq!(c["azp"], ua.client_id.as_str());
    assert_eq!(c["appidacr"], "2");
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["xms_mirid"], ua.resource_id.as_str());
    assert!(c["uti"].as_str().is_some_and(|u| u.len() >= 16));
    assert!(c.get("roles").is_none(), "no roles configured");
    let iat = c["iat"].as_u64().unwrap();
    assert!(iat >= before && iat <= now());
    assert_eq!(c["nbf"].as_u64().unwrap(), iat);
    assert_eq!(c["exp"].as_u64().unwrap(), iat + 86_399);

    // Verification is real: another audience or a tampered payload fails.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["https://management.azure.com"]);
    let key =
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(em.public_key_jwk()).unwrap())
            .unwrap();
    assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_err());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let flipped = if parts[1].starts_with("ey") {
        "ez"
    } else {
        "ey"
    };
    parts[1].replace_range(0..2, flipped);
    validation.set_audience(&[ARM]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(parts.join("."), &key, &validation).is_err());
}

#[tokio::test]
async fn app_service_tokens_verify_too() {
    let em = Emulator::builder().start().await.unwrap();
    let token = app_service(&em, "api://my-api", "").await.token();
    let (_, c) = verify(&em, &token, "api://my-api").await;
    assert_eq!(c["oid"], em.system_identity().unwrap().object_id.as_str());
}

#[tokio::test]
async fn roles_go_to_the_configured_identity_and_exact_audience_only() {
    let ua = Identity::user_assigned("caller");
    let em = Emulator::builder()
        .identity(ua.clone())
        .roles(
            &ua.object_id,
            "api://orders",
            &["Orders.Read", "Orders.Write"],
        )
        .roles(
            &ua.object_id.to_uppercase(),
            "api://orders",
            &["Orders.Read", "Admin"],
        )
        .start()
        .await
        .unwrap();
    let sel = format!("&client_id={}", ua.client_id);
    let token = imds(&em, "api://orders", &sel).await.token();
    let (_, c) = verify(&em, &token, "api://orders").await;
    assert_eq!(
        c["roles"],
        serde_json::json!(["Orders.Read", "Orders.Write", "Admin"])
    );
    let c = claims(&app_service(&em, "api://orders", &sel).await.token());
    assert_eq!(c["roles"].as_array().unwrap().len(), 3);
    // Not for another audience string, not even with a trailing slash.
    let c = claims(&imds(&em, "api://orders/", &sel).await.token());
    assert!(c.get("roles").is_none(), "{c}");
    // Not for another identity.
    let c = claims(&imds(&em, "api://orders", "").await.token());
    assert!(c.get("roles").is_none(), "{c}");
}

#[tokio::test]
async fn jwks_and_discovery_documents() {
    let em = Emulator::builder().start().await.unwrap();
    let tid = em.tenant_id();
    assert_eq!(
        em.jwks_url(),
        format!("{}/{tid}/discovery/keys", em.base_url())
    );
    assert_eq!(
        em.openid_configuration_url(),
        format!("{}/{tid}/.well-known/openid-configuration", em.base_url())
    );
    let jwk = em.public_key_jwk();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    // Like Entra's keys: no `alg` member.
    assert!(jwk.get("alg").is_none(), "{jwk}");
    assert_eq!(jwk["e"], "AQAB");
    assert!(jwk["kid"].is_string() && jwk["n"].is_string());

    for url in [
        em.jwks_url(),
        format!("{}/common/discovery/keys", em.base_url()),
    ] {
        let r = get(&url, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        assert!(r.content_type().starts_with("application/json"));
        assert_eq!(r.json(), serde_json::json!({ "keys": [jwk] }), "{url}");
    }
    // v2 key sets name the issuer each key may sign for.
    let mut v2_jwk = jwk.clone();
    v2_jwk["issuer"] = format!("{}/{{tenantid}}/v2.0", em.base_url()).into();
    for url in [
        em.jwks_v2_url(),
        format!("{}/common/discovery/v2.0/keys", em.base_url()),
    ] {
        let r = get(&url, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{url}");
        assert_eq!(r.json(), serde_json::json!({ "keys": [v2_jwk] }), "{url}");
    }
    let r = get(
        &format!("{}/not-my-tenant/discovery/keys", em.base_url()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_tenant");

    let r = get(&em.openid_configuration_url(), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json();
    assert_eq!(doc["issuer"], em.issuer().as_str());
    assert_eq!(doc["jwks_uri"], em.jwks_url().as_str());
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{tid}/oauth2/v2.0/token", em.base_url()).as_str()
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    let r = get(
        &format!("{}/other/.well-known/openid-configuration", em.base_url()),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    assert_eq!(em.requests(Endpoint::Jwks), 5);
    assert_eq!(em.requests(Endpoint::OpenIdConfiguration), 2);
}

#[tokio::test]
async fn the_same_token_comes_back_until_half_life() {
    let ua = Identity::user_assigned("cached");
    let em = Emulator::builder()
        .identity(ua.clone())
        .start()
        .await
        .unwrap();
    let first = imds(&em, ARM, "").await;
    let second = imds(&em, ARM, "").await;
    assert_eq!(first.token(), second.token());
    // App Service on the same machine: same identity, same resource, same token.
    assert_eq!(app_service(&em, ARM, "").await.token(), first.token());
    // Other resource or identity: other token.
    assert_ne!(
        imds(&em, "https://vault.azure.net", "").await.token(),
        first.token()
    );
    let ua_token = imds(&em, ARM, &format!("&client_id={}", ua.client_id))
        .await
        .token();
    assert_ne!(ua_token, first.token());
    assert_eq!(
        imds(&em, ARM, &format!("&object_id={}", ua.object_id))
            .await
            .token(),
        ua_token
    );

    // A short lifetime: the same token within the first half, a new one after.
    em.set_token_lifetime(Duration::from_secs(2));
    let short = imds(&em, ARM, "").await.token();
    assert_ne!(short, first.token(), "a new lifetime forgets the cache");
    let c = claims(&short);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 2);
    assert_eq!(imds(&em, ARM, "").await.token(), short);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = imds(&em, ARM, "").await.token();
    assert_ne!(renewed, short);
}

#[tokio::test]
async fn expires_in_of_a_cached_token_is_what_is_left_of_it() {
    let em = Emulator::builder()
        .token_lifetime(Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let first = imds(&em, ARM, "").await.json();
    // `exp − now` at answer time: 10, or 9 when a second boundary passed since `iat`.
    let fresh: u64 = first["expires_in"].as_str().unwrap().parse().unwrap();
    assert!((9..=10).contains(&fresh), "{fresh}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let again = imds(&em, ARM, "").await.json();
    assert_eq!(again["access_token"], first["access_token"]);
    assert_eq!(again["expires_on"], first["expires_on"]);
    let left: u64 = again["expires_in"].as_str().unwrap().parse().unwrap();
    assert!((6..=8).contains(&left), "{left}");
}

#[tokio::test]
async fn caching_can_be_turned_off() {
    let em = Emulator::builder()
        .cache_tokens(false)
        .start()
        .await
        .unwrap();
    let a = imds(&em, ARM, "").await.token();
    let b = imds(&em, ARM, "").await.token();
    assert_ne!(a, b);
}

#[tokio::test]
async fn token_lifetime_is_at_least_one_second() {
    let em = Emulator::builder()
        .token_lifetime(Duration::ZERO)
        .start()
        .await
        .unwrap();
    let c = claims(&imds(&em, ARM, "").await.token());
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 1);
    em.set_token_lifetime(Duration::from_millis(300));
    let c = claims(&app_service(&em, ARM, "").await.token());
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 1);
    em.set_token_lifetime(Duration::from_secs(3600));
    let c = claims(&app_service(&em, ARM, "").await.token());
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        3600
    );
}

#[tokio::test]
async fn token_lifetime_beyond_ten_years_is_refused_and_never_overflows() {
    // The builder refuses a lifetime past the maximum with a typed error naming the setting.
    let too_long = Emulator::builder()
        .token_lifetime(Duration::from_secs(u64::MAX))
        .start()
        .await;
    match too_long {
        Err(
            ref e @ EmulatorError::TokenLifetimeOutOfRange {
                seconds,
                max_seconds,
            },
        ) => {
            assert_eq!(seconds, u64::MAX);
            assert_eq!(max_seconds, MAX_TOKEN_LIFETIME.as_secs());
            let shown = e.to_string();
            assert!(shown.contains("token_lifetime"), "{shown}");
            assert!(shown.contains("315360000"), "{shown}");
        }
        other => panic!("expected TokenLifetimeOutOfRange, got {other:?}"),
    }
    let just_over = Emulator::builder()
        .token_lifetime(MAX_TOKEN_LIFETIME + Duration::from_secs(1))
        .start()
        .await;
    assert!(
        matches!(
            just_over,
            Err(EmulatorError::TokenLifetimeOutOfRange { .. })
        ),
        "{just_over:?}"
    );

    // The maximum itself is fine.
    let em = Emulator::builder()
        .token_lifetime(MAX_TOKEN_LIFETIME)
        .start()
        .await
        .unwrap();
    let c = claims(&imds(&em, ARM, "").await.token());
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        MAX_TOKEN_LIFETIME.as_secs()
    );
    // On a running emulator the longest lifetime is lowered to the maximum: no overflow.
    em.set_token_lifetime(Duration::MAX);
    let reply = app_service(&em, ARM, "").await;
    let c = claims(&reply.token());
    assert_eq!(
        c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
        MAX_TOKEN_LIFETIME.as_secs()
    );
}

#[tokio::test]
async fn counters_count_every_request_per_endpoint() {
    let em = Emulator::builder().start().await.unwrap();
    imds(&em, ARM, "").await;
    get(&em.imds_token_url(), &[]).await; // rejected probe
    app_service(&em, ARM, "").await;
    get(&em.app_service_endpoint(), &[]).await; // rejected
    get(&em.app_service_endpoint(), &[]).await; // rejected
    get(&em.jwks_url(), &[]).await;
    let unrouted = get(&format!("{}/nothing/here", em.base_url()), &[]).await;
    assert_eq!(unrouted.status, StatusCode::NOT_FOUND);
    assert_eq!(em.requests(Endpoint::Imds), 2);
    assert_eq!(em.requests(Endpoint::AppService), 3);
    assert_eq!(em.requests(Endpoint::Jwks), 1);
    assert_eq!(em.requests(Endpoint::OpenIdConfiguration), 0);
    em.reset_counts();
    for ep in [
        Endpoint::Imds,
        Endpoint::AppService,
        Endpoint::Jwks,
        Endpoint::OpenIdConfiguration,
    ] {
        assert_eq!(em.requests(ep), 0);
    }
    imds(&em, ARM, "").await;
    assert_eq!(em.requests(Endpoint::Imds), 1);
}

#[tokio::test]
async fn addresses_and_environment_values() {
    let em = Emulator::builder().start().await.unwrap();
    let addr = em.addr();
    assert!(addr.ip().is_loopback());
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_eq!(em.base_url(), format!("http://127.0.0.1:{}", addr.port()));
    assert_eq!(em.imds_host(), em.base_url());
    assert_eq!(
        em.imds_token_url(),
        format!("{}/metadata/identity/oauth2/token", em.base_url())
    );
    assert_eq!(
        em.app_service_endpoint(),
        format!("{}/msi/token", em.base_url())
    );
    assert!(format!("{em:?}").contains(&em.base_url()));
}

#[tokio::test]
async fn identities_are_reported() {
    let a = Identity::user_assigned("a");
    let b = Identity::user_assigned("b");
    assert_ne!(a.client_id, b.client_id);
    assert!(a.resource_id.ends_with(
        "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a"
    ));
    assert!(a.resource_id.starts_with("/subscriptions/"));
    assert_eq!(a.display_name, "a");
    let sys = Identity::system_assigned();
    let em = Emulator::builder()
        .system_assigned(Some(sys.clone()))
        .identity(a.clone())
        .identity(b.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(em.system_identity(), Some(sys.clone()));
    assert_eq!(em.identities(), vec![a, b]);
    let c = claims(&imds(&em, ARM, "").await.token());
    assert_eq!(c["oid"], sys.object_id.as_str());
    assert_eq!(c["xms_mirid"], sys.resource_id.as_str());
}

#[tokio::test]
async fn clones_share_one_server_and_its_state() {
    let em = Emulator::builder().start().await.unwrap();
    let clone = em.clone();
    imds(&clone, ARM, "").await;
    assert_eq!(em.requests(Endpoint::Imds), 1);
    clone.set_identity_header("rotated");
    assert_eq!(em.identity_header(), "rotated");
    drop(clone);
    assert_eq!(
        imds(&em, ARM, "").await.status,
        StatusCode::OK,
        "still serving"
    );
}

async fn refuses_connections(addr: std::net::SocketAddr) -> bool {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let em = Emulator::builder().start().await.unwrap();
    let addr = em.addr();
    imds(&em, ARM, "").await;
    em.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let em = Emulator::builder().start().await.unwrap();
    let addr = em.addr();
    let clone = em.clone();
    drop(em);
    assert_eq!(imds(&clone, ARM, "").await.status, StatusCode::OK);
    drop(clone);
    assert!(refuses_connections(addr).await);
}

#[tokio::test]
async fn emulators_are_independent() {
    let a = Emulator::builder().start().await.unwrap();
    let b = Emulator::builder().start().await.unwrap();
    assert_ne!(a.addr(), b.addr());
    imds(&a, ARM, "").await;
    assert_eq!(a.requests(Endpoint::Imds), 1);
    assert_eq!(b.requests(Endpoint::Imds), 0);
    assert_ne!(
        a.system_identity().unwrap().object_id,
        b.system_identity().unwrap().object_id
    );
}
