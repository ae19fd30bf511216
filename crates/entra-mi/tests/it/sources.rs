//! Every managed-identity source beyond IMDS and App Service 2019, against the emulator:
//! Azure Arc (the challenge and every key-file check), Service Fabric over TLS (the pinned
//! thumbprint), the 2017-09-01 protocol (Azure ML, legacy App Service) and Cloud Shell —
//! system- and user-assigned where the source allows it, and each refusal.

use entra_mi_test_support as support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use entra_mi::error::Unavailable;
use entra_mi::managed_identity::SourceKind;
use entra_mi::time::ManualClock;
use entra_mi::{
    Audience, Environment, Error, ManagedIdentityCredential, RetryOptions, TokenCredential,
    TokenProvider, TokenRequest,
};
use entra_mi_emulator::{Emulator, Endpoint, Fault, Identity, ResponseShape};
use serde_json::json;
use support::{RawServer, Reply, jwt_claims};

const CANARY: &str = "CANARY-SECRET-0f3c9a";

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

fn assert_no_secret(err: &Error, secrets: &[&str]) {
    let shown = format!("{err} {err:?}");
    for s in secrets {
        assert!(!shown.contains(s), "secret leaked: {shown}");
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "entra-mi-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst),
            fastrand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

fn fastrand_suffix() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// 2017-09-01: Azure ML and legacy App Service

#[tokio::test]
async fn azure_ml_system_and_user_assigned() {
    let user = Identity::user_assigned("ml-user");
    let emu = Emulator::builder()
        .identity(user.clone())
        .msi_secret(CANARY)
        .start()
        .await
        .unwrap();
    let system = emu.system_identity().unwrap();
    let base = [
        ("MSI_ENDPOINT", emu.msi_endpoint()),
        ("MSI_SECRET", emu.msi_secret()),
    ];
    let vars = |extra: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = base
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Environment::from_vars(v)
    };

    let cred = ManagedIdentityCredential::builder()
        .environment(vars(&[]))
        .build()
        .unwrap();
    assert_eq!(cred.source_kind(), SourceKind::AzureMl);
    let token = cred.get_token(&graph()).await.unwrap();
    assert_eq!(jwt_claims(token.secret())["oid"], system.object_id.as_str());

    // System-assigned on Azure ML sends DEFAULT_IDENTITY_CLIENT_ID as `clientid`.
    let cred = ManagedIdentityCredential::builder()
        .environment(vars(&[("DEFAULT_IDENTITY_CLIENT_ID", &user.client_id)]))
        .build()
        .unwrap();
    let token = cred.get_token(&graph()).await.unwrap();
    assert_eq!(jwt_claims(token.secret())["oid"], user.object_id.as_str());

    let cred = ManagedIdentityCredential::builder()
        .environment(vars(&[]))
        .client_id(&user.client_id)
        .build()
        .unwrap();
    let token = cred.get_token(&graph()).await.unwrap();
    assert_eq!(jwt_claims(token.secret())["oid"], user.object_id.as_str());
    assert!(token.expires_on() > SystemTime::now() + Duration::from_secs(3600));

    // Legacy App Service's date-string expiry.
    emu.set_response_shape(Endpoint::AzureMl, ResponseShape::ExpiresOnDate);
    let token = cred.get_token(&graph()).await.unwrap();
    assert!(token.expires_on() > SystemTime::now() + Duration::from_secs(3600));

    // Only client ids select on this protocol: refused before anything is sent.
    emu.reset_counts();
    for b in [
        ManagedIdentityCredential::builder().object_id(&user.object_id),
        ManagedIdentityCredential::builder().resource_id(&user.resource_id),
    ] {
        let err = b.environment(vars(&[])).build().unwrap_err();
        assert!(
            matches!(&err, Error::Configuration(family) if matches!(&**family, entra_mi::error::ConfigurationError::Setting { .. })),
            "{err:?}"
        );
        assert!(err.to_string().contains("only by client id"), "{err}");
    }
    assert_eq!(emu.requests(Endpoint::AzureMl), 0);

    // The placeholder Azure ML writes when no identity is enabled.
    let cred = ManagedIdentityCredential::builder()
        .environment(vars(&[("DEFAULT_IDENTITY_CLIENT_ID", "clientid")]))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        err.to_string().contains("DEFAULT_IDENTITY_CLIENT_ID")
            && err.to_string().contains("placeholder"),
        "{err}"
    );
}

#[tokio::test]
async fn azure_ml_wrong_secret_is_refused_without_showing_it() {
    let emu = Emulator::builder().start().await.unwrap();
    let wrong = format!("{CANARY}-wrong");
    let cred = ManagedIdentityCredential::builder()
        .environment(env(&[
            ("MSI_ENDPOINT", &emu.msi_endpoint()),
            ("MSI_SECRET", &wrong),
        ]))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Refused { .. })),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(401));
    assert_no_secret(&err, &[CANARY]);
    assert!(!format!("{cred:?}").contains(CANARY));
}

// ---------------------------------------------------------------------------------------------
// Cloud Shell

#[tokio::test]
async fn cloud_shell_posts_a_form_and_refuses_user_assigned() {
    let emu = Emulator::builder().start().await.unwrap();
    let vars = [("MSI_ENDPOINT", emu.cloud_shell_endpoint())];
    let e = || Environment::from_vars(vars.clone());
    let cred = ManagedIdentityCredential::builder()
        .environment(e())
        .build()
        .unwrap();
    assert_eq!(cred.source_kind(), SourceKind::CloudShell);
    let token = cred
        .get_token(&TokenRequest::new(
            Audience::new("https://management.azure.com/").unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(
        jwt_claims(token.secret())["aud"],
        "https://management.azure.com/"
    );
    assert_eq!(emu.requests(Endpoint::CloudShell), 1);

    for b in [
        ManagedIdentityCredential::builder().client_id("11111111-2222-3333-4444-555555555555"),
        ManagedIdentityCredential::builder().object_id("11111111-2222-3333-4444-555555555555"),
    ] {
        let err = b.environment(e()).build().unwrap_err();
        assert!(
            err.to_string()
                .contains("Cloud Shell cannot select a user-assigned identity"),
            "{err}"
        );
    }
    assert_eq!(emu.requests(Endpoint::CloudShell), 1);
}

#[tokio::test]
async fn cloud_shell_answer_for_another_audience_is_refused() {
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": CANARY, "expires_in": "3599", "resource": "https://graph.windows.net/", "token_type": "Bearer"}),
    ))
    .await;
    let cred = ManagedIdentityCredential::builder()
        .environment(env(&[("MSI_ENDPOINT", &server.url("/oauth2/token"))]))
        .build()
        .unwrap();
    let err = cred
        .get_token(&TokenRequest::new(
            Audience::new("https://management.azure.com/").unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Unavailable {
            reason: Unavailable::InvalidResponse { .. },
            ..
        })),
        "{err:?}"
    );
    assert_no_secret(&err, &[CANARY]);
    let req = &server.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.header("metadata"), Some("true"));
    assert_eq!(
        String::from_utf8_lossy(&req.body),
        "resource=https%3A%2F%2Fmanagement.azure.com%2F"
    );
}

// ---------------------------------------------------------------------------------------------
// Azure Arc

fn arc_env(emu: &Emulator) -> Environment {
    env(&[
        ("IDENTITY_ENDPOINT", &emu.arc_endpoint()),
        ("IMDS_ENDPOINT", &emu.base_url()),
    ])
}

#[tokio::test]
async fn arc_answers_its_challenge_with_the_key_file() {
    let dir = TempDir::new("arc");
    let emu = Emulator::builder()
        .arc_key_directory(dir.path())
        .start()
        .await
        .unwrap();
    let cred = ManagedIdentityCredential::builder()
        .environment(arc_env(&emu))
        .arc_key_directory(dir.path())
        .build()
        .unwrap();
    assert_eq!(cred.source_kind(), SourceKind::AzureArc);
    let token = cred.get_token(&graph()).await.unwrap();
    assert_eq!(
        jwt_claims(token.secret())["oid"],
        emu.system_identity().unwrap().object_id.as_str()
    );
    assert_eq!(
        emu.requests(Endpoint::AzureArc),
        2,
        "challenge, then the answer"
    );

    let err = ManagedIdentityCredential::builder()
        .environment(arc_env(&emu))
        .arc_key_directory(dir.path())
        .client_id("11111111-2222-3333-4444-555555555555")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Azure Arc cannot select a user-assigned identity"),
        "{err}"
    );
    assert_eq!(emu.requests(Endpoint::AzureArc), 2);
}

#[tokio::test]
async fn arc_key_file_checks_come_before_reading() {
    let dir = TempDir::new("arc-dir");
    let outside = TempDir::new("arc-outside");
    let emu = Emulator::builder()
        .arc_key_directory(dir.path())
        .start()
        .await
        .unwrap();
    let cred = ManagedIdentityCredential::builder()
        .environment(arc_env(&emu))
        .arc_key_directory(dir.path())
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();

    let secret_file = outside.path().join("stolen.key");
    std::fs::write(&secret_file, CANARY).unwrap();
    let wrong_ext = dir.path().join("token.txt");
    std::fs::write(&wrong_ext, CANARY).unwrap();
    let big = dir.path().join("big.key");
    std::fs::write(&big, "k".repeat(4097)).unwrap();
    let dotdot = dir
        .path()
        .join("..")
        .join(outside.path().file_name().unwrap())
        .join("stolen.key");
    let mut cases: Vec<(PathBuf, &str)> = vec![
        (secret_file.clone(), "outside the agent's token directory"),
        (dotdot, "outside the agent's token directory"),
        (wrong_ext, "does not end in `.key`"),
        (big, "larger than 4096 bytes"),
        (dir.path().join("missing.key"), "does not exist"),
        (PathBuf::from("relative/x.key"), "not an absolute path"),
    ];
    #[cfg(unix)]
    {
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(&secret_file, &link).unwrap();
        cases.push((link, "outside the agent's token directory"));
        let link_txt = dir.path().join("link2.key");
        let inside_txt = dir.path().join("inside.txt");
        std::fs::write(&inside_txt, CANARY).unwrap();
        std::os::unix::fs::symlink(&inside_txt, &link_txt).unwrap();
        cases.push((link_txt, "resolves to a file that does not end in `.key`"));
        // A FIFO: opening it for reading must not wait for a writer.
        let fifo = dir.path().join("pipe.key");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            cases.push((fifo, "not a regular file"));
        }
    }
    for (path, needle) in cases {
        emu.reset_counts();
        emu.set_arc_challenge_path(Some(path.clone()));
        let err = cred.get_token(&graph()).await.unwrap_err();
        match &err {
            Error::Source(family)
                if let entra_mi::error::SourceError::ArcKeyFile { reason, .. } =
                    family.as_ref() =>
            {
                assert!(reason.contains(needle), "{path:?}: {reason}")
            }
            other => panic!("{path:?}: {other:?}"),
        }
        assert_no_secret(&err, &[CANARY]);
        assert_eq!(
            emu.requests(Endpoint::AzureArc),
            1,
            "{path:?}: no second leg"
        );
    }

    // A challenge without a usable realm.
    let server = RawServer::start(
        Reply::json(401, json!({"error": "unauthorized"}))
            .with_header("WWW-Authenticate", "Bearer realm=x"),
    )
    .await;
    let cred = ManagedIdentityCredential::builder()
        .environment(env(&[
            ("IDENTITY_ENDPOINT", &server.url("/t")),
            ("IMDS_ENDPOINT", &server.url("")),
        ]))
        .arc_key_directory(dir.path())
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("Basic realm"), "{err}");
    assert_eq!(server.count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Service Fabric

fn sf_env(emu: &Emulator, thumbprint: &str) -> Environment {
    env(&[
        ("IDENTITY_ENDPOINT", &emu.service_fabric_endpoint()),
        ("IDENTITY_HEADER", &emu.identity_header()),
        ("IDENTITY_SERVER_THUMBPRINT", thumbprint),
    ])
}

#[tokio::test]
async fn service_fabric_accepts_only_the_pinned_certificate() {
    let emu = Emulator::builder()
        .identity_header(CANARY)
        .start()
        .await
        .unwrap();
    let thumb = emu.service_fabric_thumbprint();
    assert_eq!(thumb.len(), 40);

    // Any case, with colons.
    let spaced: String = thumb
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    for t in [thumb.clone(), spaced] {
        let cred = ManagedIdentityCredential::builder()
            .environment(sf_env(&emu, &t))
            .build()
            .unwrap();
        assert_eq!(cred.source_kind(), SourceKind::ServiceFabric);
        let token = cred.get_token(&graph()).await.unwrap();
        assert_eq!(
            jwt_claims(token.secret())["aud"],
            "https://graph.microsoft.com"
        );
    }
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 2);

    // One digit off: the TLS handshake fails, so the secret header is never sent.
    let mut wrong = thumb.into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    // A failed verification is permanent: not retried (the fault matrix counts the sleeps).
    let cred = ManagedIdentityCredential::builder()
        .environment(sf_env(&emu, &wrong))
        .retry(RetryOptions::default().max_retries(3))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Unavailable {
            reason: Unavailable::TlsVerification { .. },
            ..
        })),
        "{err:?}"
    );
    assert_no_secret(&err, &[CANARY]);
    assert_eq!(
        emu.requests(Endpoint::ServiceFabric),
        2,
        "no request got through"
    );
}

#[tokio::test]
async fn service_fabric_configuration_is_validated() {
    let emu = Emulator::builder().start().await.unwrap();
    let thumb = emu.service_fabric_thumbprint();
    let err = ManagedIdentityCredential::builder()
        .environment(sf_env(&emu, &thumb))
        .client_id("11111111-2222-3333-4444-555555555555")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Service Fabric cannot select a user-assigned identity"),
        "{err}"
    );
    for bad in ["abc", "zz".repeat(20).as_str(), &format!("{thumb}00")] {
        let err = ManagedIdentityCredential::builder()
            .environment(sf_env(&emu, bad))
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, .. } if setting == "IDENTITY_SERVER_THUMBPRINT")),
            "{err:?}"
        );
    }
    let err = ManagedIdentityCredential::builder()
        .environment(env(&[
            (
                "IDENTITY_ENDPOINT",
                "http://127.0.0.1:2377/metadata/identity/oauth2/token",
            ),
            ("IDENTITY_HEADER", "h"),
            ("IDENTITY_SERVER_THUMBPRINT", &thumb),
        ]))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("must be https"), "{err}");
}

#[tokio::test]
async fn service_fabric_retries_429_but_never_404() {
    let emu = Emulator::builder().start().await.unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ManagedIdentityCredential::builder()
        .environment(sf_env(&emu, &emu.service_fabric_thumbprint()))
        .time_source(time)
        .build()
        .unwrap();
    for _ in 0..2 {
        emu.push_fault(
            Endpoint::ServiceFabric,
            Fault::Status {
                status: 429,
                retry_after: None,
                body: None,
            },
        );
    }
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 3);
    assert_eq!(sleeps.sleeps().len(), 2);

    emu.reset_counts();
    emu.push_fault(
        Endpoint::ServiceFabric,
        Fault::Status {
            status: 404,
            retry_after: None,
            body: None,
        },
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("ManagedIdentityNotFound"), "{err}");
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 1);
}

#[tokio::test]
async fn a_claims_challenge_makes_service_fabric_replace_its_cached_token() {
    // Service Fabric caches tokens; after an API rejected one (a claims challenge), the
    // provider names it by its SHA-256 (`token_sha256_to_refresh`) and the service issues a new
    // one. Other managed-identity sources take no such parameter.
    let emu = Emulator::builder().start().await.unwrap();
    let cred = ManagedIdentityCredential::builder()
        .environment(sf_env(&emu, &emu.service_fabric_thumbprint()))
        .build()
        .unwrap();
    let provider = TokenProvider::new(cred.clone());
    let handle = provider.handle(&Audience::microsoft_graph());
    let first = handle.token().await.unwrap();
    // The service's cache answers an ordinary request with the same token.
    let again = cred.get_token(&graph()).await.unwrap();
    assert!(again.is_same_token(&first));

    let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
    let replaced = handle.fetch_with_claims(claims).await.unwrap();
    assert!(!replaced.is_same_token(&first), "a new token");
    assert!(
        handle.token().await.unwrap().is_same_token(&replaced),
        "and it is cached"
    );
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 3);

    // The hash is sent only with claims: a request naming a token but without claims gets the
    // cached token.
    let named = graph().with_token_to_refresh(&replaced);
    assert!(
        cred.get_token(&named)
            .await
            .unwrap()
            .is_same_token(&replaced)
    );
    assert_eq!(
        named.token_to_refresh_sha256().map(str::len),
        Some(64),
        "lowercase hex SHA-256"
    );
    assert!(!format!("{named:?}").contains(replaced.secret()));
    // The example of MSAL.NET's token revocation design:
    // https://github.com/AzureAD/microsoft-authentication-library-for-dotnet/blob/main/docs/msiv1_token_revocation.md
    let example =
        entra_mi::AccessToken::new("test_token", SystemTime::now() + Duration::from_secs(3600));
    assert_eq!(
        graph()
            .with_token_to_refresh(&example)
            .token_to_refresh_sha256(),
        Some("cc0af97287543b65da2c7e1476426021826cab166f1e063ed012b855ff819656")
    );
}
