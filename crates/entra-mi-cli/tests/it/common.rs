//! Shared by the end-to-end tests.
#![allow(dead_code)]

use std::process::Command;

pub use entra_mi_test_support::script;
pub mod server;

use assert_cmd::cargo::CommandCargoExt;

/// Variables that would steer the binary elsewhere; removed from every run.
pub const STEERING: &[&str] = &[
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS",
    "ENTRA_MI_GRAPH_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

/// The built `entra-mi` with the steering variables removed and `env` set.
pub fn entra_mi<K: AsRef<str>>(env: &[(K, String)]) -> Command {
    let mut cmd = Command::cargo_bin("entra-mi").unwrap();
    for v in STEERING {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k.as_ref(), v);
    }
    cmd
}

/// What a run of the binary printed, and its exit code.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// How long one run of the binary may take before it is killed: far above any run of these
/// tests (they take milliseconds to a few seconds), so it only ends a run that would hang.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs the built `entra-mi` with `env` (see [`entra_mi`]) and `args` to completion, or kills
/// it after [`RUN_LIMIT`] (its code is then -1 and its stderr says so).
pub fn run<K: AsRef<str>>(env: &[(K, String)], args: &[&str]) -> Run {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = entra_mi(env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (stdout, mut stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    if status.is_none() {
        stderr.push_str(&format!("\n(killed: still running after {RUN_LIMIT:?})"));
    }
    Run {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Runs the built `entra-mi` with its standard output closed for reading before it starts, so
/// every write to it fails (`EPIPE`).
pub fn run_with_closed_stdout<K: AsRef<str>>(env: &[(K, String)], args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = entra_mi(env)
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scratch directory for one test, empty.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("entra-mi-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A stand-in `az` in `dir` that answers `account get-access-token` with a token that would
/// pass for a real one, and leaves a file `az-ran` behind when it runs. Returns the `PATH`
/// that finds it first.
pub fn stand_in_az(dir: &std::path::Path) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    script::write_executable(
        &dir.join("az"),
        &format!(
            "#!/bin/sh\ntouch \"$(dirname \"$0\")/az-ran\"\necho '{{\"accessToken\": \"eyJ.AZ-CLI-TOKEN-CANARY.sig\", \"expiresOn\": \"2030-01-01 12:00:00.000000\", \"expires_on\": {exp}, \"tokenType\": \"Bearer\"}}'\n"
        ),
    );
    format!("{}:/usr/bin:/bin", dir.display())
}

/// [`run`] from async tests (on a blocking thread, so the test's servers keep serving).
pub async fn run_async(env: Vec<(&'static str, String)>, args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&env, &args)
    })
    .await
    .unwrap()
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A loopback port that refuses connections, for as long as the socket lives (a port released
/// at once could be taken by another test's server meanwhile).
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Asserts `code` with the output in the message, and that a failure says why on stderr, with
/// the command's prefix.
pub fn expect(r: &Run, code: i32, what: &str) {
    assert_eq!(
        r.code, code,
        "{what}\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
    if code == 1 {
        assert!(r.stderr.starts_with("entra-mi: "), "{what}: {}", r.stderr);
    }
    if code == 2 {
        // clap's error, or its help when no subcommand is given at all.
        assert!(
            r.stderr.starts_with("error: ") || r.stderr.contains("Usage: entra-mi <COMMAND>"),
            "{what}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{what}: {}", r.stdout);
    }
}
