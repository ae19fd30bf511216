//! The exit-code contract, row by row, for every subcommand it applies to:
//!
//! | code | when |
//! |---|---|
//! | 0 | success |
//! | 1 | anything that depends on the environment: no token, an unreachable or refusing endpoint, an expired token, a user-assigned selector the detected source cannot honour, an app role the API does not define, an invalid token given to `validate` |
//! | 2 | only what the command line alone shows wrong: a missing, conflicting or malformed flag (clap usage errors) |
//!
//! The rows 0 and 1 here; the command lines that exit 2 are in `usage_errors.rs`. The
//! selector refusals are run beside the same command line succeeding on IMDS: the same
//! command line is 0 in one environment and 1, never 2, in another.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use entra_mi_emulator::{ApiApp, Emulator, Identity};

use common::{expect, refusing_port, run, run_async, run_with_closed_stdout, strings};

const GUID: &str = "11111111-2222-3333-4444-555555555555";

/// An emulator with a user-assigned identity, and a system-assigned administrator that may
/// change app-role assignments.
struct Fixture {
    emu: Emulator,
    app: Identity,
}

impl Fixture {
    async fn new() -> Fixture {
        let admin = Identity::system_assigned();
        let app = Identity::user_assigned("orders-api");
        let emu = Emulator::builder()
            .system_assigned(Some(admin.clone()))
            .identity(app.clone())
            .api(ApiApp::new("Orders API", "api://orders", &["Orders.Read"]))
            .roles(
                &admin.object_id,
                "https://graph.microsoft.com",
                &["AppRoleAssignment.ReadWrite.All", "Application.Read.All"],
            )
            .cache_tokens(false)
            .start()
            .await
            .unwrap();
        Fixture { emu, app }
    }

    /// IMDS and Graph on the emulator.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", self.emu.imds_host()),
            ("ENTRA_MI_GRAPH_URL", self.emu.base_url()),
        ]
    }

    /// The environments of the sources that cannot honour some selector.
    fn source(&self, name: &str) -> Vec<(&'static str, String)> {
        let e = &self.emu;
        match name {
            "service-fabric" => vec![
                ("IDENTITY_ENDPOINT", e.service_fabric_endpoint()),
                ("IDENTITY_HEADER", e.identity_header()),
                ("IDENTITY_SERVER_THUMBPRINT", e.service_fabric_thumbprint()),
            ],
            "azure-arc" => vec![
                ("IDENTITY_ENDPOINT", e.arc_endpoint()),
                ("IMDS_ENDPOINT", e.base_url()),
            ],
            "cloud-shell" => vec![("MSI_ENDPOINT", e.cloud_shell_endpoint())],
            "2017" => vec![
                ("MSI_ENDPOINT", e.msi_endpoint()),
                ("MSI_SECRET", e.msi_secret()),
            ],
            other => panic!("no source {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn token_rows() {
    let f = Fixture::new().await;
    let (_socket, port) = refusing_port();
    let dead = vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://127.0.0.1:{port}"),
    )];
    let graph = ["token", "--resource", "https://graph.microsoft.com"];

    // 0: a token.
    let r = run_async(f.env(), strings(&graph)).await;
    expect(&r, 0, "token on the emulator");
    // 1: no token, the endpoint unreachable.
    let mut args = graph.to_vec();
    args.extend(["--credential", "managed-identity", "--timeout", "2"]);
    let r = run_async(dead, strings(&args)).await;
    expect(&r, 1, "unreachable IMDS");
    // 1: a bad value in the environment.
    let r = run_async(
        vec![
            ("IDENTITY_ENDPOINT", "nonsense".into()),
            ("IDENTITY_HEADER", "x".into()),
        ],
        strings(&graph),
    )
    .await;
    expect(&r, 1, "malformed IDENTITY_ENDPOINT");
    // 1: the output cannot be written (not a panic, 101).
    let env = f.env();
    let mut args = graph.to_vec();
    args.extend(["--output", "raw"]);
    let r = tokio::task::spawn_blocking(move || run_with_closed_stdout(&env, &args))
        .await
        .unwrap();
    expect(&r, 1, "closed stdout");
    assert!(r.stderr.contains("standard output"), "{}", r.stderr);
    assert!(!r.stderr.contains("eyJ"), "{}", r.stderr);
}

/// Each source that cannot honour a selector refuses it with exit 1, while the same command
/// line gets a token on IMDS (exit 0): it is the environment that decides.
#[tokio::test(flavor = "multi_thread")]
async fn selector_refusals_exit_1_where_imds_exits_0() {
    let f = Fixture::new().await;
    let app = &f.app;
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "service-fabric",
            "--client-id",
            &app.client_id,
            "cannot select a user-assigned identity",
        ),
        (
            "azure-arc",
            "--client-id",
            &app.client_id,
            "cannot select a user-assigned identity",
        ),
        (
            "cloud-shell",
            "--client-id",
            &app.client_id,
            "cannot select a user-assigned identity",
        ),
        ("2017", "--object-id", &app.object_id, "only by client id"),
        (
            "2017",
            "--resource-id",
            &app.resource_id,
            "only by client id",
        ),
    ];
    for (source, flag, id, reason) in cases {
        let token = [
            "token",
            "--resource",
            "https://graph.microsoft.com",
            flag,
            id,
        ];
        let r = run_async(f.env(), strings(&token)).await;
        expect(&r, 0, &format!("{flag} on IMDS"));
        let r = run_async(f.source(source), strings(&token)).await;
        expect(&r, 1, &format!("token {flag} on {source}"));
        assert!(r.stderr.contains(reason), "{source}: {}", r.stderr);
        let doctor = ["doctor", flag, id, "--timeout", "5"];
        let r = run_async(f.source(source), strings(&doctor)).await;
        expect(&r, 1, &format!("doctor {flag} on {source}"));
        assert!(r.stdout.contains(reason), "{source}: {}", r.stdout);
        // The administrator's selector of `perms`, refused before Graph is asked anything.
        let before = f.emu.graph_requests();
        let mut env = f.source(source);
        env.push(("ENTRA_MI_GRAPH_URL", f.emu.base_url()));
        let perms = ["perms", "list", "--identity", "orders-api", flag, id];
        let r = run_async(env, strings(&perms)).await;
        expect(&r, 1, &format!("perms {flag} on {source}"));
        assert!(r.stderr.contains(reason), "{source}: {}", r.stderr);
        assert_eq!(f.emu.graph_requests(), before);
    }
}

/// A selector with `--credential auto` when the chain would answer with another credential
/// (the Azure CLI, as `AZURE_TOKEN_CREDENTIALS=dev` selects): 1, and the other credential is
/// never asked.
#[tokio::test(flavor = "multi_thread")]
async fn a_selector_the_chain_would_ignore_exits_1() {
    let dir = common::scratch("exit-selector-az");
    let path = common::stand_in_az(&dir);
    let r = run_async(
        vec![("PATH", path), ("AZURE_TOKEN_CREDENTIALS", "dev".into())],
        strings(&[
            "token",
            "--resource",
            "https://graph.microsoft.com",
            "--client-id",
            GUID,
        ]),
    )
    .await;
    expect(&r, 1, "selector with AZURE_TOKEN_CREDENTIALS=dev");
    assert!(
        r.stderr.contains("select a managed identity"),
        "{}",
        r.stderr
    );
    assert!(!dir.join("az-ran").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_rows() {
    let f = Fixture::new().await;
    let (_socket, port) = refusing_port();
    let r = run_async(f.env(), strings(&["doctor"])).await;
    expect(&r, 0, "doctor on the emulator");
    let r = run_async(
        vec![(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://127.0.0.1:{port}"),
        )],
        strings(&[
            "doctor",
            "--credential",
            "managed-identity",
            "--timeout",
            "2",
        ]),
    )
    .await;
    expect(&r, 1, "doctor, unreachable IMDS");
    assert!(r.stdout.contains("Error:"), "{}", r.stdout);
    let env = f.env();
    let r = tokio::task::spawn_blocking(move || run_with_closed_stdout(&env, &["doctor"]))
        .await
        .unwrap();
    expect(&r, 1, "doctor, closed stdout");
}

#[tokio::test(flavor = "multi_thread")]
async fn perms_rows() {
    let f = Fixture::new().await;
    let (_socket, port) = refusing_port();
    let oid = f.app.object_id.clone();
    let change = |verb: &str, role: &str| {
        strings(&[
            "perms",
            verb,
            "--identity",
            &oid,
            "--api",
            "graph",
            "--role",
            role,
        ])
    };
    // 0: grant, list, revoke.
    let r = run_async(f.env(), change("grant", "User.Read.All")).await;
    expect(&r, 0, "grant");
    let r = run_async(f.env(), strings(&["perms", "list", "--identity", &oid])).await;
    expect(&r, 0, "list");
    assert!(r.stdout.contains("User.Read.All"), "{}", r.stdout);
    let r = run_async(f.env(), change("revoke", "User.Read.All")).await;
    expect(&r, 0, "revoke");
    // 1: an app role the API does not define, granted or revoked.
    for verb in ["grant", "revoke"] {
        let r = run_async(f.env(), change(verb, "No.Such.Role")).await;
        expect(&r, 1, &format!("{verb} No.Such.Role"));
        assert!(
            r.stderr
                .contains("Microsoft Graph has no application role \"No.Such.Role\""),
            "{}",
            r.stderr
        );
    }
    // 1: an identity name that is not unique here.
    let admin = Identity::system_assigned();
    let twins = Emulator::builder()
        .system_assigned(Some(admin.clone()))
        .roles(
            &admin.object_id,
            "https://graph.microsoft.com",
            &["Application.Read.All"],
        )
        .identity(Identity::user_assigned("twin"))
        .identity(Identity::user_assigned("twin"))
        .start()
        .await
        .unwrap();
    let r = run_async(
        vec![
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", twins.imds_host()),
            ("ENTRA_MI_GRAPH_URL", twins.base_url()),
        ],
        strings(&["perms", "list", "--identity", "twin"]),
    )
    .await;
    expect(&r, 1, "an ambiguous name");
    assert!(
        r.stderr.contains("2 service principals are named \"twin\""),
        "{}",
        r.stderr
    );
    // 1: Graph unreachable (loopback, with the emulator's token: allowed, then refused).
    for verb in ["list", "grant", "revoke"] {
        let mut args = if verb == "list" {
            strings(&["perms", "list", "--identity", &oid])
        } else {
            change(verb, "User.Read.All")
        };
        args.extend(strings(&[
            "--graph-url",
            &format!("http://127.0.0.1:{port}"),
        ]));
        let r = run_async(f.env(), args).await;
        expect(&r, 1, &format!("{verb}, Graph unreachable"));
        assert!(r.stderr.contains("Microsoft Graph"), "{}", r.stderr);
    }
    // 1: a malformed ENTRA_MI_GRAPH_URL is the environment's, where --graph-url is 2 below.
    let r = run_async(
        vec![
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", f.emu.imds_host()),
            ("ENTRA_MI_GRAPH_URL", "http://graph.example.com".into()),
        ],
        strings(&["perms", "list", "--identity", &oid]),
    )
    .await;
    expect(&r, 1, "malformed ENTRA_MI_GRAPH_URL");
    assert!(r.stderr.contains("ENTRA_MI_GRAPH_URL"), "{}", r.stderr);
    // 1: the output cannot be written.
    let env = f.env();
    let list = ["perms", "list", "--identity", &oid, "--output", "json"].map(str::to_owned);
    let r = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = list.iter().map(String::as_str).collect();
        run_with_closed_stdout(&env, &args)
    })
    .await
    .unwrap();
    expect(&r, 1, "list, closed stdout");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn emulator_rows() {
    let none: Vec<(&'static str, String)> = Vec::new();
    // 0: serves until Ctrl-C.
    let mut child = common::entra_mi(&none)
        .args(["emulator", "--print-env"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(line.starts_with("AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:"));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the emulator did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));

    // 1: the port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let r = run_async(none.clone(), strings(&["emulator", "--port", &port])).await;
    expect(&r, 1, "port taken");
    assert!(
        r.stderr.contains("cannot start the emulator"),
        "{}",
        r.stderr
    );
    // 1: what the configuration file says, including a role for an identity it lacks.
    let dir = common::scratch("exit-emulator");
    let config = dir.join("c.json");
    std::fs::write(&config, r#"{"identities": ["a"]}"#).unwrap();
    let c = config.to_str().unwrap();
    let r = run_async(
        none.clone(),
        strings(&[
            "emulator",
            "--config",
            c,
            "--role",
            "b,api://x,R",
            "--port",
            &port,
        ]),
    )
    .await;
    expect(&r, 1, "--role names an identity the file lacks");
    assert!(r.stderr.contains("unknown identity \"b\""), "{}", r.stderr);
    let r = run_async(
        none.clone(),
        strings(&["emulator", "--config", "/nonexistent/entra-mi.json"]),
    )
    .await;
    expect(&r, 1, "no such --config file");
    // 1: the environment lines cannot be written.
    let r = tokio::task::spawn_blocking(move || {
        run_with_closed_stdout(&none, &["emulator", "--print-env"])
    })
    .await
    .unwrap();
    expect(&r, 1, "emulator, closed stdout");
    drop(taken);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completions_rows() {
    let none: [(&str, String); 0] = [];
    let r = run(&none, &["completions", "bash"]);
    expect(&r, 0, "completions bash");
    let r = run_with_closed_stdout(&none, &["completions", "bash"]);
    expect(&r, 1, "completions, closed stdout");
    for args in [vec!["completions"], vec!["completions", "tcsh"]] {
        let r = run(&none, &args);
        expect(&r, 2, &format!("{args:?}"));
    }
}
