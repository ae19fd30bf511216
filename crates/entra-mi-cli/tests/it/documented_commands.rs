//! The `entra-mi perms` walk-through of `docs/cli.md`, run as written: `entra-mi emulator
//! --identity orders-api` in one process, its printed environment in the other, and the
//! documented `perms` command lines, which work without any further setup because the
//! emulator's system-assigned identity holds Graph's `AppRoleAssignment.ReadWrite.All` and
//! `Application.Read.All`. With `--no-graph-admin` it does not, and Graph answers `403`.

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Stdio};

use crate::common::{entra_mi, run};

/// The walk-through's command lines, exactly as `docs/cli.md` shows them.
const WALK_THROUGH: [&str; 4] = [
    "entra-mi perms grant  --identity orders-api --api graph --role User.Read.All",
    "entra-mi perms list   --identity orders-api",
    "entra-mi perms revoke --identity orders-api --api graph --role User.Read.All --dry-run",
    "entra-mi perms revoke --identity orders-api --api graph --role User.Read.All",
];

/// The emulator's command line in the walk-through.
const EMULATOR: &str = "entra-mi emulator --identity orders-api";

/// A running `entra-mi emulator`, killed when dropped (also when a test fails).
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `entra-mi emulator <args> --print-env` and reads the `NAME=value` lines it prints,
/// up to `ENTRA_MI_GRAPH_URL`.
fn emulator(args: &[&str]) -> (Running, Vec<(String, String)>) {
    let none: [(&str, String); 0] = [];
    let mut child = entra_mi(&none)
        .args(args)
        .arg("--print-env")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines: Lines<BufReader<ChildStdout>> =
        BufReader::new(child.stdout.take().unwrap()).lines();
    let running = Running { child };
    let mut env = Vec::new();
    // Bounded: the emulator prints two lines for IMDS, three for App Service.
    for _ in 0..3 {
        let line = lines.next().expect("an environment line").unwrap();
        let (k, v) = line.split_once('=').expect("NAME=value");
        env.push((k.to_owned(), v.to_owned()));
        if k == "ENTRA_MI_GRAPH_URL" {
            return (running, env);
        }
    }
    panic!("no ENTRA_MI_GRAPH_URL among {env:?}");
}

/// The words of a documented command line after `entra-mi`.
fn words(line: &str) -> Vec<&str> {
    let mut w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.remove(0), "entra-mi");
    w
}

#[test]
fn the_walk_through_is_what_the_docs_show() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md"))
        .expect("docs/cli.md");
    for line in WALK_THROUGH.iter().chain([&EMULATOR]) {
        assert!(
            doc.lines().any(|l| l.trim() == *line),
            "docs/cli.md does not show `{line}`"
        );
    }
}

#[test]
fn the_documented_perms_commands_work_against_the_emulator_as_written() {
    let (_emulator, env) = emulator(&words(EMULATOR));
    assert_eq!(env[0].0, "AZURE_POD_IDENTITY_AUTHORITY_HOST");
    let expect = [
        "granted User.Read.All on Microsoft Graph to orders-api",
        "User.Read.All",
        "would revoke User.Read.All on Microsoft Graph from orders-api",
        "revoked User.Read.All on Microsoft Graph from orders-api",
    ];
    for (line, wanted) in WALK_THROUGH.iter().zip(expect) {
        let r = run(&env, &words(line));
        assert_eq!(r.code, 0, "{line}: {}", r.stderr);
        assert!(r.stdout.contains(wanted), "{line}: {}", r.stdout);
    }
    // The dry run changed nothing, the revoke did.
    let r = run(&env, &words(WALK_THROUGH[1]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("no app roles"), "{}", r.stdout);
}

/// `--role` puts a role in the identity's tokens (it is no Graph assignment: `perms list` does
/// not show it), beside the Graph roles the system-assigned identity holds by default.
#[test]
fn roles_given_on_the_emulator_command_line_are_in_the_tokens() {
    let (_emulator, env) = emulator(&[
        "emulator",
        "--role",
        "system,https://graph.microsoft.com,User.Read.All",
    ]);
    let r = run(
        &env,
        &[
            "token",
            "--resource",
            "https://graph.microsoft.com",
            "--output",
            "raw",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let payload = r.stdout.trim().split('.').nth(1).expect("a JWT").to_owned();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let mut roles: Vec<&str> = claims["roles"]
        .as_array()
        .expect("a roles claim")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(
        roles,
        [
            "AppRoleAssignment.ReadWrite.All",
            "Application.Read.All",
            "User.Read.All"
        ]
    );
}

#[test]
fn without_the_graph_administrator_perms_gets_graphs_403() {
    let (_emulator, env) = emulator(&["emulator", "--identity", "orders-api", "--no-graph-admin"]);
    let r = run(&env, &words(WALK_THROUGH[0]));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("403 Authorization_RequestDenied"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_app_service_environment_also_points_perms_at_the_emulators_graph() {
    let (_emulator, env) = emulator(&[
        "emulator",
        "--identity",
        "orders-api",
        "--env-for",
        "app-service",
    ]);
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "ENTRA_MI_GRAPH_URL"]
    );
    let r = run(&env, &words(WALK_THROUGH[0]));
    assert_eq!(r.code, 0, "{}", r.stderr);
}
