//! The checks the IMDS and App Service endpoints make, over real loopback HTTP.

use crate::common;

use common::{app_service, claims, enc, get, imds};
use entra_mi_emulator::{Emulator, Endpoint, Identity};
use reqwest::StatusCode;
use serde_json::Value;

const ARM: &str = "https://management.azure.com/";

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

async fn emulator_with(ids: &[&Identity]) -> Emulator {
    let mut b = Emulator::builder();
    for id in ids {
        b = b.identity((*id).clone());
    }
    b.start().await.expect("emulator starts")
}

// ---------------------------------------------------------------------------------------------
// IMDS

#[tokio::test]
async fn imds_system_assigned_standard_response() {
    let em = emulator_with(&[]).await;
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.content_type().starts_with("application/json"));
    let body = r.json();
    let mut k = keys(&body);
    k.sort_unstable();
    assert_eq!(
        k,
        [
            "access_token",
            "expires_in",
            "expires_on",
            "not_before",
            "refresh_token",
            "resource",
            "token_type"
        ]
    );
    for key in k {
        assert!(body[key].is_string(), "{key} is a string: {body}");
    }
    assert_eq!(body["refresh_token"], "");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], ARM);
    let c = claims(body["access_token"].as_str().unwrap());
    let sys = em.system_identity().unwrap();
    assert_eq!(c["aud"], ARM, "trailing slash kept");
    assert_eq!(c["oid"], sys.object_id.as_str());
    assert_eq!(body["expires_on"], c["exp"].as_u64().unwrap().to_string());
    assert_eq!(body["not_before"], c["nbf"].as_u64().unwrap().to_string());
    let expires_in: u64 = body["expires_in"].as_str().unwrap().parse().unwrap();
    assert!((86_390..=86_399).contains(&expires_in), "{expires_in}");
}

#[tokio::test]
async fn imds_without_metadata_header_is_400_bad_request_102() {
    let em = emulator_with(&[]).await;
    // The SDK probe: the token URL with neither header nor query.
    let probe = get(&em.imds_token_url(), &[]).await;
    assert_eq!(probe.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        probe.json(),
        serde_json::json!({"error": "bad_request_102", "error_description": "Required metadata header not specified"})
    );
    let url = format!(
        "{}?api-version=2018-02-01&resource={}",
        em.imds_token_url(),
        enc(ARM)
    );
    for headers in [
        &[][..],
        &[("Metadata", "True")][..],
        &[("Metadata", "false")][..],
        &[("Metadata", "")][..],
    ] {
        let r = get(&url, headers).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(r.json()["error"], "bad_request_102", "{headers:?}");
    }
    assert_eq!(em.requests(Endpoint::Imds), 5);
}

#[tokio::test]
async fn imds_api_version_must_be_known_and_at_least_2018_02_01() {
    let em = emulator_with(&[]).await;
    let base = format!("{}?resource={}", em.imds_token_url(), enc(ARM));
    for bad in [
        "",
        "&api-version=2017-12-01",
        "&api-version=banana",
        "&api-version=",
    ] {
        let r = get(&format!("{base}{bad}"), &[("Metadata", "true")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request", "{bad}");
    }
    for good in ["2018-02-01", "2019-08-01", "2021-02-01"] {
        let r = get(
            &format!("{base}&api-version={good}"),
            &[("Metadata", "true")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{good}: {}", r.body);
    }
}

#[tokio::test]
async fn imds_missing_resource_is_invalid_request() {
    let em = emulator_with(&[]).await;
    for q in [
        "?api-version=2018-02-01",
        "?api-version=2018-02-01&resource=",
    ] {
        let r = get(
            &format!("{}{q}", em.imds_token_url()),
            &[("Metadata", "true")],
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"], "invalid_request");
    }
}

#[tokio::test]
async fn imds_selects_user_assigned_identities_by_each_selector() {
    let ua = Identity::user_assigned("reader");
    let other = Identity::user_assigned("writer");
    let em = emulator_with(&[&ua, &other]).await;
    for extra in [
        format!("&client_id={}", ua.client_id),
        format!("&client_id={}", ua.client_id.to_uppercase()),
        format!("&object_id={}", ua.object_id),
        format!("&msi_res_id={}", enc(&ua.resource_id)),
    ] {
        let r = imds(&em, ARM, &extra).await;
        let c = claims(&r.token());
        assert_eq!(c["oid"], ua.object_id.as_str(), "{extra}");
        assert_eq!(c["appid"], ua.client_id.as_str(), "{extra}");
        assert_eq!(c["xms_mirid"], ua.resource_id.as_str(), "{extra}");
    }
    let c = claims(
        &imds(&em, ARM, &format!("&client_id={}", other.client_id))
            .await
            .token(),
    );
    assert_eq!(c["oid"], other.object_id.as_str());
}

#[tokio::test]
async fn imds_rejects_two_selectors_and_unknown_identities() {
    let ua = Identity::user_assigned("reader");
    let em = emulator_with(&[&ua]).await;
    let two = imds(
        &em,
        ARM,
        &format!("&client_id={}&object_id={}", ua.client_id, ua.object_id),
    )
    .await;
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    assert_eq!(two.json()["error"], "invalid_request");
    let twice = imds(
        &em,
        ARM,
        &format!("&client_id={0}&client_id={0}", ua.client_id),
    )
    .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);

    let not_found =
        serde_json::json!({"error": "invalid_request", "error_description": "Identity not found"});
    for extra in [
        "&client_id=00000000-0000-0000-0000-000000000000".to_owned(),
        format!("&object_id={}", ua.client_id),
        "&msi_res_id=%2Fsubscriptions%2Fx".to_owned(),
        "&client_id=".to_owned(),
    ] {
        let r = imds(&em, ARM, &extra).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}");
        assert_eq!(r.json(), not_found, "{extra}");
    }
}

#[tokio::test]
async fn imds_without_system_identity_needs_a_selector() {
    let ua = Identity::user_assigned("only");
    let em = Emulator::builder()
        .system_assigned(None)
        .identity(ua.clone())
        .start()
        .await
        .unwrap();
    assert_eq!(em.system_identity(), None);
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "invalid_request", "error_description": "Identity not found"})
    );
    let r = imds(&em, ARM, &format!("&client_id={}", ua.client_id)).await;
    assert_eq!(claims(&r.token())["oid"], ua.object_id.as_str());
}

#[tokio::test]
async fn imds_refuses_proxied_requests_scopes_and_other_methods() {
    let em = emulator_with(&[]).await;
    let url = format!(
        "{}?api-version=2018-02-01&resource={}",
        em.imds_token_url(),
        enc(ARM)
    );
    let r = get(
        &url,
        &[("Metadata", "true"), ("X-Forwarded-For", "10.0.0.1")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A v2 scope where a v1 resource belongs: Entra's AADSTS500011.
    let r = imds(&em, "https://vault.azure.net/.default", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"], "invalid_resource");
    assert!(
        r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("AADSTS500011")
    );

    let r = common::client()
        .post(&url)
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers()["allow"], "GET");
}

#[tokio::test]
async fn resource_strings_are_kept_exactly() {
    let em = emulator_with(&[]).await;
    for resource in [
        "https://management.azure.com/",
        "https://management.azure.com",
        "api://9d2b3f4e-0000-4000-8000-000000000001",
        "https://example.com/some path?x=1&y=2",
    ] {
        let r = imds(&em, resource, "").await;
        assert_eq!(r.json()["resource"], resource);
        assert_eq!(claims(&r.token())["aud"], resource);
        let r = app_service(&em, resource, "").await;
        assert_eq!(r.json()["resource"], resource);
        assert_eq!(claims(&r.token())["aud"], resource);
    }
    let with = imds(&em, "https://management.azure.com/", "").await.token();
    let without = imds(&em, "https://management.azure.com", "").await.token();
    assert_ne!(with, without, "different audiences, different tokens");
}

// ---------------------------------------------------------------------------------------------
// App Service 2019-08-01

#[tokio::test]
async fn app_service_standard_response() {
    let ua = Identity::user_assigned("app");
    let em = emulator_with(&[&ua]).await;
    let r = app_service(&em, "https://vault.azure.net", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.content_type().starts_with("application/json"));
    let body = r.json();
    assert_eq!(
        keys(&body),
        [
            "access_token",
            "client_id",
            "expires_on",
            "resource",
            "token_type"
        ]
    );
    let sys = em.system_identity().unwrap();
    assert_eq!(body["client_id"], sys.client_id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["resource"], "https://vault.azure.net");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(body["expires_on"], c["exp"].as_u64().unwrap().to_string());
    assert_eq!(c["aud"], "https://vault.azure.net");
    assert_eq!(c["oid"], sys.object_id.as_str());
}

#[tokio::test]
async fn app_service_selects_by_each_selector() {
    let ua = Identity::user_assigned("app");
    let em = emulator_with(&[&ua]).await;
    for extra in [
        format!("&client_id={}", ua.client_id),
        format!("&principal_id={}", ua.object_id),
        format!("&object_id={}", ua.object_id),
        format!("&mi_res_id={}", enc(&ua.resource_id)),
    ] {
        let r = app_service(&em, ARM, &extra).await;
        assert_eq!(r.json()["client_id"], ua.client_id.as_str(), "{extra}");
        assert_eq!(claims(&r.token())["oid"], ua.object_id.as_str(), "{extra}");
    }
}

#[tokio::test]
async fn app_service_rejects_unknown_and_ambiguous_identities() {
    let ua = Identity::user_assigned("app");
    let em = emulator_with(&[&ua]).await;
    for extra in [
        "&client_id=00000000-0000-0000-0000-000000000000".to_owned(),
        format!("&msi_res_id_typo={}&principal_id={}", 1, ua.client_id),
    ] {
        let r = app_service(&em, ARM, &extra).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{extra}");
        let body = r.json();
        assert_eq!(body["statusCode"], 400);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("No Managed Identity found")
        );
    }
    let r = app_service(
        &em,
        ARM,
        &format!("&client_id={}&principal_id={}", ua.client_id, ua.object_id),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["statusCode"], 400);
    // IMDS's selector name is not App Service's: mi_res_id, not msi_res_id. An unknown
    // parameter is ignored, so this asks for the system identity.
    let r = app_service(&em, ARM, &format!("&msi_res_id={}", enc(&ua.resource_id))).await;
    assert_eq!(
        claims(&r.token())["oid"],
        em.system_identity().unwrap().object_id.as_str()
    );
}

#[tokio::test]
async fn app_service_identity_header_is_checked_and_rotates() {
    let em = Emulator::builder()
        .identity_header("first-secret")
        .start()
        .await
        .unwrap();
    assert_eq!(em.identity_header(), "first-secret");
    let url = format!(
        "{}?api-version=2019-08-01&resource={}",
        em.app_service_endpoint(),
        enc(ARM)
    );
    let missing = get(&url, &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["statusCode"], 400);
    assert!(missing.json()["message"].is_string());
    let wrong = get(&url, &[("X-IDENTITY-HEADER", "nope")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.json()["statusCode"], 401);
    // Header names are case-insensitive; the value is not.
    let ok = get(&url, &[("x-identity-header", "first-secret")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let upper = get(&url, &[("X-IDENTITY-HEADER", "FIRST-SECRET")]).await;
    assert_eq!(upper.status, StatusCode::UNAUTHORIZED);

    em.set_identity_header("second-secret");
    assert_eq!(em.identity_header(), "second-secret");
    let old = get(&url, &[("X-IDENTITY-HEADER", "first-secret")]).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = get(&url, &[("X-IDENTITY-HEADER", "second-secret")]).await;
    assert_eq!(new.status, StatusCode::OK);
    assert_eq!(em.requests(Endpoint::AppService), 6);
    assert_eq!(em.requests(Endpoint::Imds), 0);
}

#[tokio::test]
async fn app_service_default_identity_header_is_random() {
    let a = Emulator::builder().start().await.unwrap();
    let b = Emulator::builder().start().await.unwrap();
    assert!(a.identity_header().len() >= 16);
    assert_ne!(a.identity_header(), b.identity_header());
}

#[tokio::test]
async fn app_service_api_version_must_be_2019_08_01() {
    let em = emulator_with(&[]).await;
    let h = em.identity_header();
    let base = format!("{}?resource={}", em.app_service_endpoint(), enc(ARM));
    for bad in ["", "&api-version=2017-09-01", "&api-version=2018-02-01"] {
        let r = get(&format!("{base}{bad}"), &[("X-IDENTITY-HEADER", &h)]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json()["statusCode"], 400, "{bad}");
        assert!(r.json()["message"].is_string());
    }
    let r = get(
        &format!("{}?api-version=2019-08-01", em.app_service_endpoint()),
        &[("X-IDENTITY-HEADER", &h)],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "resource is required");
    assert_eq!(r.json()["statusCode"], 400);
}

#[tokio::test]
async fn app_service_reports_a_scope_as_a_vague_500() {
    let em = emulator_with(&[]).await;
    let r = app_service(&em, "https://vault.azure.net/.default", "").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["statusCode"], 500);
}

#[tokio::test]
async fn app_service_answers_on_the_documented_capitalised_path_too() {
    let em = emulator_with(&[]).await;
    let url = format!(
        "{}/MSI/token?api-version=2019-08-01&resource={}",
        em.base_url(),
        enc(ARM)
    );
    let r = get(&url, &[("X-IDENTITY-HEADER", &em.identity_header())]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(em.requests(Endpoint::AppService), 1);
}
