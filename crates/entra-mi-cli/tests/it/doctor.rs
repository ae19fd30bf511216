//! End-to-end: what `entra-mi doctor` shows about the endpoint, proxies, the workload-identity
//! token file and the token's `aud`/`iss`/`ver`, against the emulator on 127.0.0.1, and that
//! no secret value (identity header, MSI secret, proxy credentials, token, token file) shows.

use std::time::{Duration, SystemTime};

use crate::common;

use entra_mi_emulator::Emulator;
use serde_json::Value;

use common::run;

fn scratch(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("entra-mi-cli-doctor-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Written into the workload-identity token file: it must never be shown.
const FILE_CANARY: &str = "eyJhbGciOiJSUzI1NiJ9.WI-FILE-CANARY.sig";
/// The password of the proxy URL: it must never be shown, nor the proxy's host.
const PROXY_URL: &str = "http://user:PROXY-PASSWORD-CANARY@proxy-canary.invalid:3128";

#[tokio::test(flavor = "multi_thread")]
async fn doctor_shows_endpoint_api_version_ver_proxy_and_token_file_age() {
    let emu = Emulator::builder().start().await.unwrap();
    let port = emu.addr().port();
    let dir = scratch("wi");
    let fresh = dir.join("fresh-token");
    std::fs::write(&fresh, FILE_CANARY).unwrap();
    let stale = dir.join("stale-token");
    std::fs::write(&stale, FILE_CANARY).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30 * 3600))
        .unwrap();
    let base = vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host()),
        ("HTTPS_PROXY", PROXY_URL.to_owned()),
        ("ALL_PROXY", PROXY_URL.to_owned()),
    ];
    let with_file = |path: &std::path::Path| {
        let mut env = base.clone();
        env.push((
            "AZURE_FEDERATED_TOKEN_FILE",
            path.to_string_lossy().into_owned(),
        ));
        env
    };
    let (fresh_env, stale_env) = (with_file(&fresh), with_file(&stale));
    let args = [
        "doctor",
        "--credential",
        "managed-identity",
        "--timeout",
        "10",
    ];
    let (human, json, old) = tokio::task::spawn_blocking(move || {
        let mut json_args = args.to_vec();
        json_args.extend(["--output", "json"]);
        (
            run(&fresh_env, &args),
            run(&fresh_env, &json_args),
            run(&stale_env, &args),
        )
    })
    .await
    .unwrap();
    assert_eq!(human.code, 0, "{}{}", human.stdout, human.stderr);
    let issuer = emu.issuer();
    for needle in [
        format!("Endpoint:    127.0.0.1:{port} over http, api-version 2018-02-01"),
        "  ver        \"1.0\"".to_owned(),
        format!("  iss        \"{issuer}\""),
        "Proxy:       HTTPS_PROXY, ALL_PROXY are set: managed-identity endpoints ignore proxies"
            .to_owned(),
        "WI token:    the file AZURE_FEDERATED_TOKEN_FILE names was modified ".to_owned(),
        format!(
            "Receiver:    an API receiving this token sees aud \"https://management.azure.com/\", iss \"{issuer}\", ver \"1.0\""
        ),
    ] {
        assert!(human.stdout.contains(&needle), "{needle}\n{}", human.stdout);
    }
    assert!(
        !human.stdout.contains("most likely expired"),
        "{}",
        human.stdout
    );

    assert_eq!(json.code, 0, "{}", json.stderr);
    let v: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["claims"]["ver"], "1.0");
    assert_eq!(v["endpoint"]["host"], format!("127.0.0.1:{port}"));
    assert_eq!(v["endpoint"]["api_version"], "2018-02-01");
    assert_eq!(
        v["proxy"]["variables"],
        serde_json::json!(["HTTPS_PROXY", "ALL_PROXY"])
    );
    assert_eq!(v["proxy"]["managed_identity"], "ignored");
    assert_eq!(v["federated_token_file"]["stale"], false);
    assert!(v["federated_token_file"]["age_s"].as_u64().unwrap() < 3600);

    assert_eq!(old.code, 0, "{}", old.stderr);
    assert!(
        old.stdout.contains("was modified 30 h")
            && old
                .stdout
                .contains("Hint:        the workload-identity token file was last written 30 h")
            && old.stdout.contains("most likely expired"),
        "{}",
        old.stdout
    );

    for r in [&human, &json, &old] {
        let all = format!("{}{}", r.stdout, r.stderr);
        for secret in [
            "WI-FILE-CANARY",
            "PROXY-PASSWORD-CANARY",
            "proxy-canary.invalid",
            "eyJ",
            dir.to_str().unwrap(),
        ] {
            assert!(!all.contains(secret), "{secret} shown:\n{all}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A source's variables, the endpoint line doctor must print, and whether a token is expected.
struct Case {
    env: Vec<(&'static str, String)>,
    line: String,
    ok: bool,
}

/// Each source's endpoint host and api-version, and never the secret that goes with it.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_every_sources_api_version_and_never_its_secret() {
    const HEADER: &str = "IDENTITY-HEADER-CANARY";
    const MSI_SECRET: &str = "MSI-SECRET-CANARY";
    let emu = Emulator::builder()
        .identity_header(HEADER)
        .msi_secret(MSI_SECRET)
        .start()
        .await
        .unwrap();
    let port = emu.addr().port();
    let sf_port = url::Url::parse(&emu.service_fabric_endpoint())
        .unwrap()
        .port()
        .unwrap();
    let cases: Vec<Case> = vec![
        Case {
            env: vec![
                ("IDENTITY_ENDPOINT", emu.app_service_endpoint()),
                ("IDENTITY_HEADER", HEADER.into()),
                ("MSI_ENDPOINT", emu.msi_endpoint()),
                ("MSI_SECRET", MSI_SECRET.into()),
            ],
            line: format!(
                "Endpoint:    127.0.0.1:{port} over http, api-version 2019-08-01; if the endpoint refuses it, api-version 2017-09-01 at MSI_ENDPOINT"
            ),
            ok: true,
        },
        Case {
            env: vec![
                ("MSI_ENDPOINT", emu.msi_endpoint()),
                ("MSI_SECRET", MSI_SECRET.into()),
            ],
            line: format!("Endpoint:    127.0.0.1:{port} over http, api-version 2017-09-01"),
            ok: true,
        },
        Case {
            env: vec![("MSI_ENDPOINT", emu.cloud_shell_endpoint())],
            line: format!(
                "Endpoint:    127.0.0.1:{port} over http, no api-version (Cloud Shell takes a POST form)"
            ),
            ok: true,
        },
        Case {
            env: vec![
                ("IDENTITY_ENDPOINT", emu.service_fabric_endpoint()),
                ("IDENTITY_HEADER", HEADER.into()),
                (
                    "IDENTITY_SERVER_THUMBPRINT",
                    emu.service_fabric_thumbprint(),
                ),
            ],
            line: format!(
                "Endpoint:    127.0.0.1:{sf_port} over https, api-version 2019-07-01-preview"
            ),
            ok: true,
        },
        Case {
            env: vec![
                ("IDENTITY_ENDPOINT", emu.arc_endpoint()),
                ("IMDS_ENDPOINT", emu.base_url()),
            ],
            line: format!("Endpoint:    127.0.0.1:{port} over http, api-version 2020-06-01"),
            // The emulator has no key directory here, so no Arc token.
            ok: false,
        },
    ];
    let runs = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .map(|Case { env, line, ok }| {
                let r = run(
                    &env,
                    &[
                        "doctor",
                        "--credential",
                        "managed-identity",
                        "--timeout",
                        "5",
                    ],
                );
                (r, line, ok)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (r, line, ok) in runs {
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(r.stdout.contains(&line), "{line}\n{all}");
        assert_eq!(r.code, if ok { 0 } else { 1 }, "{all}");
        if ok {
            assert!(r.stdout.contains("  ver        \"1.0\""), "{all}");
        } else {
            assert!(r.stdout.contains("Arc keys:    "), "{all}");
        }
        for secret in [HEADER, MSI_SECRET, "eyJ"] {
            assert!(!all.contains(secret), "{secret} shown:\n{all}");
        }
    }
}
