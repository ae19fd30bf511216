//! Text the command prints but did not write itself — a service's error description, Graph's
//! error messages, display names and role values, claims decoded from a token, the resource
//! echoed by `token` — never carries a character a terminal acts on: an escape sequence
//! (`ESC [ 31 m`, or the one-character CSI U+009B), a carriage return that lets what follows
//! overwrite the line, a right-to-left override. Each is replaced with U+FFFD.

use crate::common;

use base64::Engine;
use entra_mi_emulator::{ApiApp, Emulator, Identity};
use serde_json::{Value, json};

use common::server::Canned;
use common::{run_async, strings};

/// The escape sequence and the carriage return of the brief, plus C1 CSI and RLO.
const EVIL: &str = "\x1b[31mred\rover\u{9b}2J\u{202E}rlo";
/// What [`EVIL`] must look like once printed.
const SHOWN: &str = "\u{FFFD}[31mred\u{FFFD}over\u{FFFD}2J\u{FFFD}rlo";

/// Fails when `out` holds a character a terminal would act on (other than line feeds).
fn assert_terminal_safe(what: &str, out: &str) {
    for (i, c) in out.char_indices() {
        let unsafe_char = (c.is_control() && c != '\n')
            || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        assert!(
            !unsafe_char,
            "{what}: U+{:04X} at byte {i}:\n{out}",
            c as u32
        );
    }
}

/// An IMDS that refuses every request with `error_description` carrying [`EVIL`].
async fn refusing_imds() -> Canned {
    let body =
        json!({"error": "invalid_request", "error_description": format!("bad {EVIL} thing")});
    Canned::start(400, "application/json", body.to_string()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_services_error_description_is_printed_safely() {
    let imds = refusing_imds().await;
    let env = vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url.clone())];
    let token = run_async(
        env.clone(),
        strings(&[
            "token",
            "--resource",
            "https://vault.azure.net",
            "--credential",
            "managed-identity",
        ]),
    )
    .await;
    assert_eq!(token.code, 1, "{}", token.stderr);
    assert_terminal_safe("token stderr", &token.stderr);
    // (A chain of credentials already puts each link's reason on one line, so the `\r` may
    // arrive as a space.)
    for part in ["bad \u{FFFD}[31mred", "over\u{FFFD}2J\u{FFFD}rlo thing"] {
        assert!(token.stderr.contains(part), "{part}: {}", token.stderr);
    }
    for output in ["human", "json"] {
        let doctor = run_async(
            env.clone(),
            strings(&[
                "doctor",
                "--credential",
                "managed-identity",
                "--output",
                output,
            ]),
        )
        .await;
        assert_eq!(doctor.code, 1, "{}", doctor.stderr);
        assert_terminal_safe("doctor stdout", &doctor.stdout);
        assert_terminal_safe("doctor stderr", &doctor.stderr);
        for part in ["bad \u{FFFD}[31mred", "over\u{FFFD}2J\u{FFFD}rlo thing"] {
            assert!(doctor.stdout.contains(part), "{part}: {}", doctor.stdout);
        }
    }
}

/// `header.payload.signature` with `claims` as the payload (not signed: doctor only decodes).
fn crafted_token(claims: &Value) -> String {
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "RS256", "typ": "JWT"})),
        b64(claims)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_decoded_by_doctor_are_printed_safely() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = crafted_token(&json!({
        "aud": "https://management.azure.com/",
        "iss": format!("https://sts.windows.net/{EVIL}/"),
        "ver": "1.0",
        "roles": [format!("Role{EVIL}")],
        "xms_mirid": EVIL,
        "iat": now,
        "exp": now + 3600,
    }));
    let imds = Canned::start(
        200,
        "application/json",
        json!({
            "access_token": token,
            "expires_in": "3600",
            "token_type": "Bearer",
            "resource": "https://management.azure.com/",
        })
        .to_string(),
    )
    .await;
    let env = vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url.clone())];
    for output in ["human", "json"] {
        let r = run_async(
            env.clone(),
            strings(&[
                "doctor",
                "--credential",
                "managed-identity",
                "--output",
                output,
            ]),
        )
        .await;
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_terminal_safe(output, &r.stdout);
        assert!(!r.stdout.contains(&token), "the token was shown");
        if output == "json" {
            let v: Value = serde_json::from_str(&r.stdout).unwrap();
            assert_eq!(v["claims"]["xms_mirid"], SHOWN);
            assert_eq!(v["claims"]["roles"], json!([format!("Role{SHOWN}")]));
        } else {
            assert!(
                r.stdout.contains(&format!("  xms_mirid  \"{SHOWN}\"")),
                "{}",
                r.stdout
            );
            assert!(r.stdout.contains("Receiver:"), "{}", r.stdout);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_resource_echoed_by_token_is_printed_safely() {
    let emu = Emulator::builder().start().await.unwrap();
    let resource = "https://orders.example/\u{9b}2J\u{202E}";
    let r = run_async(
        vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host())],
        strings(&["token", "--resource", resource]),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_terminal_safe("token stdout", &r.stdout);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["resource"], "https://orders.example/\u{FFFD}2J\u{FFFD}");
    assert_eq!(v["tokenType"], "Bearer");
}

/// Graph display names and role values, in `perms list` and `perms grant` (human and JSON),
/// and in the error that lists the roles an API defines.
#[tokio::test(flavor = "multi_thread")]
async fn graph_names_and_role_values_are_printed_safely() {
    let admin = Identity::system_assigned();
    let app = Identity::user_assigned(&format!("app{EVIL}"));
    let api = ApiApp::new(
        &format!("API{EVIL}"),
        "api://evil",
        &[&format!("Read{EVIL}")],
    );
    let emu = Emulator::builder()
        .system_assigned(Some(admin.clone()))
        .identity(app.clone())
        .api(api.clone())
        .roles(
            &admin.object_id,
            "https://graph.microsoft.com",
            &["AppRoleAssignment.ReadWrite.All", "Application.Read.All"],
        )
        .start()
        .await
        .unwrap();
    let env = vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host()),
        ("ENTRA_MI_GRAPH_URL", emu.base_url()),
    ];
    let role = format!("Read{EVIL}");
    let grant = run_async(
        env.clone(),
        strings(&[
            "perms",
            "grant",
            "--identity",
            &app.object_id,
            "--api",
            &api.app_id,
            "--role",
            &role,
        ]),
    )
    .await;
    assert_eq!(grant.code, 0, "{}", grant.stderr);
    assert_terminal_safe("grant", &grant.stdout);
    assert!(
        grant.stdout.contains(&format!(
            "granted Read{SHOWN} on API{SHOWN} to app{SHOWN} ("
        )),
        "{}",
        grant.stdout
    );
    for output in ["human", "json"] {
        let list = run_async(
            env.clone(),
            strings(&[
                "perms",
                "list",
                "--identity",
                &app.object_id,
                "--output",
                output,
            ]),
        )
        .await;
        assert_eq!(list.code, 0, "{}", list.stderr);
        assert_terminal_safe(output, &list.stdout);
        assert!(
            list.stdout.contains(&format!("app{SHOWN}")),
            "{}",
            list.stdout
        );
    }
    let unknown = run_async(
        env.clone(),
        strings(&[
            "perms",
            "grant",
            "--identity",
            &app.object_id,
            "--api",
            &api.app_id,
            "--role",
            "Write",
            "--output",
            "json",
        ]),
    )
    .await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert_terminal_safe("unknown role", &unknown.stderr);
    assert!(
        unknown.stderr.contains(&format!(
            "API{SHOWN} has no application role \"Write\"; valid ones: Read{SHOWN}"
        )),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graphs_error_code_and_message_are_printed_safely() {
    let emu = Emulator::builder().start().await.unwrap();
    let graph = Canned::start(
        403,
        "application/json",
        json!({"error": {"code": format!("Denied{EVIL}"), "message": format!("no{EVIL}way")}})
            .to_string(),
    )
    .await;
    let r = run_async(
        vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host())],
        strings(&[
            "perms",
            "list",
            "--identity",
            "orders-api",
            "--graph-url",
            &graph.url,
        ]),
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_terminal_safe("stderr", &r.stderr);
    assert!(
        r.stderr
            .contains(&format!("HTTP 403 Denied{SHOWN}: no{SHOWN}way")),
        "{}",
        r.stderr
    );
}
