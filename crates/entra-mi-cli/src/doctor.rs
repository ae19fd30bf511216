//! `entra-mi doctor`: which credential and source, why, whether the endpoint answers, and what
//! a token from it says — never the token, its signature or a secret variable's value.

use std::time::{Duration, Instant};

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
];

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
    if text.contains("identity not found") || text.contains("no managed identity found") {
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
        }
        Err(e) => {
            report["source_error"] = json!(e.to_string());
        }
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
    if report.get("credential").is_some() {
        println!("Credential:  {}", s("credential"));
    } else {
        println!("Credential:  cannot be built: {}", s("credential_error"));
    }
    if report.get("elapsed_ms").is_some() {
        let verdict = if report.get("token").is_some() {
            "token obtained"
        } else {
            "failed"
        };
        println!(
            "Endpoint:    {verdict} in {} ms for {}",
            report["elapsed_ms"],
            s("resource")
        );
    }
    if report.get("error").is_some() {
        println!("Error:       {}", s("error"));
    }
    if let Some(shown) = report["claims"].as_object() {
        println!("Token claims (the token itself is not shown):");
        for k in claims::SHOWN {
            if let Some(v) = shown.get(*k) {
                println!("  {k:<10} {v}");
            }
        }
    }
    if let Some(hints) = report["hints"].as_array() {
        for h in hints {
            println!("Hint:        {}", h.as_str().unwrap_or(""));
        }
    }
}
