//! End-to-end: the built `entra-mi` binary against the emulator, for every subcommand, flag and
//! error path.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

use base64::Engine;
use entra_mi_emulator::{Emulator, Identity};
use serde_json::Value;

fn bin<K: AsRef<str>>(env: &[(K, String)]) -> Command {
    common::entra_mi(env)
}

use common::run;

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn emulator() -> (Emulator, Identity) {
    let uami = Identity::user_assigned("orders-api");
    let emu = Emulator::builder()
        .identity(uami.clone())
        .roles(
            &uami.object_id,
            "https://graph.microsoft.com",
            &["User.Read.All"],
        )
        .start()
        .await
        .unwrap();
    (emu, uami)
}

fn imds_env(emu: &Emulator) -> Vec<(&'static str, String)> {
    vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host())]
}

#[tokio::test(flavor = "multi_thread")]
async fn token_prints_the_az_cli_fields() {
    let (emu, _) = emulator().await;
    let env = imds_env(&emu);
    let r = tokio::task::spawn_blocking(move || {
        run(
            &env,
            &["token", "--resource", "https://management.azure.com/"],
        )
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let token = v["accessToken"].as_str().unwrap();
    assert_eq!(claims(token)["aud"], "https://management.azure.com/");
    assert_eq!(v["tokenType"], "Bearer");
    assert_eq!(v["resource"], "https://management.azure.com/");
    assert_eq!(v["source"], "managed-identity/imds");
    let exp = v["expires_on"].as_u64().expect("expires_on is an integer");
    assert_eq!(exp, claims(token)["exp"].as_u64().unwrap());
    let local = v["expiresOn"].as_str().unwrap();
    // YYYY-MM-DD HH:MM:SS.ffffff
    assert_eq!(local.len(), 26, "{local}");
    assert_eq!(&local[4..5], "-");
    assert_eq!(&local[10..11], " ");
    assert_eq!(&local[19..20], ".");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_output_scope_alias_and_user_assigned_ids() {
    let (emu, uami) = emulator().await;
    let env = imds_env(&emu);
    let r = tokio::task::spawn_blocking(move || {
        let raw = run(
            &env,
            &[
                "token",
                "--scope",
                "https://graph.microsoft.com/.default",
                "--output",
                "raw",
                "--client-id",
                &uami.client_id,
            ],
        );
        let by_oid = run(
            &env,
            &[
                "token",
                "--resource",
                "https://graph.microsoft.com",
                "--object-id",
                &uami.object_id,
                "--output",
                "raw",
            ],
        );
        let by_rid = run(
            &env,
            &[
                "token",
                "--resource",
                "https://graph.microsoft.com",
                "--resource-id",
                &uami.resource_id,
                "--output",
                "raw",
            ],
        );
        (raw, by_oid, by_rid, uami)
    })
    .await
    .unwrap();
    let (raw, by_oid, by_rid, uami) = r;
    for r in [&raw, &by_oid, &by_rid] {
        assert_eq!(r.code, 0, "{}", r.stderr);
        let token = r.stdout.trim_end();
        assert_eq!(r.stdout.lines().count(), 1);
        let c = claims(token);
        assert_eq!(c["aud"], "https://graph.microsoft.com");
        assert_eq!(c["oid"], uami.object_id.as_str());
        assert_eq!(c["roles"], serde_json::json!(["User.Read.All"]));
    }
}

#[test]
fn usage_errors_exit_2() {
    let none: [(&str, String); 0] = [];
    for args in [
        vec!["token"],
        vec!["token", "--resource", "graph.microsoft.com"],
        vec![
            "token",
            "--resource",
            "https://graph.microsoft.com",
            "--client-id",
            "a",
            "--object-id",
            "b",
        ],
        vec![
            "token",
            "--resource",
            "https://graph.microsoft.com",
            "--client-id",
            "not-a-guid",
        ],
        vec![
            "token",
            "--resource",
            "https://a.example",
            "--scope",
            "https://b.example/.default",
        ],
        vec![
            "token",
            "--resource",
            "https://graph.microsoft.com",
            "--output",
            "yaml",
        ],
        vec!["frobnicate"],
        vec!["emulator", "--role", "just-one-part"],
        vec!["emulator", "--token-lifetime", "0"],
    ] {
        let r = run(&none, &args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_exit_1_without_secrets() {
    let emu = Emulator::builder()
        .identity_header("HEADER-SECRET-CANARY")
        .start()
        .await
        .unwrap();
    let app_env = vec![
        ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
        ("IDENTITY_HEADER", "HEADER-SECRET-CANARY".to_string()),
    ];
    let imds = imds_env(&emu);
    // Bound but not listening, and kept until the end of the test: connections are refused
    // (a port released at once could be taken by another test's server meanwhile).
    let refused = tokio::net::TcpSocket::new_v4().unwrap();
    refused.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = refused.local_addr().unwrap().port();
    let dead = vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://127.0.0.1:{port}"),
    )];
    let (unknown, unreachable, bad_env, doctor) = tokio::task::spawn_blocking(move || {
        (
            run(
                &app_env,
                &[
                    "token",
                    "--resource",
                    "https://vault.azure.net",
                    "--client-id",
                    "99999999-9999-9999-9999-999999999999",
                ],
            ),
            run(
                &dead,
                &[
                    "token",
                    "--resource",
                    "https://vault.azure.net",
                    "--timeout",
                    "3",
                ],
            ),
            run(
                &[
                    ("IDENTITY_ENDPOINT", "nonsense".into()),
                    ("IDENTITY_HEADER", "x".into()),
                ],
                &["token", "--resource", "https://vault.azure.net"],
            ),
            run(
                &imds,
                &[
                    "doctor",
                    "--client-id",
                    "99999999-9999-9999-9999-999999999999",
                ],
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("No Managed Identity found"),
        "{}",
        unknown.stderr
    );
    assert!(!unknown.stderr.contains("HEADER-SECRET-CANARY") && unknown.stdout.is_empty());
    assert_eq!(unreachable.code, 1);
    assert!(
        unreachable.stderr.contains("connection failed"),
        "{}",
        unreachable.stderr
    );
    assert_eq!(bad_env.code, 1);
    assert!(!bad_env.stderr.contains("HEADER-SECRET-CANARY"));
    assert!(
        bad_env.stderr.contains("IDENTITY_ENDPOINT"),
        "{}",
        bad_env.stderr
    );
    assert_eq!(doctor.code, 1);
    assert!(
        doctor.stdout.contains("Hint:")
            && doctor.stdout.contains("no managed identity is assigned"),
        "{}",
        doctor.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_explains_and_never_shows_secrets() {
    let (emu, uami) = emulator().await;
    let app_env = vec![
        ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
        ("IDENTITY_HEADER", emu.identity_header()),
    ];
    let secret = emu.identity_header();
    let (human, json) = tokio::task::spawn_blocking(move || {
        (
            run(
                &app_env,
                &[
                    "doctor",
                    "--resource",
                    "https://graph.microsoft.com",
                    "--client-id",
                    &uami.client_id,
                ],
            ),
            run(&app_env, &["doctor", "--output", "json"]),
        )
    })
    .await
    .unwrap();
    assert_eq!(human.code, 0, "{}", human.stderr);
    for needle in [
        "IDENTITY_HEADER",
        "app-service",
        "IDENTITY_ENDPOINT and IDENTITY_HEADER are set",
        "roles",
        "User.Read.All",
        "aud",
    ] {
        assert!(human.stdout.contains(needle), "{needle}: {}", human.stdout);
    }
    assert!(
        !human.stdout.contains(&secret),
        "the identity header value leaked"
    );
    assert!(!human.stdout.contains("eyJ"), "a token leaked");
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["source"], "app-service");
    assert_eq!(v["credential"], "managed-identity/app-service");
    assert_eq!(v["variables"]["IDENTITY_HEADER"], true);
    assert_eq!(v["claims"]["aud"], "https://management.azure.com/");
    assert!(v["elapsed_ms"].is_u64());
    assert!(!json.stdout.contains(&secret) && !json.stdout.contains("eyJ"));
}

#[test]
fn help_and_completions() {
    let none: [(&str, String); 0] = [];
    let r = run(&none, &["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Examples:") && r.stdout.contains("entra-mi token --resource"));
    for sub in [
        vec!["token"],
        vec!["doctor"],
        vec!["emulator"],
        vec!["completions"],
        vec!["perms", "list"],
        vec!["perms", "grant"],
        vec!["perms", "revoke"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let r = run(&none, &args);
        assert_eq!(r.code, 0, "{sub:?}");
        assert!(
            r.stdout.contains("Example"),
            "{sub:?} --help has examples: {}",
            r.stdout
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let r = run(&none, &["completions", shell]);
        assert_eq!(r.code, 0);
        assert!(
            r.stdout.contains("entra-mi") && r.stdout.len() > 500,
            "{shell}"
        );
    }
}

/// Runs `entra-mi emulator` as a child, reads its environment lines, uses them, stops it with
/// SIGINT (what Ctrl-C sends).
#[test]
fn the_emulator_subcommand_serves_an_unmodified_client_and_stops_on_ctrl_c() {
    let dir = std::env::temp_dir().join(format!("entra-mi-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("emulator.json");
    std::fs::write(
        &config,
        r#"{"token_lifetime": 600, "identities": ["billing"], "roles": [{"identity": "billing", "audience": "api://orders", "roles": ["Orders.Read", "Orders.Write"]}]}"#,
    )
    .unwrap();
    for env_for in ["imds", "app-service"] {
        let none: [(&str, String); 0] = [];
        let mut child = bin(&none)
            .args(["emulator", "--print-env", "--env-for", env_for, "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let expected = if env_for == "imds" { 1 } else { 2 };
        let mut env = Vec::new();
        for _ in 0..expected {
            let line = lines.next().unwrap().unwrap();
            let (k, v) = line.split_once('=').unwrap();
            env.push((k.to_string(), v.to_string()));
        }
        let r = run(
            &env,
            &["token", "--resource", "api://orders", "--output", "raw"],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let c = claims(r.stdout.trim());
        assert_eq!(c["aud"], "api://orders");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);

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
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the emulator did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(exit.success(), "{exit:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_emulator_refuses_bad_config_files_with_exit_1() {
    let none: [(&str, String); 0] = [];
    let dir = std::env::temp_dir().join(format!("entra-mi-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (body, needle) in [
        ("{not json", "not valid JSON"),
        ("[1]", "JSON object"),
        (r#"{"port": 70000}"#, "port"),
        (r#"{"identities": [1]}"#, "strings"),
        (r#"{"colour": "blue"}"#, "unknown key"),
        (r#"{"roles": [{"identity": "x"}]}"#, "audience"),
    ] {
        let path = dir.join("c.json");
        std::fs::write(&path, body).unwrap();
        let r = run(&none, &["emulator", "--config", path.to_str().unwrap()]);
        // The file is part of the environment: exit 1, not a usage error.
        assert_eq!(r.code, 1, "{body}");
        assert!(r.stderr.contains(needle), "{body}: {}", r.stderr);
    }
    let r = run(
        &none,
        &["emulator", "--config", "/nonexistent/entra-mi.json"],
    );
    assert_eq!(r.code, 1);
    let r = run(
        &none,
        &[
            "emulator",
            "--identity",
            "a",
            "--role",
            "b,https://x.example,R",
        ],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown identity"), "{}", r.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--credential` picks one link of the chain: a stand-in `az` on PATH for the Azure CLI, and
/// clear failures for links that are not configured.
#[test]
fn credential_choices() {
    let dir = std::env::temp_dir().join(format!("entra-mi-cli-az-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let az = dir.join("az");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    common::script::write_executable(
        &az,
        &format!(
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\necho '{{\"accessToken\": \"eyJ.az-token.sig\", \"expiresOn\": \"2030-01-01 12:00:00.000000\", \"expires_on\": {exp}, \"tokenType\": \"Bearer\"}}'\n"
        ),
    );
    let path = format!("{}:/usr/bin:/bin", dir.display());
    let env = [("PATH", path)];
    let r = run(
        &env,
        &[
            "token",
            "--resource",
            "https://vault.azure.net",
            "--credential",
            "azure-cli",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["source"], "azure-cli");
    assert_eq!(v["expires_on"].as_u64(), Some(exp));
    let args = std::fs::read_to_string(dir.join("args")).unwrap();
    assert!(
        args.contains("account get-access-token")
            && args.contains("--resource https://vault.azure.net"),
        "{args}"
    );

    let r = run(
        &env,
        &[
            "token",
            "--resource",
            "https://vault.azure.net",
            "--credential",
            "workload-identity",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{}",
        r.stderr
    );
    let r = run(
        &env,
        &[
            "token",
            "--resource",
            "https://vault.azure.net",
            "--credential",
            "environment",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("AZURE_CLIENT_SECRET"), "{}", r.stderr);
    let r = run(
        &env,
        &[
            "token",
            "--resource",
            "https://vault.azure.net",
            "--credential",
            "azure-cli",
            "--client-id",
            "11111111-2222-3333-4444-555555555555",
        ],
    );
    assert_eq!(r.code, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_managed_identity_refuses_another_tenant() {
    let (emu, _) = emulator().await;
    let env = imds_env(&emu);
    let r = tokio::task::spawn_blocking(move || {
        run(
            &env,
            &[
                "token",
                "--resource",
                "https://graph.microsoft.com",
                "--credential",
                "managed-identity",
                "--tenant",
                "contoso.onmicrosoft.com",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("home tenant"), "{}", r.stderr);
}
