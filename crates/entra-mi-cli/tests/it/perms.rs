//! End-to-end: `entra-mi perms` against the emulator's Microsoft Graph, with a managed identity
//! of the emulator as the administrator.

use std::time::{Duration, Instant};

use crate::common;

use base64::Engine;
use entra_mi_emulator::{ApiApp, Emulator, GraphRejection, Identity};
use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Fixture {
    emu: Emulator,
    app: Identity,
    orders: ApiApp,
}

impl Fixture {
    async fn new() -> Fixture {
        let admin = Identity::system_assigned();
        let app = Identity::user_assigned("orders-api");
        let twin_a = Identity::user_assigned("twin");
        let twin_b = Identity::user_assigned("twin");
        let many: Vec<String> = (0..120).map(|i| format!("Scope{i:03}.Read")).collect();
        let many_refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let orders =
            ApiApp::new("Orders API", "api://orders", &many_refs).with_user_role("Orders.Approve");
        let emu = Emulator::builder()
            .system_assigned(Some(admin.clone()))
            .identity(app.clone())
            .identity(twin_a)
            .identity(twin_b)
            .api(orders.clone())
            .roles(
                &admin.object_id,
                "https://graph.microsoft.com",
                &["AppRoleAssignment.ReadWrite.All", "Application.Read.All"],
            )
            .cache_tokens(false)
            .start()
            .await
            .unwrap();
        Fixture { emu, app, orders }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", self.emu.imds_host()),
            ("ENTRA_MI_GRAPH_URL", self.emu.base_url()),
        ]
    }

    async fn run(&self, args: &[&str]) -> Out {
        let env = self.env();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = common::entra_mi(&env).args(&args).output().unwrap();
            Out {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .unwrap()
    }

    /// The `roles` claim of a fresh token of the app for `resource`.
    async fn roles(&self, resource: &str) -> Value {
        let out = self
            .run(&[
                "token",
                "--resource",
                resource,
                "--client-id",
                &self.app.client_id,
                "--output",
                "raw",
            ])
            .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let part = out.stdout.trim().split('.').nth(1).unwrap().to_owned();
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap();
        claims["roles"].clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grant_then_token_has_the_role_then_revoke_then_it_does_not() {
    let f = Fixture::new().await;
    let oid = f.app.object_id.clone();
    assert_eq!(f.roles("https://graph.microsoft.com").await, Value::Null);

    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            "User.Read.All",
            "--role",
            "Group.Read.All",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("granted User.Read.All on Microsoft Graph"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("up to 24 h"), "{}", out.stdout);
    let roles = f.roles("https://graph.microsoft.com").await;
    assert_eq!(
        roles,
        serde_json::json!(["User.Read.All", "Group.Read.All"])
    );

    // Idempotent: a second grant changes nothing.
    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            "orders-api",
            "--api",
            "graph",
            "--role",
            "User.Read.All",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["changes"][0]["action"], "already-granted");
    assert_eq!(v["identity"]["id"], oid.as_str());

    let out = f
        .run(&["perms", "list", "--identity", &oid, "--output", "json"])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let listed: Vec<&str> = v["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["User.Read.All", "Group.Read.All"]);

    let out = f
        .run(&[
            "perms",
            "revoke",
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            "User.Read.All",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("revoked User.Read.All"),
        "{}",
        out.stdout
    );
    assert_eq!(
        f.roles("https://graph.microsoft.com").await,
        serde_json::json!(["Group.Read.All"])
    );
    let out = f
        .run(&[
            "perms",
            "revoke",
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            "User.Read.All",
        ])
        .await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("no change"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_changes_nothing() {
    let f = Fixture::new().await;
    let oid = f.app.object_id.clone();
    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            "Mail.Send",
            "--dry-run",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("would grant Mail.Send"),
        "{}",
        out.stdout
    );
    let out = f.run(&["perms", "list", "--identity", &oid]).await;
    assert!(out.stdout.contains("no app roles"), "{}", out.stdout);
    f.run(&[
        "perms",
        "grant",
        "--identity",
        &oid,
        "--api",
        "graph",
        "--role",
        "Mail.Send",
    ])
    .await;
    let out = f
        .run(&[
            "perms",
            "revoke",
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            "Mail.Send",
            "--dry-run",
            "--output",
            "json",
        ])
        .await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["changes"][0]["action"], "would-revoke");
    assert_eq!(v["dryRun"], true);
    assert_eq!(
        f.roles("https://graph.microsoft.com").await,
        serde_json::json!(["Mail.Send"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_roles_list_the_valid_ones() {
    let f = Fixture::new().await;
    let oid = f.app.object_id.clone();
    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            "User.Read.Everything",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("valid ones: AppRoleAssignment.ReadWrite.All, Application.Read.All"),
        "{}",
        out.stderr
    );
    // A role only users may hold is not offered to an identity.
    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            &oid,
            "--api",
            &f.orders.app_id,
            "--role",
            "Orders.Approve",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        !out.stderr.contains("valid ones: Orders.Approve"),
        "{}",
        out.stderr
    );
    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            &oid,
            "--api",
            "arm",
            "--role",
            "Reader",
        ])
        .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("defines none"), "{}", out.stderr);
    let out = f
        .run(&[
            "perms",
            "grant",
            "--identity",
            &oid,
            "--api",
            "sharepoint",
            "--role",
            "X",
        ])
        .await;
    assert_eq!(
        out.code, 2,
        "a malformed --api is a usage error: {}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn identities_by_name_client_id_and_ambiguity() {
    let f = Fixture::new().await;
    let out = f.run(&["perms", "list", "--identity", "twin"]).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("2 service principals are named \"twin\""),
        "{}",
        out.stderr
    );
    let out = f.run(&["perms", "list", "--identity", "nobody"]).await;
    assert_eq!(out.code, 1);
    let out = f
        .run(&[
            "perms",
            "list",
            "--identity",
            &f.app.client_id,
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["identity"]["id"],
        f.app.object_id.as_str(),
        "found by client id"
    );
    let out = f
        .run(&[
            "perms",
            "list",
            "--identity",
            "99999999-9999-9999-9999-999999999999",
        ])
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no service principal"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_follow_paging_and_roles_reach_custom_api_tokens() {
    let f = Fixture::new().await;
    let oid = f.app.object_id.clone();
    let mut args: Vec<String> = [
        "perms",
        "grant",
        "--identity",
        &oid,
        "--api",
        &f.orders.app_id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..120 {
        args.push("--role".into());
        args.push(format!("Scope{i:03}.Read"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = f.run(&refs).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = f
        .run(&[
            "perms",
            "list",
            "--identity",
            &oid,
            "--api",
            &f.orders.app_id,
            "--output",
            "json",
        ])
        .await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["assignments"].as_array().unwrap().len(),
        120,
        "both pages"
    );
    let roles = f.roles("api://orders").await;
    assert_eq!(roles.as_array().unwrap().len(), 120);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_waited_out_and_graph_errors_are_shown() {
    let f = Fixture::new().await;
    let oid = f.app.object_id.clone();
    f.emu.push_graph_rejection(GraphRejection::Throttled(1));
    let started = Instant::now();
    let out = f.run(&["perms", "list", "--identity", &oid]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );

    // An administrator without write permission gets Graph's own words.
    let weak = Emulator::builder()
        .identity(f.app.clone())
        .start()
        .await
        .unwrap();
    let env = [
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", weak.imds_host()),
        ("ENTRA_MI_GRAPH_URL", weak.base_url()),
    ];
    let oid2 = oid.clone();
    let out = tokio::task::spawn_blocking(move || {
        common::entra_mi(&env)
            .args(["perms", "list", "--identity", &oid2])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("403")
            && stderr.contains("Authorization_RequestDenied")
            && stderr.contains("Insufficient privileges"),
        "{stderr}"
    );

    let out = f
        .run(&[
            "perms",
            "list",
            "--identity",
            &oid,
            "--graph-url",
            "http://graph.example.com",
        ])
        .await;
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("https"), "{}", out.stderr);
}
