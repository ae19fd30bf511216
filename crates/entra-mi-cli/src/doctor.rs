//! `entra-mi doctor`: which credential and source, why, whether the endpoint answers, and what
//! a token from it says — never the token, its signature or a secret variable's value.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use entra_mi::{Audience, Detected, Environment, Error, SourceKind, TokenRequest, detect_source};
use serde_json::{Value, json};

use crate::Failure;
use crate::claims;
use crate::credential::{self, CredentialKind, IdentityArgs};

/// Variables that steer credentials; only their presence is ever shown.
const VARIABLES: &[&str] = &[
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "DEFAULT_IDENTITY_CLIENT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
];

/// The proxy variables HTTP clients honour (both spellings: they differ outside Windows).
const PROXY_VARIABLES: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A workload-identity token file not rewritten for this long has most likely expired: the
/// kubelet rewrites a projected service-account token at 80% of its lifetime, and at least
/// every 24 hours.
const FEDERATED_TOKEN_FILE_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// Arguments of `entra-mi doctor`.
#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// The API to get a test token for.
    #[arg(
        long,
        value_name = "URI",
        default_value = "https://management.azure.com/"
    )]
    resource: String,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Which credential to diagnose.
    #[arg(long, value_enum, default_value_t = CredentialKind::Auto)]
    credential: CredentialKind,
    /// `human` (default) or `json` for scripts.
    #[arg(long, value_enum, default_value_t = DoctorOutput::Human)]
    output: DoctorOutput,
    /// Give up on the endpoint after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    timeout: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DoctorOutput {
    Human,
    Json,
}

fn why(detected: &Detected, env: &Environment) -> String {
    let set = |names: &[&str]| names.join(" and ") + " are set";
    match detected.kind() {
        SourceKind::AppService => set(&["IDENTITY_ENDPOINT", "IDENTITY_HEADER"]),
        SourceKind::ServiceFabric => set(&["IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"]),
        SourceKind::AzureArc => "IDENTITY_ENDPOINT and IMDS_ENDPOINT are set, or the Arc agent is installed".into(),
        SourceKind::AzureMl => set(&["MSI_ENDPOINT", "MSI_SECRET"]),
        SourceKind::CloudShell => "MSI_ENDPOINT is set without MSI_SECRET".into(),
        _ if env.has("AZURE_POD_IDENTITY_AUTHORITY_HOST") => {
            "no other managed-identity variables are set; AZURE_POD_IDENTITY_AUTHORITY_HOST moves IMDS".into()
        }
        _ => "no other managed-identity variables are set, so the VM's Instance Metadata Service".into(),
    }
}

/// `host:port` of `url` (the port made explicit), never its path or query.
fn host_port(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("(no host)");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Where the managed-identity requests go: host, scheme and api-version.
fn endpoint_report(detected: &Detected, env: &Environment) -> Value {
    let url = detected.endpoint();
    let host = host_port(url);
    let version = detected.api_version();
    let mut summary = match (version, detected.kind()) {
        (Some(v), _) => format!("{host} over {}, api-version {v}", url.scheme()),
        (None, SourceKind::CloudShell) => format!(
            "{host} over {}, no api-version (Cloud Shell takes a POST form)",
            url.scheme()
        ),
        (None, _) => format!("{host} over {}, api-version unknown", url.scheme()),
    };
    if detected.kind() == SourceKind::AppService && env.has("MSI_ENDPOINT") && env.has("MSI_SECRET")
    {
        summary.push_str("; if the endpoint refuses it, api-version 2017-09-01 at MSI_ENDPOINT");
    }
    json!({
        "host": host,
        "scheme": url.scheme(),
        "api_version": version,
        "summary": summary,
    })
}

/// The proxy variables that are set (names only, each name once: on Windows, where variable
/// names are case-insensitive, both spellings read the same variable).
fn proxy_variables(env: &Environment) -> Vec<&'static str> {
    let mut set: Vec<&'static str> = Vec::new();
    for name in PROXY_VARIABLES {
        if env.has(name) && !set.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            set.push(name);
        }
    }
    set
}

/// What the Arc agent's users need to know.
const ARC_PERMISSION_HINT: &str = if cfg!(windows) {
    "Azure Arc: the process must run as an Administrator or in the \"Hybrid Agent Extension Applications\" group to read the agent's key files"
} else {
    "Azure Arc: the process's user must be in the `himds` group to read the agent's key files (`sudo usermod -aG himds <user>`, then log in again)"
};

/// The group name of `gid` from `/etc/group`, if it is there.
#[cfg(unix)]
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == gid).then(|| name.to_owned())
    })
}

/// Permissions of the Arc key directory and whether this user can list it. Only metadata
/// and file names are read, never a key file.
fn arc_key_directory_report(dir: &Path) -> Value {
    let shown = dir.display().to_string();
    let mut out = json!({ "path": shown });
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) => {
            let missing = e.kind() == std::io::ErrorKind::NotFound;
            out["exists"] = if missing { json!(false) } else { Value::Null };
            out["summary"] = json!(if missing {
                format!("{shown} does not exist (is the Connected Machine agent installed?)")
            } else {
                format!("{shown} cannot be examined ({})", e.kind())
            });
            return out;
        }
    };
    out["exists"] = json!(true);
    let mut parts: Vec<String> = Vec::new();
    if !meta.is_dir() {
        parts.push("not a directory".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        out["mode"] = json!(format!("{mode:04o}"));
        out["uid"] = json!(meta.uid());
        out["gid"] = json!(meta.gid());
        let group = group_name(meta.gid());
        parts.push(format!(
            "mode {mode:04o}, owner uid {}, group {}",
            meta.uid(),
            match &group {
                Some(name) => format!("{name} (gid {})", meta.gid()),
                None => format!("gid {}", meta.gid()),
            }
        ));
        out["group"] = json!(group);
    }
    match std::fs::read_dir(dir) {
        Ok(_) => {
            out["readable"] = json!(true);
            parts.push("this user can read it".into());
        }
        Err(e) => {
            out["readable"] = json!(false);
            parts.push(format!("this user cannot read it ({})", e.kind()));
        }
    }
    out["summary"] = json!(format!("{shown}: {}", parts.join("; ")));
    out
}

/// A duration as people read it: `42 s`, `17 min`, `5 h 3 min`, `3 d 4 h`.
fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// How long ago the workload-identity token file was written (by its modification time; the
/// file itself is not read).
fn federated_token_file_report(path: &Path, now: SystemTime) -> Value {
    const WHAT: &str = "the file AZURE_FEDERATED_TOKEN_FILE names";
    let problem = |why: String| json!({ "error": why, "summary": format!("{WHAT} {why}") });
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return problem("does not exist".into());
        }
        Err(e) => return problem(format!("cannot be examined ({})", e.kind())),
    };
    if !meta.is_file() {
        return problem("is not a regular file".into());
    }
    let modified = match meta.modified() {
        Ok(t) => t,
        Err(e) => return problem(format!("has no modification time ({})", e.kind())),
    };
    match now.duration_since(modified) {
        Ok(age) => json!({
            "age_s": age.as_secs(),
            "stale": age > FEDERATED_TOKEN_FILE_STALE,
            "summary": format!("{WHAT} was modified {} ago", human_age(age)),
        }),
        Err(_) => json!({
            "age_s": 0,
            "stale": false,
            "summary": format!("{WHAT} was modified in the future (is the clock right?)"),
        }),
    }
}

/// What the API receiving the token validates (pitfall: v1 vs v2 issuers).
fn receiver_summary(shown: &serde_json::Map<String, Value>) -> Option<String> {
    let aud = shown.get("aud")?;
    let iss = shown.get("iss")?;
    let ver = shown.get("ver").cloned().unwrap_or(Value::Null);
    let note = match ver.as_str() {
        Some("1.0") => {
            " (a v1.0 token: a receiver set up for v2.0 issuers, https://login.microsoftonline.com/<tid>/v2.0, rejects it unless it accepts this issuer too)"
        }
        Some("2.0") => " (a v2.0 token: the API's accessTokenAcceptedVersion is 2)",
        _ => "",
    };
    Some(format!(
        "an API receiving this token sees aud {aud}, iss {iss}, ver {ver}: it must accept exactly these{note}"
    ))
}

/// The fix for the failures people hit most. Chain errors carry each link's message as text,
/// so the advice is chosen from the words of the error.
fn hints(error: &Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    match error {
        Error::Refused { error, .. } => out.extend(error.hint().map(str::to_owned)),
        Error::TokenEndpoint { error, .. } => out.extend(error.hint().map(str::to_owned)),
        _ => {}
    }
    let text = error.to_string().to_ascii_lowercase();
    // The library's own hint for "Identity not found" says the same; don't print both.
    if out.is_empty()
        && (text.contains("identity not found") || text.contains("no managed identity found"))
    {
        out.push("no managed identity is assigned to this resource, or the user-assigned id is wrong: enable the system-assigned identity or attach the user-assigned one (portal: Identity; CLI: `az vm identity assign`, `az webapp identity assign`), and check --client-id/--object-id/--resource-id".into());
    }
    if text.contains("invalid_resource") || text.contains("aadsts500011") {
        out.push("wrong audience: no application with that identifier exists in the tenant; use the API's Application ID URI exactly as registered, or its application (client) id".into());
    }
    if text.contains("imds endpoint") && text.contains("unavailable") {
        out.push("IMDS answers only on Azure VMs, scale sets and AKS nodes; off Azure, sign in with `az login` or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, or run `entra-mi emulator` for local development".into());
    }
    out.dedup();
    out
}

pub(crate) async fn run(args: DoctorArgs) -> Result<(), Failure> {
    let env = Environment::process();
    let audience = Audience::new(&args.resource)?;
    let variables: serde_json::Map<String, Value> = VARIABLES
        .iter()
        .map(|v| ((*v).to_owned(), Value::Bool(env.has(v))))
        .collect();
    let mut report = json!({
        "resource": audience.resource(),
        "variables": variables,
    });
    let mut hints: Vec<String> = Vec::new();
    let mut ok = false;
    match detect_source(&env) {
        Ok(detected) => {
            report["source"] = json!(detected.kind().as_str());
            report["source_reason"] = json!(why(&detected, &env));
            report["endpoint"] = endpoint_report(&detected, &env);
            if detected.kind() == SourceKind::AzureArc {
                report["arc_key_directory"] = match Detected::arc_key_directory() {
                    Some(dir) => {
                        let arc = arc_key_directory_report(&dir);
                        if arc["readable"] == json!(false) {
                            hints.push(ARC_PERMISSION_HINT.into());
                        }
                        arc
                    }
                    None => json!({
                        "summary": "the Connected Machine agent has no token directory on this OS",
                    }),
                };
            }
        }
        Err(e) => {
            report["source_error"] = json!(e.to_string());
        }
    }
    let proxies = proxy_variables(&env);
    if !proxies.is_empty() {
        let verb = if proxies.len() == 1 { "is" } else { "are" };
        report["proxy"] = json!({
            "variables": proxies,
            "managed_identity": "ignored",
            "summary": format!(
                "{} {verb} set: managed-identity endpoints ignore proxies (they are always reached directly); the Entra token endpoint (workload identity, client secret or certificate) and `az` use them",
                proxies.join(", ")
            ),
        });
    }
    if let Some(path) = env.get("AZURE_FEDERATED_TOKEN_FILE") {
        let file = federated_token_file_report(Path::new(&path), SystemTime::now());
        if file["stale"] == json!(true) {
            hints.push(format!(
                "the workload-identity token file was last written {} ago: the kubelet rewrites a projected service-account token at 80% of its lifetime (and at least every 24 h), so this one has most likely expired; point AZURE_FEDERATED_TOKEN_FILE at the projected volume itself, not a copy",
                human_age(Duration::from_secs(file["age_s"].as_u64().unwrap_or(0)))
            ));
        }
        report["federated_token_file"] = file;
    }
    match credential::build(args.credential, &args.identity, &env) {
        Err(failure) => {
            report["credential_error"] = json!(failure.message);
        }
        Ok(chosen) => {
            let credential = chosen.credential();
            let request = TokenRequest::new(audience.clone())
                .with_deadline(Duration::from_secs(args.timeout));
            let started = Instant::now();
            let result =
                crate::progress::step("asking for a token", credential.get_token(&request)).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            report["elapsed_ms"] = json!(elapsed_ms);
            report["credential"] = json!(chosen.source());
            match result {
                Ok(token) => {
                    ok = true;
                    report["token"] = json!("obtained");
                    report["expires_on"] = json!(token.expires_on_unix());
                    match claims::decode(token.secret()) {
                        Ok(all) => {
                            let shown = claims::shown(&all);
                            if shown.get("aud").and_then(Value::as_str) != Some(audience.resource())
                            {
                                hints.push(format!(
                                    "the token's aud is not {:?}: the API will reject it unless it accepts that audience",
                                    audience.resource()
                                ));
                            }
                            if shown.get("roles").is_none() {
                                hints.push(
                                    "the token carries no app roles: an API that checks roles will answer 403; grant them with `entra-mi perms grant` (new roles show in tokens issued after the grant; managed-identity endpoints may serve the old token for up to 24 h)".into(),
                                );
                            }
                            if let Some(receiver) = receiver_summary(&shown) {
                                report["receiver"] = json!(receiver);
                            }
                            report["claims"] = Value::Object(shown);
                        }
                        Err(why) => report["claims_error"] = json!(why),
                    }
                }
                Err(e) => {
                    report["error"] = json!(e.to_string());
                    hints.extend(self::hints(&e));
                }
            }
        }
    }
    report["hints"] = json!(hints);
    match args.output {
        DoctorOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Failure::auth(e.to_string()))?
        ),
        DoctorOutput::Human => print_human(&report),
    }
    if ok {
        Ok(())
    } else {
        Err(Failure::auth(
            "no token could be obtained (see the diagnosis above)",
        ))
    }
}

fn print_human(report: &Value) {
    let s = |k: &str| report[k].as_str().unwrap_or("").to_owned();
    println!("Environment (presence only; values are never shown):");
    if let Some(vars) = report["variables"].as_object() {
        for (name, set) in vars {
            if set.as_bool() == Some(true) {
                println!("  {name:<36} set");
            }
        }
        if !vars.values().any(|v| v.as_bool() == Some(true)) {
            println!("  (none of the identity variables is set)");
        }
    }
    if report.get("source").is_some() {
        println!(
            "Source:      {} — because {}",
            s("source"),
            s("source_reason")
        );
    } else {
        println!("Source:      cannot be determined: {}", s("source_error"));
    }
    let summary = |k: &str| report[k]["summary"].as_str().map(str::to_owned);
    for (key, label) in [
        ("endpoint", "Endpoint:"),
        ("arc_key_directory", "Arc keys:"),
        ("proxy", "Proxy:"),
        ("federated_token_file", "WI token:"),
    ] {
        if let Some(line) = summary(key) {
            println!("{label:<12} {line}");
        }
    }
    if report.get("credential").is_some() {
        println!("Credential:  {}", s("credential"));
    } else {
        println!("Credential:  cannot be built: {}", s("credential_error"));
    }
    if report.get("elapsed_ms").is_some() {
        let verdict = if report.get("token").is_some() {
            "obtained"
        } else {
            "failed"
        };
        println!(
            "Token:       {verdict} in {} ms for {}",
            report["elapsed_ms"],
            s("resource")
        );
    }
    if report.get("error").is_some() {
        println!("Error:       {}", s("error"));
    }
    if let Some(shown) = report["claims"].as_object() {
        println!("Token claims (decoded, not verified; the token itself is not shown):");
        for k in claims::SHOWN {
            if let Some(v) = shown.get(*k) {
                println!("  {k:<10} {v}");
            }
        }
    }
    if report.get("receiver").is_some() {
        println!("Receiver:    {}", s("receiver"));
    }
    if let Some(hints) = report["hints"].as_array() {
        for h in hints {
            println!("Hint:        {}", h.as_str().unwrap_or(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(Duration::from_secs(42)), "42 s");
        assert_eq!(human_age(Duration::from_secs(17 * 60 + 5)), "17 min");
        assert_eq!(human_age(Duration::from_secs(5 * 3600 + 180)), "5 h 3 min");
        assert_eq!(
            human_age(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3 d 4 h"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("entra-mi-doctor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_federated_token_file_age_and_staleness() {
        let dir = scratch("wi");
        let file = dir.join("token");
        std::fs::write(&file, "not shown").unwrap();
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        let fresh = federated_token_file_report(&file, written + Duration::from_secs(600));
        assert_eq!(fresh["age_s"], 600);
        assert_eq!(fresh["stale"], false);
        assert!(
            fresh["summary"]
                .as_str()
                .unwrap()
                .ends_with("modified 10 min ago")
        );
        let old = federated_token_file_report(&file, written + Duration::from_secs(25 * 3600));
        assert_eq!(old["stale"], true);
        let future = federated_token_file_report(&file, written - Duration::from_secs(60));
        assert_eq!(future["stale"], false);
        assert!(
            future["summary"]
                .as_str()
                .unwrap()
                .contains("in the future")
        );
        let missing = federated_token_file_report(&dir.join("nope"), SystemTime::now());
        assert_eq!(missing["error"], "does not exist");
        let not_file = federated_token_file_report(&dir, SystemTime::now());
        assert_eq!(not_file["error"], "is not a regular file");
        for v in [fresh, old, future, missing, not_file] {
            assert!(!v.to_string().contains("not shown"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_arc_key_directory_permissions() {
        let dir = scratch("arc");
        std::fs::write(dir.join("secret.key"), "KEY-CONTENT-CANARY").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        }
        let v = arc_key_directory_report(&dir);
        assert_eq!(v["exists"], true);
        assert_eq!(v["readable"], true);
        #[cfg(unix)]
        {
            assert_eq!(v["mode"], "0750");
            assert!(v["summary"].as_str().unwrap().contains("mode 0750"));
        }
        assert!(!v.to_string().contains("KEY-CONTENT-CANARY"));
        let gone = arc_key_directory_report(&dir.join("missing"));
        assert_eq!(gone["exists"], false);
        assert!(gone["summary"].as_str().unwrap().contains("does not exist"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proxy_variables_are_named_once() {
        let env = Environment::from_vars([
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("all_proxy", "socks5://proxy:1080"),
            ("HTTP_PROXY", ""),
        ]);
        assert_eq!(proxy_variables(&env), ["HTTPS_PROXY", "all_proxy"]);
        assert!(proxy_variables(&Environment::from_vars([("X", "y")])).is_empty());
    }

    #[test]
    fn the_receiver_line_names_aud_iss_and_ver() {
        let shown: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "aud": "api://orders",
            "iss": "https://sts.windows.net/t/",
            "ver": "1.0",
        }))
        .unwrap();
        let line = receiver_summary(&shown).unwrap();
        for needle in [
            "\"api://orders\"",
            "https://sts.windows.net/t/",
            "\"1.0\"",
            "v1.0 token",
        ] {
            assert!(line.contains(needle), "{needle}: {line}");
        }
        assert!(receiver_summary(&serde_json::Map::new()).is_none());
    }
}
