//! `perms` with a Microsoft Graph URL on loopback: the token it gets is for the real Microsoft
//! Graph audience, so it goes to a local port only when it came from a local token source too
//! (the emulator). A token source elsewhere (here the Azure CLI, a stand-in `az`) is refused
//! before any token is asked for: the stand-in never runs and the loopback "Graph" sees no
//! request at all.

use crate::common;

use entra_mi_emulator::{Emulator, Identity};
use serde_json::Value;

use common::server::Canned;
use common::{run_async, strings};

/// An emulator whose system-assigned identity may read app-role assignments, and an app.
async fn emulator() -> (Emulator, Identity) {
    let admin = Identity::system_assigned();
    let app = Identity::user_assigned("orders-api");
    let emu = Emulator::builder()
        .system_assigned(Some(admin.clone()))
        .identity(app.clone())
        .roles(
            &admin.object_id,
            "https://graph.microsoft.com",
            &["Application.Read.All"],
        )
        .start()
        .await
        .unwrap();
    (emu, app)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_graph_is_used_with_the_emulators_managed_identity() {
    let (emu, app) = emulator().await;
    let imds = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host());
    // The Graph URL as a flag, with the default chain and with the managed identity alone.
    for credential in ["auto", "managed-identity"] {
        let r = run_async(
            vec![imds.clone()],
            strings(&[
                "perms",
                "list",
                "--identity",
                &app.object_id,
                "--credential",
                credential,
                "--graph-url",
                &emu.base_url(),
                "--output",
                "json",
            ]),
        )
        .await;
        assert_eq!(r.code, 0, "{credential}: {}", r.stderr);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["identity"]["id"], app.object_id.as_str());
    }
    // The Graph URL from the environment, the token from App Service's endpoint.
    let before = emu.graph_requests();
    let r = run_async(
        vec![
            ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
            ("IDENTITY_HEADER", emu.identity_header()),
            ("ENTRA_MI_GRAPH_URL", emu.base_url()),
        ],
        strings(&["perms", "list", "--identity", "orders-api"]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("orders-api ("), "{}", r.stdout);
    assert!(emu.graph_requests() > before);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_azure_cli_never_hands_its_token_to_a_loopback_graph() {
    let graph = Canned::start(200, "application/json", r#"{"value": []}"#.into()).await;
    let dir = common::scratch("loopback-az");
    let path = common::stand_in_az(&dir);
    let by_flag = run_async(
        vec![("PATH", path.clone())],
        strings(&[
            "perms",
            "list",
            "--identity",
            "orders-api",
            "--credential",
            "azure-cli",
            "--graph-url",
            &graph.url,
        ]),
    )
    .await;
    let by_variable = run_async(
        vec![("PATH", path), ("ENTRA_MI_GRAPH_URL", graph.url.clone())],
        strings(&[
            "perms",
            "grant",
            "--identity",
            "orders-api",
            "--api",
            "graph",
            "--role",
            "User.Read.All",
            "--credential",
            "azure-cli",
        ]),
    )
    .await;
    for r in [&by_flag, &by_variable] {
        // The environment, not the command line, makes it wrong: exit 1.
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(
            r.stderr
                .starts_with("entra-mi: the Graph URL http://127.0.0.1:")
                && r.stderr.contains("is on loopback")
                && r.stderr.contains("from the Azure CLI"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("AZ-CLI-TOKEN-CANARY"));
    }
    assert!(
        !dir.join("az-ran").exists(),
        "a token was asked of the Azure CLI"
    );
    assert!(
        graph.requests().is_empty(),
        "the loopback Graph was called: {:?}",
        graph.requests()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The default chain probes IMDS and, when what answers is no IMDS (here an HTML `403`, as
/// Docker Desktop sends for 169.254.169.254), moves on to the Azure CLI. With a loopback Graph
/// the chain is narrowed to the managed identity it was judged by, so the failure stops there.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_imds_probe_does_not_hand_a_loopback_graph_to_the_azure_cli() {
    let not_imds = Canned::start(
        403,
        "text/html",
        "<html><body>403 Forbidden</body></html>".into(),
    )
    .await;
    let graph = Canned::start(200, "application/json", r#"{"value": []}"#.into()).await;
    let dir = common::scratch("loopback-probe");
    let path = common::stand_in_az(&dir);
    let r = run_async(
        vec![
            ("PATH", path),
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", not_imds.url.clone()),
            ("ENTRA_MI_GRAPH_URL", graph.url.clone()),
        ],
        strings(&["perms", "list", "--identity", "orders-api"]),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("managed-identity"), "{}", r.stderr);
    assert!(!not_imds.requests().is_empty(), "IMDS was asked");
    assert!(
        !dir.join("az-ran").exists(),
        "the chain moved on to the Azure CLI"
    );
    assert!(
        graph.requests().iter().all(|s| !s.authorization),
        "a token reached the loopback Graph: {:?}",
        graph.requests()
    );
    assert!(graph.requests().is_empty(), "{:?}", graph.requests());
    std::fs::remove_dir_all(&dir).unwrap();
}
