//! `entra-mi emulator`: the token lifetime is bounded (1 s to 10 years) on the command line (a
//! usage error, exit 2) and in `--config` files (a failure, exit 1: the file is part of the
//! environment), with an error naming the option and the range.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;

use base64::Engine;
use serde_json::Value;

/// The emulator's maximum token lifetime, in seconds (10 years of 365 days).
const MAX: u64 = 315_360_000;

use common::run;

/// Kills the emulator child if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_max_token_lifetime_matches_the_emulator() {
    assert_eq!(entra_mi_emulator::MAX_TOKEN_LIFETIME.as_secs(), MAX);
}

#[test]
fn out_of_range_token_lifetimes_are_usage_errors() {
    let none: [(&str, String); 0] = [];
    for value in ["18446744073709551615", "315360001", "0"] {
        let r = run(&none, &["emulator", "--token-lifetime", value]);
        assert_eq!(r.code, 2, "{value}: {}", r.stderr);
        assert!(
            r.stderr.contains("--token-lifetime"),
            "{value}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(&MAX.to_string()), "{value}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{value}: {}", r.stdout);
    }
}

#[test]
fn out_of_range_token_lifetimes_in_config_files_exit_1() {
    let none: [(&str, String); 0] = [];
    let dir = std::env::temp_dir().join(format!("entra-mi-cli-lifetime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.json");
    for body in [
        r#"{"token_lifetime": 18446744073709551615}"#,
        r#"{"token_lifetime": 315360001}"#,
        r#"{"token_lifetime": 0}"#,
        r#"{"token_lifetime": -5}"#,
        r#"{"token_lifetime": 18446744073709551616}"#,
    ] {
        std::fs::write(&path, body).unwrap();
        let r = run(&none, &["emulator", "--config", path.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{body}: {}", r.stderr);
        assert!(r.stderr.contains("token_lifetime"), "{body}: {}", r.stderr);
        assert!(r.stderr.contains(&MAX.to_string()), "{body}: {}", r.stderr);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The maximum is accepted and tokens then live exactly that long. (The token is read over
/// plain HTTP: the `entra-mi` client itself refuses tokens that live longer than 7 days.)
// Stopped with SIGINT, as a terminal would.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn the_maximum_token_lifetime_is_served() {
    let none: [(&str, String); 0] = [];
    let max = MAX.to_string();
    let mut child = Running(
        common::entra_mi(&none)
            .args(["emulator", "--print-env", "--token-lifetime", &max])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let host = line
        .strip_prefix("AZURE_POD_IDENTITY_AUTHORITY_HOST=")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let reply = client
        .get(format!(
            "{host}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fgraph.microsoft.com"
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let body: Value = serde_json::from_str(&reply.text().await.unwrap()).unwrap();
    let token = body["access_token"].as_str().unwrap();
    let part = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        MAX
    );

    let status = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the emulator did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
