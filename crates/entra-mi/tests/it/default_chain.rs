//! `DefaultCredential`: link order, `AZURE_TOKEN_CREDENTIALS`, the one IMDS probe, the sticky
//! winner, no fall-through after a managed-identity failure, and the aggregated error.
#![cfg(unix)]

use entra_mi_test_support as support;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_mi::credentials::ChainLink;
use entra_mi::{Audience, DefaultCredential, Environment, Error, TokenCredential, TokenRequest};
use entra_mi_emulator::{
    App, Emulator, Endpoint, FEDERATED_ISSUER, Identity, TOKEN_EXCHANGE_AUDIENCE,
};
use serde_json::json;
use support::{RawServer, Reply, jwt_claims};

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("entra-mi-chain-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// A stand-in `az` that succeeds and leaves a marker file when it runs.
fn az(tag: &str) -> Dir {
    let d = dir(tag);
    let expires_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let path = d.0.join("az");
    support::script::write_executable(
        &path,
        &format!(
            "#!/bin/sh\ntouch \"$(dirname \"$0\")/ran\"\necho '{{\"accessToken\": \"cli.token.x\", \"expires_on\": {expires_on}, \"tokenType\": \"Bearer\"}}'\n"
        ),
    );
    d
}

fn env(vars: Vec<(&str, String)>) -> Environment {
    Environment::from_vars(vars)
}

fn path_of(d: &Dir) -> String {
    format!("{}:/usr/bin:/bin", d.0.display())
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn chain(env: Environment) -> DefaultCredential {
    DefaultCredential::builder()
        .environment(env)
        .allow_loopback_http(true)
        .imds_probe_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

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
    // Azure CLI (pitfall: "separate not available here from available but failed").
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
        matches!(&err, Error::Deadline(entra_mi::error::DeadlineError::Caller { credential, deadline: d, .. }) if credential == "default" && *d == deadline),
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
        matches!(
            &err,
            Error::Deadline(entra_mi::error::DeadlineError::Caller { last: Some(_), .. })
        ),
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
    match err {
        Error::Configuration(entra_mi::error::ConfigurationError::Setting { setting, reason }) => {
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
        matches!(&err, Error::Configuration(entra_mi::error::ConfigurationError::Setting { setting, .. }) if setting == "AZURE_TENANT_ID"),
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
        matches!(
            err,
            Error::Configuration(entra_mi::error::ConfigurationError::Setting { .. })
        ),
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
