//! The exit code 2 is only for what the command line alone shows wrong: a missing,
//! conflicting or malformed flag (clap usage errors). Every command line here is run in two
//! environments, a dead end and a working emulator, and exits 2 in both: it is wrong whatever
//! the environment. (The other rows of the table: `exit_codes.rs`.)

use crate::common;

use entra_mi_emulator::Emulator;

use common::{expect, refusing_port, run};

const GUID: &str = "11111111-2222-3333-4444-555555555555";

/// Command lines that are wrong whatever the environment: 2 where nothing answers and 2 with a
/// working emulator.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_command_lines_exit_2_in_every_environment() {
    let emu = Emulator::builder().start().await.unwrap();
    let working = vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host()),
        ("ENTRA_MI_GRAPH_URL", emu.base_url()),
    ];
    let token = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["token", "--resource", "https://graph.microsoft.com"];
        v.extend_from_slice(extra);
        v
    };
    let perms_list = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["perms", "list", "--identity", "orders-api"];
        v.extend_from_slice(extra);
        v
    };
    let grant = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec![
            "perms",
            "grant",
            "--identity",
            "orders-api",
            "--api",
            "graph",
        ];
        v.extend_from_slice(extra);
        v
    };
    let lines: Vec<Vec<&str>> = vec![
        // token: missing, conflicting, malformed.
        vec!["token"],
        vec![
            "token",
            "--resource",
            "https://a.example",
            "--scope",
            "https://b.example/.default",
        ],
        token(&["--client-id", GUID, "--object-id", GUID]),
        token(&["--client-id", "not-a-guid"]),
        token(&["--object-id", "1234"]),
        token(&["--resource-id", "/subscriptions/x/resourceGroups/rg"]),
        token(&["--credential", "azure-cli", "--client-id", GUID]),
        token(&["--credential", "environment", "--object-id", GUID]),
        token(&["--tenant", "contoso tenant"]),
        token(&["--timeout", "0"]),
        token(&["--timeout", "soon"]),
        token(&["--output", "yaml"]),
        vec!["token", "--resource", "graph.microsoft.com"],
        vec!["token", "--resource", "https://a.example https://b.example"],
        vec!["token", "--scope", "/.default"],
        // doctor
        vec!["doctor", "--resource", "not a uri"],
        vec!["doctor", "--client-id", "nope"],
        vec![
            "doctor",
            "--credential",
            "workload-identity",
            "--client-id",
            GUID,
        ],
        vec!["doctor", "--timeout", "0"],
        vec!["doctor", "--output", "yaml"],
        // perms
        vec!["perms", "list"],
        vec!["perms", "grant", "--identity", "orders-api", "--role", "R"],
        grant(&[]),
        grant(&["--role", ""]),
        vec![
            "perms",
            "revoke",
            "--identity",
            "orders-api",
            "--api",
            "sharepoint",
            "--role",
            "R",
        ],
        vec!["perms", "list", "--identity", ""],
        perms_list(&["--api", "not-an-app-id"]),
        perms_list(&["--graph-url", "http://graph.example.com"]),
        perms_list(&["--graph-url", "graph.microsoft.com"]),
        perms_list(&["--graph-url", "https://graph.microsoft.com/?x=1"]),
        perms_list(&["--client-id", "nope"]),
        perms_list(&["--credential", "azure-cli", "--client-id", GUID]),
        perms_list(&["--output", "xml"]),
        // emulator
        vec!["emulator", "--role", "just-one-part"],
        vec!["emulator", "--role", "a,,R"],
        vec![
            "emulator",
            "--identity",
            "a",
            "--role",
            "b,https://x.example,R",
        ],
        vec!["emulator", "--token-lifetime", "0"],
        vec!["emulator", "--token-lifetime", "315360001"],
        vec!["emulator", "--port", "70000"],
        vec!["emulator", "--identity", ""],
        vec!["emulator", "--env-for", "vm"],
        // completions and the command itself
        vec!["completions", "powershell-7"],
        vec!["frobnicate"],
        vec![],
    ];
    // A dead end (IMDS on a loopback port that refuses connections, no `az` on PATH) and a
    // working emulator: even a command line that were wrongly accepted reaches only loopback.
    let (_socket, port) = refusing_port();
    let dead_end = vec![
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            format!("http://127.0.0.1:{port}"),
        ),
        ("ENTRA_MI_GRAPH_URL", format!("http://127.0.0.1:{port}")),
        ("PATH", "/nonexistent".to_owned()),
    ];
    let environments = [dead_end, working];
    let runs = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for env in &environments {
            for line in &lines {
                out.push((
                    format!("{line:?} with {} variables", env.len()),
                    run(env, line),
                ));
            }
        }
        out
    })
    .await
    .unwrap();
    for (what, r) in &runs {
        expect(r, 2, what);
    }
}

#[test]
fn the_help_states_the_table() {
    let none: [(&str, String); 0] = [];
    let r = run(&none, &["--help"]);
    expect(&r, 0, "--help");
    let help = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for row in [
        "Exit codes (every subcommand):",
        "0 success",
        "1 anything that depends on the environment: no token, an unreachable or refusing endpoint, an expired token, a user-assigned selector the detected source cannot honour, an app role the API does not define, an invalid token given to `validate`",
        "2 only what the command line alone shows wrong: a missing, conflicting or malformed flag (clap usage errors)",
    ] {
        assert!(help.contains(row), "{row}\n{}", r.stdout);
    }
}
