//! Request shapes: headers, query, user-assigned ids, the rotated identity header.

use super::*;

#[tokio::test]
async fn imds_request_has_the_documented_shape() {
    let server = RawServer::start(Reply::json(200, imds_body(CANARY, now_unix(), 3600))).await;
    let cred = imds(&server);
    assert_eq!(cred.source_kind(), SourceKind::Imds);
    let arm = TokenRequest::new(Audience::new("https://management.azure.com/").unwrap());
    let token = cred.get_token(&arm).await.unwrap();
    assert_eq!(token.secret(), CANARY);
    assert_eq!(token.token_type(), "Bearer");
    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path(), "/metadata/identity/oauth2/token");
    assert_eq!(req.query("api-version").as_deref(), Some("2018-02-01"));
    assert_eq!(
        req.query("resource").as_deref(),
        Some("https://management.azure.com/")
    );
    assert_eq!(req.header("Metadata"), Some("true"));
    for p in ["client_id", "object_id", "msi_res_id"] {
        assert_eq!(req.query(p), None, "{p} must be absent for system-assigned");
    }
}

#[tokio::test]
async fn user_assigned_ids_are_rendered_per_source() {
    let guid = "11111111-2222-3333-4444-555555555555";
    let rid = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
    let server = RawServer::start(Reply::json(200, imds_body(CANARY, now_unix(), 3600))).await;
    let cases = [
        (
            ManagedIdentityCredential::builder().client_id(guid),
            "client_id",
            "client_id",
            guid,
        ),
        (
            ManagedIdentityCredential::builder().object_id(guid),
            "object_id",
            "principal_id",
            guid,
        ),
        (
            ManagedIdentityCredential::builder().resource_id(rid),
            "msi_res_id",
            "mi_res_id",
            rid,
        ),
    ];
    for (builder, imds_param, app_param, value) in cases {
        let cred = builder
            .clone()
            .environment(imds_env(&server))
            .build()
            .unwrap();
        cred.get_token(&graph()).await.unwrap();
        let req = server.requests().pop().unwrap();
        assert_eq!(req.query(imds_param).as_deref(), Some(value));

        let cred = builder
            .environment(app_service_env(&server, "s3cret"))
            .build()
            .unwrap();
        assert_eq!(cred.source_kind(), SourceKind::AppService);
        cred.get_token(&graph()).await.unwrap();
        let req = server.requests().pop().unwrap();
        assert_eq!(req.query(app_param).as_deref(), Some(value));
        assert_eq!(req.query("api-version").as_deref(), Some("2019-08-01"));
        assert_eq!(req.header("X-IDENTITY-HEADER"), Some("s3cret"));
    }
}

#[tokio::test]
async fn app_service_reads_the_rotated_identity_header_per_request() {
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": CANARY, "expires_on": (now_unix() + 3600).to_string(), "resource": "https://graph.microsoft.com", "token_type": "Bearer"}),
    ))
    .await;
    let env = app_service_env(&server, "first");
    let cred = ManagedIdentityCredential::builder()
        .environment(env.clone())
        .build()
        .unwrap();
    cred.get_token(&graph()).await.unwrap();
    env.set("IDENTITY_HEADER", "second");
    cred.get_token(&graph()).await.unwrap();
    let seen: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("X-IDENTITY-HEADER").unwrap().to_string())
        .collect();
    assert_eq!(seen, ["first", "second"]);
    env.remove("IDENTITY_HEADER");
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, .. } if setting == "IDENTITY_HEADER")),
        "{err}"
    );
}
