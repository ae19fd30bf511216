//! The caller's deadline, the aggregated error, `AZURE_TOKEN_CREDENTIALS`, the remembered probe and client capabilities.

use super::*;

/// Runs `c` with a deadline of `ms` and returns its error: the chain's `DeadlineExceeded` for
/// that deadline, within bounded real time.
async fn past_deadline(c: &DefaultCredential, ms: u64) -> Error {
    let deadline = Duration::from_millis(ms);
    let started = std::time::Instant::now();
    let err = c
        .get_token(&graph().with_deadline(deadline))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "bounded");
    assert!(
        matches!(&err, Error::Deadline(family) if matches!(family.as_ref(), entra_mi::error::DeadlineError::Caller { credential, deadline: d, .. } if credential == "default" && *d == deadline)),
        "{err:?}"
    );
    err
}

#[tokio::test]
async fn the_callers_deadline_bounds_the_chain_and_stops_it() {
    // IMDS answers the probe, then never answers the token request. The caller's deadline,
    // not the credential's own limits, ends the wait: the chain stops there and does not go
    // on to run the Azure CLI (an internal probe timeout, by contrast, moves on: see
    // `imds_is_probed_once_and_the_winner_sticks`).
    let server = RawServer::start(Reply::Hang).await;
    server.push(Reply::json(400, json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})));
    let cli = az("deadline");
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url("")),
        ("PATH", path_of(&cli)),
    ]));
    let err = past_deadline(&c, 700).await;
    assert!(!err.is_unavailable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("no token within the caller's deadline"),
        "{msg}"
    );
    assert!(!msg.contains("azure-cli"), "{msg}");
    assert!(!cli.0.join("ran").exists(), "the Azure CLI was never run");

    assert!(
        matches!(&err, Error::Deadline(family) if matches!(&**family, entra_mi::error::DeadlineError::Caller { last: Some(_), .. })),
        "{err:?}"
    );

    // The probe counts too: cut short by the caller's 200 ms (its own timeout is 300 ms), it
    // says nothing about IMDS, so nothing is remembered and the next link is not tried.
    let silent = RawServer::start(Reply::Hang).await;
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", silent.url("")),
        ("PATH", path_of(&cli)),
    ]));
    past_deadline(&c, 200).await;
    assert!(!cli.0.join("ran").exists(), "the Azure CLI was never run");
    // Without a deadline the probe runs again, for its own 300 ms, and the chain moves on.
    let token = c.get_token(&graph()).await.unwrap();
    assert_eq!(token.secret(), "cli.token.x");
    assert_eq!(
        silent.count(),
        2,
        "probed again: the cut probe was not remembered"
    );
}

#[tokio::test]
async fn every_link_failing_gives_one_line_per_link() {
    let empty = dir("none");
    let closed = support::RefusedPort::new();
    let c = chain(env(vec![
        ("PATH", path_of(&empty)),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed.url()),
    ]));
    let err = c.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(err, Error::Chain(ref c) if c.attempts.len() == 4),
        "{err:?}"
    );
    assert!(err.is_unavailable());
    let msg = err.to_string();
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines.len(), 5, "{msg}");
    assert!(lines[1].starts_with("  environment: not configured: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET are not set"), "{msg}");
    assert!(
        lines[2].starts_with("  workload-identity: not configured:"),
        "{msg}"
    );
    assert!(
        lines[3].starts_with("  managed-identity: IMDS did not answer a probe"),
        "{msg}"
    );
    assert!(
        lines[4].starts_with(
            "  azure-cli: azure-cli unavailable: the Azure CLI (az) was not found on PATH"
        ),
        "{msg}"
    );
}

#[test]
fn azure_token_credentials_selects_links() {
    let build = |v: &str| {
        DefaultCredential::builder()
            .environment(env(vec![("AZURE_TOKEN_CREDENTIALS", v.into())]))
            .build()
    };
    assert_eq!(
        build("prod").unwrap().links(),
        [
            ChainLink::Environment,
            ChainLink::WorkloadIdentity,
            ChainLink::ManagedIdentity
        ]
    );
    assert_eq!(build("dev").unwrap().links(), [ChainLink::AzureCli]);
    assert_eq!(
        build("azureclicredential").unwrap().links(),
        [ChainLink::AzureCli]
    );
    assert_eq!(
        build("EnvironmentCredential").unwrap().links(),
        [ChainLink::Environment]
    );
    let err = build("production").unwrap_err();
    match &err {
        Error::Configuration(family)
            if let entra_mi::error::ConfigurationError::Setting { setting, reason } =
                family.as_ref() =>
        {
            assert_eq!(setting, "AZURE_TOKEN_CREDENTIALS");
            assert!(
                reason.contains("prod")
                    && reason.contains("dev")
                    && reason.contains("WorkloadIdentityCredential"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A configured but malformed link fails at build time.
    let err = DefaultCredential::builder()
        .environment(env(vec![
            ("AZURE_TENANT_ID", "bad tenant".into()),
            (
                "AZURE_CLIENT_ID",
                "11111111-2222-3333-4444-555555555555".into(),
            ),
            ("AZURE_CLIENT_SECRET", "x".into()),
        ]))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, .. } if setting == "AZURE_TENANT_ID")),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_probe_is_remembered_for_five_minutes_only() {
    let silent = RawServer::start(Reply::Hang).await;
    let cli = az("probe-ttl");
    let clock = entra_mi::time::ManualClock::with_wall_time(SystemTime::now());
    let c = DefaultCredential::builder()
        .environment(env(vec![
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", silent.url("")),
            ("PATH", path_of(&cli)),
            ("AZURE_CLIENT_SECRET", "CANARY-chain-secret".into()),
        ]))
        .time_source(clock.time_source(0.5))
        .imds_probe_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert!(!format!("{c:?}").contains("CANARY"));
    c.get_token(&graph()).await.unwrap();
    c.get_token(&graph()).await.unwrap();
    assert_eq!(silent.count(), 1);
    // The CLI won and sticks; a new walk (after it reports itself unavailable) would probe
    // again only once the negative result has aged out.
    assert_eq!(c.selected(), Some(ChainLink::AzureCli));
    std::fs::remove_file(cli.0.join("az")).unwrap();
    let err = c.get_token(&graph()).await.unwrap_err();
    assert!(
        err.to_string().contains("IMDS did not answer a probe"),
        "{err}"
    );
    assert_eq!(silent.count(), 1, "the failed probe is remembered");
    clock.advance(Duration::from_secs(301));
    let _ = c.get_token(&graph()).await.unwrap_err();
    assert_eq!(silent.count(), 2, "probed again after five minutes");
}

#[tokio::test]
async fn azure_client_id_that_the_detected_source_cannot_use_stops_the_chain_when_reached() {
    // Cloud Shell cannot select a user-assigned identity; AZURE_CLIENT_ID would name one.
    let cli = az("cloud-shell");
    let c = DefaultCredential::builder()
        .environment(env(vec![
            ("MSI_ENDPOINT", "http://127.0.0.1:9/oauth2/token".into()),
            (
                "AZURE_CLIENT_ID",
                "11111111-2222-3333-4444-555555555555".into(),
            ),
            ("PATH", path_of(&cli)),
        ]))
        .build()
        .unwrap();
    let err = c.get_token(&graph()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("managed-identity:")
            && msg.contains("Cloud Shell cannot select a user-assigned identity")
            && msg.contains("AZURE_CLIENT_ID"),
        "{msg}"
    );
    assert!(
        !cli.0.join("ran").exists(),
        "no fall-through to the Azure CLI"
    );
    // An explicit choice is validated when the chain is built.
    let err = DefaultCredential::builder()
        .environment(env(vec![(
            "MSI_ENDPOINT",
            "http://127.0.0.1:9/oauth2/token".into(),
        )]))
        .managed_identity(entra_mi::ManagedIdentityId::ClientId(
            "11111111-2222-3333-4444-555555555555".into(),
        ))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(&**family, entra_mi::error::ConfigurationError::Setting { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn client_capabilities_reach_the_links() {
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": "env.token.x", "expires_in": 3599, "token_type": "Bearer"}),
    ))
    .await;
    let c = DefaultCredential::builder()
        .environment(env(vec![
            ("AZURE_TENANT_ID", "contoso".to_owned()),
            (
                "AZURE_CLIENT_ID",
                "11111111-2222-3333-4444-555555555555".to_owned(),
            ),
            ("AZURE_CLIENT_SECRET", "s".to_owned()),
        ]))
        .authority_host(server.url(""))
        .allow_loopback_http(true)
        .client_capabilities(["cp1"])
        .build()
        .unwrap();
    c.get_token(&graph()).await.unwrap();
    let body = server.requests()[0].body.clone();
    let claims = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "claims")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        claims.as_deref(),
        Some(r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#)
    );
}
