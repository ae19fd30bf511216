//! Shared by the end-to-end tests.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;

#[path = "../../../../tests/support/script.rs"]
pub mod script;

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

/// Runs the built `entra-mi` with `env` (see [`entra_mi`]) and `args` to completion.
pub fn run<K: AsRef<str>>(env: &[(K, String)], args: &[&str]) -> Run {
    let out = entra_mi(env).args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
