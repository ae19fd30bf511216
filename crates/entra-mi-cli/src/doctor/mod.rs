//! `entra-mi doctor`: which credential and source, why, whether the endpoint answers, and what
//! a token from it says — never the token, its signature or a secret variable's value.

mod human;
mod local;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use entra_mi::managed_identity::{self, Detection, ManagedIdentitySource, SourceKind};
use entra_mi::{Audience, Environment, Error, TokenRequest};
use serde_json::{Value, json};

use crate::credential::{self, CredentialKind, IdentityArgs};
use crate::{Failure, claims, output, printable, values};

use local::{
    ARC_PERMISSION_HINT, arc_key_directory_report, federated_token_file_report, human_age,
    proxy_variables,
};

/// Variables that steer the credentials other than managed identity (whose variables detection
/// lists itself); only their presence is ever shown.
const CREDENTIAL_VARIABLES: &[&str] = &[
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

/// Arguments of `entra-mi doctor`.
#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    /// The API to get a test token for.
    #[arg(
        long,
        value_name = "URI",
        default_value = "https://management.azure.com/",
        value_parser = values::audience
    )]
    resource: Audience,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Which credential to diagnose.
    #[arg(long, value_enum, default_value_t = CredentialKind::Auto)]
    credential: CredentialKind,
    /// `human` (default) or `json` for scripts.
    #[arg(long, value_enum, default_value_t = DoctorOutput::Human)]
    output: DoctorOutput,
    /// Give up on the endpoint after this many seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,
}

impl DoctorArgs {
    /// Flag combinations clap cannot express.
    pub(crate) fn check(&self) -> Result<(), String> {
        credential::check_selector(self.credential, &self.identity)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DoctorOutput {
    Human,
    Json,
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
fn endpoint_report(detection: &Detection) -> Value {
    let detected = &detection.source;
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
    if detection.fallback.is_some() {
        summary.push_str("; if the endpoint refuses it, api-version 2017-09-01 at MSI_ENDPOINT");
    }
    json!({
        "host": host,
        "scheme": url.scheme(),
        "api_version": version,
        "summary": summary,
    })
}

/// What the API receiving the token validates: v1.0 and v2.0 tokens carry different issuers
/// (<https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens>).
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
    if let Some(hint) = error.service_error().and_then(|e| e.hint()) {
        out.push(hint.to_owned());
    }
    if let Some(hint) = error.entra_error().and_then(|e| e.hint()) {
        out.push(hint.to_owned());
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
    let audience = args.resource;
    let variables: serde_json::Map<String, Value> = managed_identity::VARIABLES
        .iter()
        .chain(CREDENTIAL_VARIABLES)
        .map(|v| ((*v).to_owned(), Value::Bool(env.has(v))))
        .collect();
    let mut report = json!({
        "resource": printable::text(audience.resource()),
        "variables": variables,
    });
    let mut hints: Vec<String> = Vec::new();
    let mut ok = false;
    match Detection::from_env(&env) {
        Ok(detection) => {
            let kind = detection.source.kind();
            report["source"] = json!(kind.as_str());
            report["source_reason"] = json!(detection.evidence);
            report["endpoint"] = endpoint_report(&detection);
            if kind == SourceKind::AzureArc {
                report["arc_key_directory"] = match ManagedIdentitySource::arc_key_directory() {
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
            report["source_error"] = json!(printable::lines(&e.to_string()));
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
            report["credential_error"] = json!(printable::lines(&failure.message));
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
                            let mut shown = Value::Object(claims::shown(&all));
                            if shown["aud"].as_str() != Some(audience.resource()) {
                                hints.push(format!(
                                    "the token's aud is not {:?}: the API will reject it unless it accepts that audience",
                                    printable::text(audience.resource())
                                ));
                            }
                            if shown.get("roles").is_none() {
                                hints.push(
                                    "the token carries no app roles: an API that checks roles will answer 403; grant them with `entra-mi perms grant` (new roles show in tokens issued after the grant; managed-identity endpoints may serve the old token for up to 24 h)".into(),
                                );
                            }
                            // Claim values are whatever the issuer put there.
                            printable::json(&mut shown);
                            if let Some(receiver) = shown.as_object().and_then(receiver_summary) {
                                report["receiver"] = json!(receiver);
                            }
                            report["claims"] = shown;
                        }
                        Err(why) => report["claims_error"] = json!(why),
                    }
                }
                Err(e) => {
                    report["error"] = json!(printable::lines(&e.to_string()));
                    hints.extend(self::hints(&e));
                }
            }
        }
    }
    report["hints"] = json!(hints);
    let text = match args.output {
        DoctorOutput::Json => {
            serde_json::to_string_pretty(&report).map_err(|e| Failure::new(e.to_string()))?
        }
        DoctorOutput::Human => human::render(&report),
    };
    output::emit(text + "\n")?;
    if ok {
        Ok(())
    } else {
        Err(Failure::new(
            "no token could be obtained (see the diagnosis above)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
