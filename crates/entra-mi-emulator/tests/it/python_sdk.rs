//! The official Python `azure-identity` `ManagedIdentityCredential`, unmodified, gets tokens
//! from the emulator when pointed at it by its usual environment variables.
//!
//! Needs `python3` (or the interpreter named by `PYTHON`) with `azure-identity` installed
//! (`pip install azure-identity`). Without it the tests print a skip note, or fail when `CI`
//! is set.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::claims;
use entra_mi_emulator::{Emulator, Endpoint, Fault, Identity};

/// Environment variables that would steer the credential elsewhere.
const CLEARED: &[&str] = &[
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
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZUREPS_HOST_ENVIRONMENT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Whether azure-identity can be imported; panics under CI when it cannot.
fn azure_identity_available() -> bool {
    let out = Command::new(python())
        .args(["-c", "import azure.identity"])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but `{} -c 'import azure.identity'` fails: {why}",
                python()
            );
            eprintln!(
                "SKIPPED: azure-identity is not importable ({why}); run `pip install azure-identity`"
            );
            false
        }
    }
}

enum Via {
    AppService,
    Imds,
}

/// Runs `tests/python/get_token.py` with the environment of `via`; returns the token.
async fn python_token(em: &Emulator, via: Via, scope: &str, client_id: Option<&str>) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/get_token.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(scope).arg(client_id.unwrap_or(""));
    for var in CLEARED {
        cmd.env_remove(var);
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost");
    cmd.env("no_proxy", "127.0.0.1,localhost");
    match via {
        Via::AppService => {
            cmd.env("IDENTITY_ENDPOINT", em.app_service_endpoint());
            cmd.env("IDENTITY_HEADER", em.identity_header());
        }
        Via::Imds => {
            cmd.env("AZURE_POD_IDENTITY_AUTHORITY_HOST", em.imds_host());
        }
    }
    // Run the blocking child off the runtime so the emulator keeps serving meanwhile.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("python runs");
    assert!(
        out.status.success(),
        "get_token.py failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON line");
    printed["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn azure_identity_gets_tokens_from_app_service_and_imds() {
    if !azure_identity_available() {
        return;
    }
    let ua = Identity::user_assigned("python");
    let em = Emulator::builder()
        .identity(ua.clone())
        .start()
        .await
        .unwrap();
    let sys = em.system_identity().unwrap();

    // App Service, system-assigned; the scope's "/.default" is stripped and the slash kept.
    let t = python_token(
        &em,
        Via::AppService,
        "https://management.azure.com//.default",
        None,
    )
    .await;
    let c = claims(&t);
    assert_eq!(c["aud"], "https://management.azure.com/");
    assert_eq!(c["oid"], sys.object_id.as_str());
    assert_eq!(em.requests(Endpoint::AppService), 1);

    // App Service, user-assigned by client id.
    let t = python_token(
        &em,
        Via::AppService,
        "api://orders/.default",
        Some(&ua.client_id),
    )
    .await;
    let c = claims(&t);
    assert_eq!(c["aud"], "api://orders");
    assert_eq!(c["oid"], ua.object_id.as_str());
    assert_eq!(em.requests(Endpoint::AppService), 2);

    // IMDS, system-assigned.
    assert_eq!(em.requests(Endpoint::Imds), 0);
    let t = python_token(&em, Via::Imds, "https://vault.azure.net/.default", None).await;
    let c = claims(&t);
    assert_eq!(c["aud"], "https://vault.azure.net");
    assert_eq!(c["oid"], sys.object_id.as_str());
    let imds_after_system = em.requests(Endpoint::Imds);
    assert!(imds_after_system >= 1);

    // IMDS, user-assigned by client id.
    let t = python_token(&em, Via::Imds, "api://orders/.default", Some(&ua.client_id)).await;
    let c = claims(&t);
    assert_eq!(c["aud"], "api://orders");
    assert_eq!(c["oid"], ua.object_id.as_str());
    assert_eq!(c["appid"], ua.client_id.as_str());
    assert!(em.requests(Endpoint::Imds) > imds_after_system);
    assert_eq!(
        em.requests(Endpoint::AppService),
        2,
        "IMDS runs did not go to App Service"
    );

    // The tokens verify against the emulator's keys like any resource server would check them.
    common::verify(&em, &t, "api://orders").await;
}

#[tokio::test]
async fn azure_identity_retries_an_imds_503_with_retry_after() {
    if !azure_identity_available() {
        return;
    }
    let em = Emulator::builder().start().await.unwrap();
    em.push_fault(
        Endpoint::Imds,
        Fault::Status {
            status: 503,
            retry_after: Some("1".to_owned()),
            body: None,
        },
    );
    let t = python_token(&em, Via::Imds, "https://storage.azure.com/.default", None).await;
    assert_eq!(claims(&t)["aud"], "https://storage.azure.com");
    assert_eq!(em.requests(Endpoint::Imds), 2, "one 503, then the token");
}
