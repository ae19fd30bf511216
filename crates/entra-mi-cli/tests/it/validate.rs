//! End-to-end: `entra-mi validate` against the emulator — the exit contract row by row, the
//! streaming protocol (write a line, read its answer, go on), and the whole story with
//! `perms grant` and `token`.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use entra_mi_emulator::{ApiApp, Emulator, Identity};
use serde_json::{Value, json};

const AUDIENCE: &str = "api://orders";

struct Fixture {
    emu: Emulator,
    admin: Identity,
    granted: Identity,
    ungranted: Identity,
    orders: ApiApp,
}

impl Fixture {
    async fn new() -> Fixture {
        let admin = Identity::system_assigned();
        let granted = Identity::user_assigned("granted");
        let ungranted = Identity::user_assigned("ungranted");
        let orders = ApiApp::new("Orders API", AUDIENCE, &["Orders.Read"]);
        let emu = Emulator::builder()
            .system_assigned(Some(admin.clone()))
            .identity(granted.clone())
            .identity(ungranted.clone())
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
        Fixture {
            emu,
            admin,
            granted,
            ungranted,
            orders,
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &self.emu.tenant_id(),
            "--authority",
            &self.emu.base_url(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// A token of the emulator's tenant for `api://orders`, with `changes` to its claims.
    fn token(&self, changes: Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({
            "aud": AUDIENCE, "iss": self.emu.issuer(), "iat": now, "nbf": now,
            "exp": now + 3600, "appid": self.granted.client_id, "idtyp": "app",
            "oid": self.granted.object_id, "sub": self.granted.object_id,
            "tid": self.emu.tenant_id(), "roles": ["Orders.Read"], "ver": "1.0",
        });
        for (k, v) in changes.as_object().unwrap() {
            claims[k] = v.clone();
        }
        self.emu.sign_token(&claims)
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `entra-mi` with `args`, `input` on standard input, `env` set.
async fn run(env: Vec<(&'static str, String)>, args: Vec<String>, input: String) -> Out {
    tokio::task::spawn_blocking(move || {
        let mut child = common::entra_mi(&env)
            .args(&args)
            .env_remove("AZURE_AUTHORITY_HOST")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // A usage error exits without reading: a broken pipe then is fine.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

fn answers(out: &Out) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2_without_reading_tokens() {
    let f = Fixture::new().await;
    let tid = f.emu.tenant_id();
    let token = f.token(json!({}));
    let base = f.emu.base_url();
    for args in [
        vec!["validate", "--tenant", &tid],
        vec!["validate", "--audience", AUDIENCE],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--any-tenant",
        ],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--clock-skew",
            "abc",
        ],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--clock-skew",
            "-5",
        ],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--authority",
            "http://login.example.com",
        ],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--authority",
            "not a url",
        ],
        vec!["validate", "--audience", "", "--tenant", &tid],
        vec!["validate", "--audience", AUDIENCE, "--tenant", "a/b"],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--role",
            "",
        ],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--authority",
            &base,
            &token,
        ],
        vec![
            "validate",
            "--audience",
            AUDIENCE,
            "--tenant",
            &tid,
            "--no-such-flag",
        ],
    ] {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = run(vec![], args.clone(), format!("{token}\n")).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        // Not even a token mistakenly given as an argument is repeated.
        assert!(
            !out.stderr.contains(&token[token.len() - 40..]),
            "{args:?}: {}",
            out.stderr
        );
    }
    let mut args = f.args(&[]);
    args.push(token.clone());
    let out = run(vec![], args, String::new()).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("tokens are read from standard input, one per line"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_terminal_would_act_on_is_replaced_in_answers() {
    let f = Fixture::new().await;
    let hostile = "x\u{1b}]0;title\u{7}\u{202e}y\u{2028}z";
    let valid = f.token(json!({ "name": hostile, "roles": ["Orders.Read", hostile] }));
    let refused = f.token(json!({ "aud": format!("api://{hostile}") }));
    let out = run(vec![], f.args(&[]), format!("{valid}\n{refused}\n")).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let a = answers(&out);
    let clean = "x\u{fffd}]0;title\u{fffd}\u{fffd}y\u{fffd}z";
    assert_eq!(a[0]["valid"], true, "{}", a[0]);
    assert_eq!(a[0]["claims"]["name"], clean);
    assert_eq!(a[0]["claims"]["roles"], json!(["Orders.Read", clean]));
    let error = a[1]["error"].as_str().unwrap();
    assert!(error.starts_with("audience: "), "{error}");
    for c in ['\u{1b}', '\u{7}', '\u{202e}', '\u{2028}'] {
        assert!(!out.stdout.contains(c), "{c:?} in {}", out.stdout);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_tokens_exit_0_and_print_their_claims() {
    let f = Fixture::new().await;
    let tokens = [f.token(json!({})), f.token(json!({"uti": "second"}))];
    let input = format!("\n{}\n  \n{}\r\n\n", tokens[0], tokens[1]);
    let out = run(vec![], f.args(&["--role", "Orders.Read"]), input).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let a = answers(&out);
    assert_eq!(a.len(), 2, "blank lines are skipped");
    for answer in &a {
        assert_eq!(answer["valid"], true);
        assert_eq!(answer["claims"]["aud"], AUDIENCE);
        assert_eq!(answer["claims"]["roles"], json!(["Orders.Read"]));
    }
    assert_eq!(a[1]["claims"]["uti"], "second");
    // No input at all: nothing was invalid.
    let out = run(vec![], f.args(&[]), String::new()).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
}

#[tokio::test(flavor = "multi_thread")]
async fn any_invalid_token_exits_1_with_the_failed_check() {
    let f = Fixture::new().await;
    let good = f.token(json!({}));
    let lines = [
        (good.clone(), None),
        (f.token(json!({"aud": "api://billing"})), Some("audience")),
        (f.token(json!({"exp": 1_000_000})), Some("expired")),
        (f.token(json!({"roles": ["Other"]})), Some("role")),
        (f.token(json!({"tid": "00000000-0000-4000-8000-000000000000", "iss": "https://sts.windows.net/00000000-0000-4000-8000-000000000000/"})), Some("tenant")),
        (format!("{}.e30.", "eyJhbGciOiJub25lIn0"), Some("algorithm")),
        ("garbage".to_owned(), Some("malformed")),
        ("A".repeat(20 * 1024), Some("malformed")),
    ];
    let input: String = lines.iter().map(|(t, _)| format!("{t}\n")).collect();
    let out = run(vec![], f.args(&["--role", "Orders.Read"]), input).await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let a = answers(&out);
    assert_eq!(a.len(), lines.len());
    for ((token, want), got) in lines.iter().zip(&a) {
        match want {
            None => assert_eq!(got["valid"], true, "{got}"),
            Some(check) => {
                assert_eq!(got["valid"], false, "{got}");
                let error = got["error"].as_str().unwrap();
                assert!(error.starts_with(&format!("{check}: ")), "{error}");
                if token.len() > 20 {
                    assert!(!error.contains(token.as_str()));
                }
            }
        }
        assert_eq!(got.as_object().unwrap().len(), 2, "{got}");
    }
    assert!(
        out.stderr.contains("7 of 8 tokens were not valid"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&good));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discovery_failure_exits_1() {
    let f = Fixture::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = f.token(json!({}));
    let args: Vec<String> = [
        "validate",
        "--audience",
        AUDIENCE,
        "--any-tenant",
        "--authority",
        &format!("http://{closed}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(vec![], args, format!("{token}\n{token}\n")).await;
    assert_eq!(out.code, 1);
    let a = answers(&out);
    assert_eq!(a.len(), 2);
    for answer in a {
        assert!(
            answer["error"].as_str().unwrap().starts_with("discovery: "),
            "{answer}"
        );
    }
    // A bad AZURE_AUTHORITY_HOST is the environment's fault: 1, not 2, and said per token.
    let args: Vec<String> = ["validate", "--audience", AUDIENCE, "--any-tenant"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = run(
        vec![("AZURE_AUTHORITY_HOST", "http://login.example.com".into())],
        args.clone(),
        format!("{token}\n"),
    )
    .await;
    assert_eq!(out.code, 1, "{}", out.stderr);
    let error = answers(&out)[0]["error"].as_str().unwrap().to_owned();
    assert!(
        error.starts_with("discovery: AZURE_AUTHORITY_HOST"),
        "{error}"
    );
    // And a good one is used when --authority is not given.
    let out = run(
        vec![("AZURE_AUTHORITY_HOST", f.emu.base_url())],
        args,
        format!("{token}\n"),
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}

fn spawn(env: &[(&str, String)], args: &[String]) -> (Child, ChildStdin, BufReader<ChildStdout>) {
    let mut child = common::entra_mi(env)
        .args(args)
        .env_remove("AZURE_AUTHORITY_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (child, stdin, stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_stream_one_line_at_a_time() {
    let f = Fixture::new().await;
    let args = f.args(&[]);
    let tokens = [
        f.token(json!({})),
        "not a token".to_owned(),
        f.token(json!({"uti": "3"})),
    ];
    tokio::task::spawn_blocking(move || {
        let (mut child, mut stdin, mut stdout) = spawn(&[], &args);
        for (i, token) in tokens.iter().enumerate() {
            // Write one line, read its answer while standard input stays open.
            writeln!(stdin, "{token}").unwrap();
            stdin.flush().unwrap();
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let answer: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(answer["valid"], i != 1, "{answer}");
        }
        drop(stdin);
        let mut rest = String::new();
        assert_eq!(
            stdout.read_line(&mut rest).unwrap(),
            0,
            "nothing more: {rest}"
        );
        assert_eq!(child.wait().unwrap().code(), Some(1));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_whole_story_perms_grant_token_validate() {
    let f = Fixture::new().await;
    let env = vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", f.emu.imds_host()),
        ("ENTRA_MI_GRAPH_URL", f.emu.base_url()),
    ];
    let _ = &f.admin;
    let cli = |args: Vec<String>| run(env.clone(), args, String::new());
    let grant = cli([
        "perms",
        "grant",
        "--identity",
        &f.granted.object_id,
        "--api",
        &f.orders.app_id,
        "--role",
        "Orders.Read",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect())
    .await;
    assert_eq!(grant.code, 0, "{}{}", grant.stdout, grant.stderr);
    let mut input = String::new();
    for who in [&f.granted, &f.ungranted] {
        let out = cli([
            "token",
            "--resource",
            AUDIENCE,
            "--client-id",
            &who.client_id,
            "--output",
            "raw",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect())
        .await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        input.push_str(out.stdout.trim());
        input.push('\n');
    }
    let out = run(env.clone(), f.args(&["--role", "Orders.Read"]), input).await;
    assert_eq!(out.code, 1);
    let a = answers(&out);
    assert_eq!(a[0]["valid"], true, "{}", a[0]);
    assert_eq!(a[0]["claims"]["oid"], f.granted.object_id.as_str());
    assert_eq!(a[1]["valid"], false);
    assert!(
        a[1]["error"].as_str().unwrap().starts_with("role: "),
        "{}",
        a[1]
    );
}
