//! Tokens for another tenant, API or identity are refused.

use super::*;

#[tokio::test]
async fn managed_identity_refuses_other_tenants() {
    let server = RawServer::start(Reply::json(200, imds_body(CANARY, now_unix(), 3600))).await;
    let err = imds(&server)
        .get_token(&graph().with_tenant("contoso.onmicrosoft.com"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("home tenant"), "{err}");
    assert_eq!(server.count(), 0);
}

/// A token body for `resource`, with `extra` fields.
fn body_for_resource(resource: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"access_token": CANARY, "expires_in": "3599", "resource": resource, "token_type": "Bearer"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn a_token_for_another_api_or_identity_is_refused() {
    const WANT: &str = "11111111-2222-3333-4444-555555555555";
    let with_client_id = |server: &RawServer| {
        ManagedIdentityCredential::builder()
            .environment(imds_env(server))
            .client_id(WANT)
            .retry(RetryOptions::default().max_retries(0))
            .build()
            .unwrap()
    };
    // Another API (the Cloud Shell bug, here from IMDS), or another identity than the client
    // id asked for: a typed error naming both, never the token.
    for (name, body, client_id) in [
        (
            "another API",
            body_for_resource("https://management.azure.com/", json!({})),
            false,
        ),
        (
            "another host spelled alike",
            body_for_resource("https://graph.microsoft.com.evil.example", json!({})),
            false,
        ),
        (
            "another identity",
            body_for_resource(
                "https://graph.microsoft.com",
                json!({"client_id": "99999999-2222-3333-4444-555555555555"}),
            ),
            true,
        ),
    ] {
        let server = RawServer::start(Reply::json(200, body)).await;
        let cred = if client_id {
            with_client_id(&server)
        } else {
            imds(&server)
        };
        let err = cred.get_token(&graph()).await.unwrap_err();
        assert_no_canary(&err);
        match &err {
            Error::Source(family)
                if let entra_mi::error::SourceError::Unavailable {
                    reason: Unavailable::InvalidResponse { problem },
                    ..
                } = family.as_ref() =>
            {
                assert!(problem.contains("asked"), "{name}: {problem}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The same API or identity in another spelling is no mismatch; neither is an echo this
    // check cannot judge (an application-id GUID for a URL).
    for (name, body) in [
        (
            "trailing slash and case",
            body_for_resource("HTTPS://Graph.Microsoft.com/", json!({})),
        ),
        (
            "app id",
            body_for_resource("00000003-0000-0000-c000-000000000000", json!({})),
        ),
        (
            "client id in upper case",
            body_for_resource(
                "https://graph.microsoft.com",
                json!({"client_id": WANT.to_uppercase()}),
            ),
        ),
    ] {
        let server = RawServer::start(Reply::json(200, body)).await;
        let token = with_client_id(&server)
            .get_token(&graph())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(token.secret(), CANARY, "{name}");
    }
}
