//! Link order, the one IMDS probe, the sticky winner, no fall-through after a managed-identity failure.

use super::*;

#[tokio::test]
async fn links_are_tried_in_order_and_the_first_configured_one_wins() {
    let subject = "system:serviceaccount:ns:app";
    let app = App::new("app")
        .with_secret("s3cret")
        .with_federated_credential(FEDERATED_ISSUER, subject);
    let emu = Emulator::builder().app(app.clone()).start().await.unwrap();
    let cli = az("order");
    let token_file = cli.0.join("wi-token");
    std::fs::write(
        &token_file,
        emu.federated_token(subject, TOKEN_EXCHANGE_AUDIENCE, Duration::from_secs(3600)),
    )
    .unwrap();
    let base = || {
        vec![
            ("AZURE_TENANT_ID", emu.tenant_id()),
            ("AZURE_CLIENT_ID", app.client_id.clone()),
            ("AZURE_AUTHORITY_HOST", emu.authority_host()),
            ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
            ("IDENTITY_HEADER", emu.identity_header()),
            ("PATH", path_of(&cli)),
        ]
    };

    let mut all = base();
    all.push(("AZURE_CLIENT_SECRET", "s3cret".into()));
    all.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    let c = chain(env(all));
    assert_eq!(
        c.links(),
        [
            ChainLink::Environment,
            ChainLink::WorkloadIdentity,
            ChainLink::ManagedIdentity,
            ChainLink::AzureCli
        ]
    );
    c.get_token(&graph()).await.unwrap();
    assert_eq!(c.selected(), Some(ChainLink::Environment));

    let mut wi = base();
    wi.push((
        "AZURE_FEDERATED_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    let c = chain(env(wi));
    c.get_token(&graph()).await.unwrap();
    assert_eq!(c.selected(), Some(ChainLink::WorkloadIdentity));

    // App Service: the managed identity (AZURE_CLIENT_ID names a user-assigned one, which the
    // emulator does not have, so use the system-assigned one).
    let mut mi = base();
    mi.retain(|(k, _)| *k != "AZURE_CLIENT_ID");
    let c = chain(env(mi));
    let token = c.get_token(&graph()).await.unwrap();
    assert_eq!(c.selected(), Some(ChainLink::ManagedIdentity));
    assert_eq!(
        jwt_claims(token.secret())["oid"],
        emu.system_identity().unwrap().object_id.as_str()
    );
    assert!(!cli.0.join("ran").exists(), "the Azure CLI was never run");

    // Nothing but the CLI.
    let closed = support::RefusedPort::new();
    let c = chain(env(vec![
        ("PATH", path_of(&cli)),
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", closed.url()),
    ]));
    let token = c.get_token(&graph()).await.unwrap();
    assert_eq!(token.secret(), "cli.token.x");
    assert_eq!(c.selected(), Some(ChainLink::AzureCli));
}

#[tokio::test]
async fn imds_is_probed_once_and_the_winner_sticks() {
    let emu = Emulator::builder().start().await.unwrap();
    let empty = dir("probe");
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host()),
        ("PATH", path_of(&empty)),
    ]));
    for _ in 0..3 {
        c.get_token(&graph()).await.unwrap();
    }
    // One probe (answered 400: no Metadata header) and three token requests.
    assert_eq!(emu.requests(Endpoint::Imds), 4);
    assert_eq!(c.selected(), Some(ChainLink::ManagedIdentity));

    // A silent IMDS: the probe gives up after its timeout, once; the chain moves on.
    let silent = RawServer::start(Reply::Hang).await;
    let cli = az("probe-cli");
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", silent.url("")),
        ("PATH", path_of(&cli)),
    ]));
    for _ in 0..2 {
        let token = c.get_token(&graph()).await.unwrap();
        assert_eq!(token.secret(), "cli.token.x");
    }
    assert_eq!(silent.count(), 1, "probed once");

    // Selecting the managed identity explicitly skips the probe.
    emu.reset_counts();
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host()),
        (
            "AZURE_TOKEN_CREDENTIALS",
            "ManagedIdentityCredential".into(),
        ),
    ]));
    assert_eq!(c.links(), [ChainLink::ManagedIdentity]);
    c.get_token(&graph()).await.unwrap();
    assert_eq!(emu.requests(Endpoint::Imds), 1);
}

#[tokio::test]
async fn a_failing_managed_identity_does_not_fall_through_to_the_cli() {
    let cli = az("nofall");
    // App Service with a wrong identity header: the endpoint is there and refuses.
    let emu = Emulator::builder().start().await.unwrap();
    let c = chain(env(vec![
        ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
        ("IDENTITY_HEADER", "CANARY-wrong-header".into()),
        ("PATH", path_of(&cli)),
    ]));
    let err = c.get_token(&graph()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("managed-identity: App Service endpoint") && msg.contains("HTTP 401"),
        "{msg}"
    );
    assert!(
        !msg.contains("azure-cli"),
        "the chain stopped at the managed identity: {msg}"
    );
    assert!(!msg.contains("CANARY"));
    assert!(!err.is_unavailable());

    // IMDS answers the probe but the VM has no identity.
    let vm = Emulator::builder()
        .system_assigned(None)
        .identity(Identity::user_assigned("u"))
        .start()
        .await
        .unwrap();
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", vm.imds_host()),
        ("PATH", path_of(&cli)),
    ]));
    let err = c.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("Identity not found"), "{err}");
    assert!(!cli.0.join("ran").exists(), "the Azure CLI was never run");
}

#[tokio::test]
async fn something_that_is_no_imds_on_169_254_lets_the_chain_move_on() {
    // Docker Desktop answers 169.254.169.254 itself: the probe gets an answer, then the token
    // request gets a 403 saying the network is unreachable. A proxy or captive portal answers
    // with a page. None of them is a managed-identity endpoint, so the chain goes on to the
    // Azure CLI: "not available here" is kept apart from "available but failed".
    let docker = json!({"error": "unreachable", "error_description": "connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: dial tcp 169.254.169.254:80: connect: network is unreachable"});
    let cases = [
        ("docker-403", Reply::json(403, docker)),
        (
            "docker-403-error-only",
            Reply::json(403, json!({"error": "socket unreachable"})),
        ),
        (
            "portal",
            Reply::body(
                200,
                "text/html",
                "<html><body>Sign in to the Wi-Fi</body></html>",
            ),
        ),
        ("plain-403", Reply::body(403, "text/plain", "forbidden")),
        (
            "redirect",
            Reply::body(302, "text/plain", "").with_header("Location", "http://127.0.0.1:9/"),
        ),
    ];
    for (name, reply) in cases {
        let server = RawServer::start(reply).await;
        let cli = az(&format!("foreign-{name}"));
        let c = chain(env(vec![
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url("")),
            ("PATH", path_of(&cli)),
        ]));
        let token = c
            .get_token(&graph())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(token.secret(), "cli.token.x", "{name}");
        assert_eq!(c.selected(), Some(ChainLink::AzureCli), "{name}");
        // The probe and one token request: no retries against something that is no IMDS.
        assert_eq!(server.count(), 2, "{name}");
    }

    // Not for JSON cut short from the probed IMDS (a real IMDS can be cut off), nor for a
    // source the environment names (App Service answering with a page): those stop the chain.
    let cut = RawServer::start(Reply::body(
        200,
        "application/json",
        r#"{"access_token": "abc"#,
    ))
    .await;
    let app = RawServer::start(Reply::body(502, "text/html", "<html>bad gateway</html>")).await;
    for (name, vars) in [
        (
            "truncated",
            vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", cut.url(""))],
        ),
        (
            "app-service-page",
            vec![
                ("IDENTITY_ENDPOINT", app.url("/msi/token")),
                ("IDENTITY_HEADER", "h".to_owned()),
            ],
        ),
    ] {
        let cli = az(&format!("foreign-stop-{name}"));
        let mut vars = vars;
        vars.push(("PATH", path_of(&cli)));
        let err = chain(env(vars)).get_token(&graph()).await.unwrap_err();
        assert!(!err.is_unavailable(), "{name}: {err}");
        assert!(
            !cli.0.join("ran").exists(),
            "{name}: the Azure CLI was never run"
        );
    }

    // Without a CLI the error lists the managed-identity link as unavailable, with its reason.
    let server = RawServer::start(Reply::json(
        403,
        json!({"error": "forbidden", "error_description": "A socket operation was attempted to an unreachable network"}),
    ))
    .await;
    let empty = dir("foreign-none");
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url("")),
        ("PATH", path_of(&empty)),
    ]));
    let err = c.get_token(&graph()).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("managed-identity") && msg.contains("403"),
        "{msg}"
    );
    assert!(msg.contains("azure-cli"), "{msg}");
}

#[tokio::test]
async fn a_winner_that_becomes_unavailable_is_dropped_and_the_chain_walked_again() {
    // IMDS answers the probe and one token request, then something else answers in its place
    // (a captive portal's page): the remembered managed-identity link reports itself
    // unavailable, so the next call walks the chain again and the Azure CLI wins.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let server = RawServer::start(Reply::body(200, "text/html", "<html>portal</html>")).await;
    server.push(Reply::json(400, json!({"error": "invalid_request", "error_description": "Required metadata header not specified"})));
    server.push(Reply::json(
        200,
        support::imds_body("mi.token.x", now, 3600),
    ));
    let cli = az("winner-reset");
    let c = chain(env(vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url("")),
        ("PATH", path_of(&cli)),
    ]));
    let token = c.get_token(&graph()).await.unwrap();
    assert_eq!(token.secret(), "mi.token.x");
    assert_eq!(c.selected(), Some(ChainLink::ManagedIdentity));

    let token = c.get_token(&graph()).await.unwrap();
    assert_eq!(token.secret(), "cli.token.x");
    assert_eq!(c.selected(), Some(ChainLink::AzureCli));
    // The probe once; the remembered link, then the walk's managed-identity attempt.
    assert_eq!(server.count(), 4);

    // From then on the CLI is used directly.
    c.get_token(&graph()).await.unwrap();
    assert_eq!(server.count(), 4);
}
