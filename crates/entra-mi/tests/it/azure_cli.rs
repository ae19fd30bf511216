//! The Azure CLI credential against stand-in `az` executables placed on a `PATH` given through
//! the credential's environment (the process environment is never changed): success,
//! arguments, not logged in, missing, hanging, garbage output and errors.
#![cfg(unix)]

use entra_mi_test_support as support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use entra_mi::credentials::AzureCliCredential;
use entra_mi::{Audience, Environment, Error, TokenCredential, TokenRequest};

const CANARY: &str = "eyJ0eXAiOiJKV1QifQ.CANARY-CLI-TOKEN.c2ln";

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("entra-mi-az-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// Writes an executable `az` shell script into a fresh directory.
fn stand_in(tag: &str, body: &str) -> Dir {
    let d = dir(tag);
    let path = d.0.join("az");
    support::script::write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
    d
}

fn cli(path: &Path, timeout: Duration) -> AzureCliCredential {
    AzureCliCredential::builder()
        .environment(Environment::from_vars([(
            "PATH",
            format!("{}:/usr/bin:/bin", path.display()),
        )]))
        .timeout(timeout)
        .build()
        .unwrap()
}

fn arm() -> TokenRequest {
    TokenRequest::new(Audience::new("https://management.azure.com/").unwrap())
}

fn success_json(expires_on: u64) -> String {
    format!(
        r#"{{"accessToken": "{CANARY}", "expiresOn": "2030-01-01 12:00:00.000000", "expires_on": {expires_on}, "subscription": "s", "tenant": "t", "tokenType": "Bearer"}}"#
    )
}

#[tokio::test]
async fn az_success_uses_expires_on_and_passes_arguments_without_a_shell() {
    let expires_on = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let d = stand_in(
        "ok",
        &format!(
            "printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"\npwd > \"$(dirname \"$0\")/cwd\"\ncat <<'EOF'\n{}\nEOF",
            success_json(expires_on)
        ),
    );
    let cred = cli(&d.0, Duration::from_secs(10));
    let token = cred.get_token(&arm()).await.unwrap();
    assert_eq!(token.secret(), CANARY);
    assert_eq!(token.expires_on_unix(), expires_on);
    let args = std::fs::read_to_string(d.0.join("args")).unwrap();
    assert_eq!(
        args.lines().collect::<Vec<_>>(),
        [
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            "https://management.azure.com/"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(d.0.join("cwd")).unwrap().trim(),
        std::fs::canonicalize("/bin").unwrap().to_str().unwrap()
    );

    let with_tenant = arm().with_tenant("contoso.onmicrosoft.com");
    cred.get_token(&with_tenant).await.unwrap();
    let args = std::fs::read_to_string(d.0.join("args")).unwrap();
    assert!(
        args.ends_with("--tenant\ncontoso.onmicrosoft.com\n"),
        "{args}"
    );

    // Arguments that could smuggle options are refused before anything runs.
    let err = cred
        .get_token(&TokenRequest::new(Audience::microsoft_graph()).with_tenant("x --debug"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Configuration(family) if matches!(&**family, entra_mi::error::ConfigurationError::Setting { .. })),
        "{err}"
    );
    let err = cred.get_token(&arm().with_claims("{}")).await.unwrap_err();
    assert!(
        err.to_string().contains("az login --claims-challenge"),
        "{err}"
    );
}

#[tokio::test]
async fn az_failures_are_typed_and_never_show_the_token() {
    let not_logged_in = stand_in(
        "login",
        "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1",
    );
    let aadsts = stand_in(
        "aadsts",
        "echo \"ERROR: AADSTS700082: The refresh token has expired. Run 'az login'\" >&2\nexit 1",
    );
    let garbage = stand_in("garbage", &format!("echo 'hello {CANARY} world'"));
    let no_expiry = stand_in(
        "old",
        &format!(
            "echo '{{\"accessToken\": \"{CANARY}\", \"expiresOn\": \"2030-01-01 12:00:00.000000\"}}'"
        ),
    );
    let echo_token = stand_in(
        "echo",
        &format!("echo '{{\"accessToken\": \"{CANARY}\"}}' >&2\nexit 2"),
    );
    let hang = stand_in("hang", "exec sleep 30");
    let empty = dir("empty");

    let err = cli(&not_logged_in.0, Duration::from_secs(10))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Credential(family) if matches!(family.as_ref(), entra_mi::error::CredentialError::Unavailable { reason, .. } if reason.contains("not logged in"))),
        "{err}"
    );

    let err = cli(&aadsts.0, Duration::from_secs(10))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Credential(family) if matches!(&**family, entra_mi::error::CredentialError::Failed { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("AADSTS700082"), "{err}");
    assert!(
        err.to_string()
            .contains("(hint: the sign-in has expired: run `az login` again)"),
        "{err}"
    );

    let err = cli(&garbage.0, Duration::from_secs(10))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert!(!format!("{err} {err:?}").contains("CANARY"));

    let err = cli(&no_expiry.0, Duration::from_secs(10))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2.54.0"), "{err}");
    assert!(!format!("{err} {err:?}").contains("CANARY"));

    let err = cli(&echo_token.0, Duration::from_secs(10))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("CANARY"), "{err}");

    let err = cli(&empty.0, Duration::from_secs(10))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Credential(family) if matches!(family.as_ref(), entra_mi::error::CredentialError::Unavailable { reason, .. } if reason.contains("not found on PATH"))),
        "{err}"
    );

    let started = Instant::now();
    let err = cli(&hang.0, Duration::from_millis(300))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Credential(family) if matches!(family.as_ref(), entra_mi::error::CredentialError::Unavailable { reason, .. } if reason.contains("did not finish within"))),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn absurd_expiry_from_az_is_a_typed_error_not_a_panic() {
    for (name, expires_on) in [
        ("max", "18446744073709551615"),
        ("max_str", "\"18446744073709551615\""),
        ("i64", "9223372036854775808"),
        ("far", "99999999999"),
    ] {
        let d = stand_in(
            name,
            &format!("echo '{{\"accessToken\": \"{CANARY}\", \"expires_on\": {expires_on}}}'"),
        );
        let err = cli(&d.0, Duration::from_secs(10))
            .get_token(&arm())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Credential(family) if matches!(&**family, entra_mi::error::CredentialError::Failed { .. })),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains("expires_on"), "{name}: {err}");
        assert!(
            !format!("{err} {err:?}").contains("CANARY"),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn az_output_beyond_the_limit_is_cut_off_not_waited_for() {
    let huge = stand_in("huge", "head -c 300000 /dev/zero | tr '\\0' 'x'");
    let started = Instant::now();
    let err = cli(&huge.0, Duration::from_secs(20))
        .get_token(&arm())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("printed more than 65536 bytes"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
