//! The Microsoft Graph subset: token checks like Graph's, service principals, paging,
//! filters and injected rejections.

use crate::common;

use std::time::Duration;

use common::{enc, get, imds};
use entra_mi_emulator::{Emulator, GraphRejection, Identity};

const GRAPH: &str = "https://graph.microsoft.com";

async fn emulator() -> Emulator {
    Emulator::builder()
        .identity(Identity::user_assigned("one"))
        .identity(Identity::user_assigned("it's two"))
        .start()
        .await
        .unwrap()
}

fn sp_url(em: &Emulator, query: &str) -> String {
    format!("{}/servicePrincipals{query}", em.graph_url())
}

fn assert_graph_401(reply: &common::Reply, error: Option<&str>) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    let challenge = reply.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer realm=\"\""), "{challenge}");
    assert!(challenge.contains("client_id=\"00000003-0000-0000-c000-000000000000\""));
    match error {
        Some(e) => assert!(challenge.contains(&format!("error=\"{e}\"")), "{challenge}"),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    assert_eq!(reply.json()["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn tokens_are_checked_like_graph_does() {
    let em = emulator().await;
    assert_graph_401(&get(&sp_url(&em, ""), &[]).await, None);
    assert_graph_401(
        &get(&sp_url(&em, ""), &[("authorization", "Basic abc")]).await,
        Some("invalid_token"),
    );
    assert_graph_401(
        &get(&sp_url(&em, ""), &[("authorization", "Bearer not.a.jwt")]).await,
        Some("invalid_token"),
    );

    // A valid token for another audience.
    let arm = imds(&em, "https://management.azure.com/", "").await.token();
    assert_graph_401(
        &get(
            &sp_url(&em, ""),
            &[("authorization", &format!("Bearer {arm}"))],
        )
        .await,
        Some("invalid_token"),
    );

    // A Graph token with its signature tampered with.
    let good = imds(&em, GRAPH, "").await.token();
    let mut forged = good.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_graph_401(
        &get(
            &sp_url(&em, ""),
            &[("authorization", &format!("Bearer {forged}"))],
        )
        .await,
        Some("invalid_token"),
    );

    // Graph's app id is an accepted audience too.
    let by_app_id = imds(&em, "00000003-0000-0000-c000-000000000000", "")
        .await
        .token();
    for token in [&good, &by_app_id] {
        let ok = get(
            &sp_url(&em, ""),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    assert_eq!(em.graph_requests(), 7);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let em = emulator().await;
    em.set_token_lifetime(Duration::from_secs(1));
    let token = imds(&em, GRAPH, "").await.token();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = get(
        &sp_url(&em, ""),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_graph_401(&reply, Some("invalid_token"));
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn service_principals_page_and_filter() {
    let em = emulator().await;
    let token = imds(&em, GRAPH, "").await.token();
    let auth = format!("Bearer {token}");
    let all = get(&sp_url(&em, ""), &[("authorization", &auth)])
        .await
        .json();
    // The managed identities come first; the resource APIs' service principals follow.
    let values: Vec<_> = all["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["servicePrincipalType"] == "ManagedIdentity")
        .collect();
    assert_eq!(values.len(), 3);
    assert_eq!(all["value"][0], *values[0]);
    assert!(all.get("@odata.nextLink").is_none());
    let system = em.system_identity().unwrap();
    assert_eq!(values[0]["id"], system.object_id.as_str());
    assert_eq!(values[0]["appId"], system.client_id.as_str());
    assert_eq!(values[0]["servicePrincipalType"], "ManagedIdentity");
    assert_eq!(values[0]["alternativeNames"][0], "isExplicit=False");
    assert_eq!(
        values[0]["alternativeNames"][1],
        system.resource_id.as_str()
    );
    assert_eq!(values[1]["alternativeNames"][0], "isExplicit=True");

    // Two per page: the next link carries on where the page ended.
    let mut url = sp_url(&em, "?$top=2");
    let mut names = Vec::new();
    for _ in 0..5 {
        let page = get(&url, &[("authorization", &auth)]).await.json();
        names.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["displayName"].as_str().unwrap().to_owned()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        names.len(),
        all["value"].as_array().unwrap().len(),
        "{names:?}"
    );
    assert_eq!(names[..3], ["vm", "one", "it's two"]);

    let two = &em.identities()[1];
    let by_app = get(
        &sp_url(
            &em,
            &format!("?$filter={}", enc(&format!("appId eq '{}'", two.client_id))),
        ),
        &[("authorization", &auth)],
    )
    .await
    .json();
    assert_eq!(by_app["value"][0]["displayName"], "it's two");
    assert_eq!(by_app["value"].as_array().unwrap().len(), 1);
    let by_name = get(
        &sp_url(
            &em,
            &format!("?$filter={}", enc("displayName eq 'it''s two'")),
        ),
        &[("authorization", &auth)],
    )
    .await
    .json();
    assert_eq!(by_name["value"][0]["appId"], two.client_id.as_str());

    assert_eq!(
        get(&sp_url(&em, "?$top=0"), &[("authorization", &auth)])
            .await
            .status,
        400
    );
    assert_eq!(
        get(
            &sp_url(
                &em,
                &format!("?$filter={}", enc("startswith(displayName,'a')"))
            ),
            &[("authorization", &auth)]
        )
        .await
        .status,
        400
    );
}

/// A `$skiptoken` at the top of `usize` (where `skip + top` would overflow) is an empty last
/// page; one past it is Graph's invalid-skiptoken `400`. Both listings page the same way.
#[tokio::test]
async fn a_huge_skiptoken_is_answered_not_panicked_on() {
    let reader = Identity::user_assigned("reader");
    let em = Emulator::builder()
        .identity(reader.clone())
        .roles(&reader.object_id, GRAPH, &["Application.Read.All"])
        .start()
        .await
        .unwrap();
    let token = imds(&em, GRAPH, &format!("&client_id={}", reader.client_id))
        .await
        .token();
    let auth = format!("Bearer {token}");
    let assignments = format!(
        "{}/servicePrincipals/{}/appRoleAssignments",
        em.graph_url(),
        reader.object_id
    );
    let listings = [sp_url(&em, ""), assignments];
    for listing in &listings {
        for query in [
            format!("?$skiptoken={}", usize::MAX),
            format!("?$top=999&$skiptoken={}", usize::MAX - 1),
        ] {
            let reply = get(&format!("{listing}{query}"), &[("authorization", &auth)]).await;
            assert_eq!(reply.status, 200, "{listing}{query}: {}", reply.body);
            let body = reply.json();
            assert_eq!(body["value"], serde_json::json!([]), "{listing}{query}");
            assert!(body.get("@odata.nextLink").is_none(), "{listing}{query}");
        }
        for bad in ["18446744073709551616", "-1", "abc"] {
            let reply = get(
                &format!("{listing}?$skiptoken={bad}"),
                &[("authorization", &auth)],
            )
            .await;
            assert_eq!(reply.status, 400, "{listing} {bad}: {}", reply.body);
            assert_eq!(
                reply.json()["error"]["code"],
                "Directory_InvalidSkipToken",
                "{listing} {bad}"
            );
        }
    }
    // The server is still serving normally afterwards.
    let after = get(&sp_url(&em, "?$top=1"), &[("authorization", &auth)]).await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert!(after.json()["@odata.nextLink"].is_string());
}

#[tokio::test]
async fn rejections_can_be_injected() {
    let em = emulator().await;
    let token = imds(&em, GRAPH, "").await.token();
    let auth = format!("Bearer {token}");
    em.push_graph_rejection(GraphRejection::InvalidToken);
    em.push_graph_rejection(GraphRejection::ClaimsChallenge(
        r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#.into(),
    ));
    assert_graph_401(
        &get(&sp_url(&em, ""), &[("authorization", &auth)]).await,
        Some("invalid_token"),
    );
    let claims = get(&sp_url(&em, ""), &[("authorization", &auth)]).await;
    assert_graph_401(&claims, Some("insufficient_claims"));
    assert!(
        claims.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("claims=\"eyJhY2Nlc3NfdG9rZW4i")
    );
    assert_eq!(
        get(&sp_url(&em, ""), &[("authorization", &auth)])
            .await
            .status,
        200
    );
    em.reject_all_graph_tokens(true);
    for _ in 0..3 {
        assert_graph_401(
            &get(&sp_url(&em, ""), &[("authorization", &auth)]).await,
            Some("invalid_token"),
        );
    }
    em.reject_all_graph_tokens(false);
    assert_eq!(
        get(&sp_url(&em, ""), &[("authorization", &auth)])
            .await
            .status,
        200
    );
}
