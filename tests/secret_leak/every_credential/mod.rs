//! No secret of any credential reaches a log line, a `Debug` or `Display` output or an error
//! chain: every managed-identity source (IMDS, App Service, Azure Arc with its key file,
//! Service Fabric, Cloud Shell, Azure ML / 2017-09-01), workload identity, client secret,
//! client certificate (PEM and PKCS#12), Azure CLI, a managed identity as federated credential,
//! `DefaultCredential`, and both middlewares, on their success paths and their failure paths
//! (refusals whose bodies carry token fields, HTML, truncated and malformed bodies, dropped
//! connections, wrong secrets, 401 recovery), all under a TRACE subscriber that captures
//! everything.
//!
//! Every secret is a unique canary (all contain `CANARY`), or a real token the emulator issued
//! (collected with `AccessToken::secret()`), or an assertion the certificate and federated
//! credentials built (captured on the wire).
#![cfg(unix)]

use entra_mi_test_support as support;

use std::fmt::{Debug, Display};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use entra_mi::credentials::{
    AzureCliCredential, ClientCertificate, ClientCertificateCredential, ClientSecretCredential,
    FederatedManagedIdentityCredential, TOKEN_EXCHANGE_AUDIENCE, WorkloadIdentityCredential,
};
use entra_mi::managed_identity::detect_source;
use entra_mi::middleware::BearerChallenge;
use entra_mi::{
    AccessToken, Audience, DefaultCredential, Environment, ManagedIdentityCredential, RetryOptions,
    Route, TokenCredential, TokenProvider, TokenRequest, TokenRouter,
};
use entra_mi_emulator::{App, Emulator, Endpoint, FEDERATED_ISSUER, Fault, Identity};
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_tower::{BearerAuthLayer, CloneBody};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use support::downstream::{Downstream, Mode};
use support::{RawServer, Reply};
use tower::{Layer, ServiceExt};

mod endpoint_failures;
mod fixtures;
mod mi_failures;
mod middlewares;
mod success;

use fixtures::{
    ARC_KEY, AUD, BODY_TOKEN, CLI_STDERR_TOKENS, CLI_TOKEN, CLIENT_SECRET, Evidence,
    IDENTITY_HEADER, MSI_SECRET, PFX_PASSWORD, TempDir, VarsFor, WI_FAKE, WRONG_SECRET, arm,
    assertions, bad_replies, cli, env, error_body, generate_certificate, graph, pkcs12, refuse_all,
    stand_in_az, unix_now,
};

/// What every phase uses: one emulator for every credential (identity header, MSI secret, Arc
/// key directory, and apps for client secret, certificate, workload identity and the federated
/// managed identity), and the files and identities behind it.
struct World {
    arc_dir: TempDir,
    realm: std::path::PathBuf,
    g: fixtures::Generated,
    subject: &'static str,
    secret_app: App,
    cert_app: App,
    wi_app: App,
    fic_app: App,
    stranger: App,
    emu: Emulator,
    no_retry: RetryOptions,
    authority: String,
}

/// What the success paths built and the failure paths reuse.
struct Built {
    mi_envs: Vec<(&'static str, Environment)>,
    mi_imds: ManagedIdentityCredential,
    pem: ClientCertificate,
    wi: WorkloadIdentityCredential,
    wi_dir: TempDir,
    wi_file: std::path::PathBuf,
}

/// Builds the world (its secrets are added to the evidence).
async fn world(ev: &mut Evidence) -> World {
    let arc_dir = TempDir::new("arc");
    let realm = arc_dir.path().join("arc-realm.key");
    std::fs::write(&realm, ARC_KEY).unwrap();
    let g = generate_certificate();
    for line in g
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .take(3)
    {
        ev.secret(line);
    }
    let system = Identity::system_assigned();
    let subject = "system:serviceaccount:default:leak";
    let secret_app = App::new("secret-daemon").with_secret(CLIENT_SECRET);
    let cert_app = App::new("cert-daemon").with_certificate(g.cert_der.clone());
    let wi_app = App::new("wi").with_federated_credential(FEDERATED_ISSUER, subject);
    let mi_issuer = format!(
        "https://sts.windows.net/{}/",
        entra_mi_emulator::DEFAULT_TENANT_ID
    );
    let fic_app = App::new("fic")
        .with_federated_credential(&mi_issuer, &system.object_id)
        .multi_tenant(true);
    let stranger = App::new("no-fic").multi_tenant(true);
    let emu = Emulator::builder()
        .system_assigned(Some(system.clone()))
        .identity_header(IDENTITY_HEADER)
        .msi_secret(MSI_SECRET)
        .arc_key_directory(arc_dir.path())
        .app(secret_app.clone())
        .app(cert_app.clone())
        .app(wi_app.clone())
        .app(fic_app.clone())
        .app(stranger.clone())
        .start()
        .await
        .unwrap();
    let no_retry = RetryOptions::default().max_retries(0);
    let authority = emu.authority_host();
    World {
        arc_dir,
        realm,
        g,
        subject,
        secret_app,
        cert_app,
        wi_app,
        fic_app,
        stranger,
        emu,
        no_retry,
        authority,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_any_credential_or_middleware_leaks() {
    let logs = crate::logs();
    let mut ev = Evidence::default();
    for s in [
        CLIENT_SECRET,
        WRONG_SECRET,
        IDENTITY_HEADER,
        MSI_SECRET,
        ARC_KEY,
        PFX_PASSWORD,
        BODY_TOKEN,
        WI_FAKE,
        CLI_TOKEN,
    ] {
        ev.secret(s);
    }
    for s in CLI_STDERR_TOKENS {
        ev.secret(s);
    }

    let w = world(&mut ev).await;
    let built = success::run(&w, &mut ev).await;
    mi_failures::run(&w, &built, &mut ev).await;
    endpoint_failures::run(&w, &built, &mut ev).await;
    middlewares::run(&w, &mut ev).await;

    // ---------------------------------------------------------------------------------------
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = logs.text();
    assert!(logs.contains("token cached"), "TRACE capture works");
    assert!(logs.len() > 10_000, "{} bytes of logs", logs.len());
    let shown = ev.shown.join("\n");
    println!(
        "{} secrets, {} errors, {} outputs ({} bytes), {} bytes of logs",
        ev.secrets.len(),
        ev.errors,
        ev.shown.len(),
        shown.len(),
        logs.len()
    );
    assert!(ev.errors >= 80, "failure paths ran: {}", ev.errors);
    assert!(
        ev.secrets.len() >= 60,
        "secrets collected: {}",
        ev.secrets.len()
    );
    assert!(shown.contains("redacted") || shown.contains("Sensitive"));
    let mut leaks = Vec::new();
    for (what, text) in [("logs", &logs), ("Debug/Display/errors", &shown)] {
        if text.contains("CANARY") {
            let at = text.find("CANARY").unwrap();
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            leaks.push(format!(
                "a canary in {what}: …{}…",
                &text[from..(at + 60).min(text.len())]
            ));
        }
        for secret in &ev.secrets {
            // Any 16-character piece of a token is enough to flag a leak; canaries are checked
            // whole (and by their common marker above).
            let piece = if secret.len() >= 40 {
                &secret[secret.len() - 24..secret.len() - 8]
            } else {
                secret.as_str()
            };
            if text.contains(secret.as_str()) || text.contains(piece) {
                leaks.push(format!(
                    "a secret ({} chars, ends …{}) in {what}",
                    secret.len(),
                    &secret[secret.len().saturating_sub(6)..]
                ));
            }
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}
