//! v1 and v2 discovery documents for every tenant form, v2 tokens, key rotation and tenant
//! keys, and signing of arbitrary claims.

use crate::common;

use common::{claims, get, imds};
use entra_mi_emulator::{ApiApp, Emulator, Identity};
use reqwest::StatusCode;
use serde_json::json;

const OTHER_TENANT: &str = "9b8c7d6e-1111-4222-8333-944455556666";

#[tokio::test]
async fn discovery_documents_for_tenants_and_common() {
    let em = Emulator::builder()
        .additional_tenant(OTHER_TENANT)
        .start()
        .await
        .unwrap();
    let base = em.base_url();
    let tid = em.tenant_id();
    // The emulator's tenant: concrete issuers.
    let v2 = get(&em.openid_configuration_v2_url(), &[]).await.json();
    assert_eq!(v2["issuer"], em.issuer_v2().as_str());
    assert_eq!(v2["issuer"], format!("{base}/{tid}/v2.0").as_str());
    assert_eq!(v2["jwks_uri"], em.jwks_v2_url().as_str());
    let v1 = get(&em.openid_configuration_url(), &[]).await.json();
    assert_eq!(v1["issuer"], em.issuer().as_str());
    // Another tenant of the emulator: its own issuers.
    let other = get(
        &format!("{base}/{OTHER_TENANT}/v2.0/.well-known/openid-configuration"),
        &[],
    )
    .await
    .json();
    assert_eq!(
        other["issuer"],
        format!("{base}/{OTHER_TENANT}/v2.0").as_str()
    );
    let other_v1 = get(
        &format!("{base}/{OTHER_TENANT}/.well-known/openid-configuration"),
        &[],
    )
    .await
    .json();
    assert_eq!(
        other_v1["issuer"],
        format!("https://sts.windows.net/{OTHER_TENANT}/").as_str()
    );
    // `common` and `organizations`: templates.
    for t in ["common", "organizations"] {
        let v2 = get(
            &format!("{base}/{t}/v2.0/.well-known/openid-configuration"),
            &[],
        )
        .await
        .json();
        assert_eq!(v2["issuer"], format!("{base}/{{tenantid}}/v2.0").as_str());
        assert_eq!(
            v2["jwks_uri"],
            format!("{base}/{t}/discovery/v2.0/keys").as_str()
        );
        assert!(v2["tenant_region_scope"].is_null());
        let v1 = get(&format!("{base}/{t}/.well-known/openid-configuration"), &[])
            .await
            .json();
        assert_eq!(v1["issuer"], "https://sts.windows.net/{tenantid}/");
    }
    // Unknown tenants are refused on every document.
    for path in [
        "nobody/v2.0/.well-known/openid-configuration",
        "nobody/.well-known/openid-configuration",
        "nobody/discovery/v2.0/keys",
    ] {
        let r = get(&format!("{base}/{path}"), &[]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.json()["error"], "invalid_tenant");
    }
}

#[tokio::test]
async fn v2_tokens_for_an_api_that_asks_for_them() {
    let caller = Identity::user_assigned("caller");
    let orders = ApiApp::new("Orders", "api://orders", &["Orders.Read"]);
    let em = Emulator::builder()
        .identity(caller.clone())
        .api(orders.clone())
        .roles(&caller.object_id, "api://orders", &["Orders.Read"])
        .v2_tokens_for("api://orders")
        .start()
        .await
        .unwrap();
    let select = format!("&client_id={}", caller.client_id);
    let c = claims(&imds(&em, "api://orders", &select).await.token());
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["iss"], em.issuer_v2().as_str());
    // The audience of a v2 token is the API's client id, whatever URI was asked for.
    assert_eq!(c["aud"], orders.app_id.as_str());
    assert_eq!(c["azp"], caller.client_id.as_str());
    assert_eq!(c["azpacr"], "2");
    assert!(c.get("appid").is_none());
    assert_eq!(c["roles"], json!(["Orders.Read"]));
    assert_eq!(c["tid"], em.tenant_id().as_str());
    assert_eq!(c["xms_mirid"], caller.resource_id.as_str());
    // Asking by the API's client id gives a v2 token too; other APIs stay v1.
    let c = claims(&imds(&em, &orders.app_id, &select).await.token());
    assert_eq!(c["ver"], "2.0");
    let c = claims(&imds(&em, "https://management.azure.com/", "").await.token());
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["iss"], em.issuer().as_str());
}

fn kids(set: &serde_json::Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn header_kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn rotation_publishes_the_new_key_keeps_the_old_then_drops_it() {
    let em = Emulator::builder().start().await.unwrap();
    let old = em.signing_key_ids();
    assert_eq!(old.len(), 1);
    let first = imds(&em, "api://orders", "").await.token();
    assert_eq!(header_kid(&first), old[0]);

    let new = em.rotate_signing_key().await.unwrap();
    assert_ne!(new, old[0]);
    assert_eq!(em.signing_key_ids(), vec![new.clone(), old[0].clone()]);
    assert_eq!(
        kids(&get(&em.jwks_url(), &[]).await.json()),
        vec![new.clone(), old[0].clone()]
    );
    assert_eq!(em.public_key_jwk()["kid"], new.as_str());
    // The endpoint forgot its cached token: the next one is signed with the new key.
    let second = imds(&em, "api://orders", "").await.token();
    assert_eq!(header_kid(&second), new);

    em.retire_old_signing_keys();
    assert_eq!(
        kids(&get(&em.jwks_v2_url(), &[]).await.json()),
        vec![new.clone()]
    );
    assert!(em.sign_token_with_key(&old[0], &json!({"a": 1})).is_none());
}

#[tokio::test]
async fn a_tenant_key_names_its_tenant_in_v2_key_sets_only() {
    let em = Emulator::builder().start().await.unwrap();
    let shared = em.signing_key_ids()[0].clone();
    let kid = em.add_tenant_signing_key(OTHER_TENANT).await.unwrap();
    let v2 = get(&em.jwks_v2_url(), &[]).await.json();
    let keys = v2["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], shared.as_str());
    assert_eq!(
        keys[0]["issuer"],
        format!("{}/{{tenantid}}/v2.0", em.base_url()).as_str()
    );
    assert_eq!(keys[1]["kid"], kid.as_str());
    assert_eq!(
        keys[1]["issuer"],
        format!("{}/{OTHER_TENANT}/v2.0", em.base_url()).as_str()
    );
    // The v1 key set cannot say whose key it is, so it does not publish it.
    assert_eq!(
        kids(&get(&em.jwks_url(), &[]).await.json()),
        vec![shared.clone()]
    );
    // It signs only when asked; tokens keep the shared key.
    let token = em
        .sign_token_with_key(&kid, &json!({"tid": OTHER_TENANT}))
        .unwrap();
    assert_eq!(header_kid(&token), kid);
    assert_eq!(header_kid(&imds(&em, "api://x", "").await.token()), shared);
}

#[tokio::test]
async fn sign_token_signs_any_claims_verifiably() {
    let em = Emulator::builder().start().await.unwrap();
    let token = em.sign_token(&json!({"aud": "api://x", "exp": 1, "custom": [1, 2]}));
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(
        header.kid.as_deref(),
        Some(em.signing_key_ids()[0].as_str())
    );
    let key =
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(em.public_key_jwk()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["custom"], json!([1, 2]));
}
