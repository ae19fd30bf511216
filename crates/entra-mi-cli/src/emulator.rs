//! `entra-mi emulator`: the managed-identity endpoints on loopback, for local development.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use entra_mi_emulator::{Emulator, Identity, MAX_TOKEN_LIFETIME};
use serde_json::Value;

use crate::Failure;

/// Arguments of `entra-mi emulator`.
#[derive(Args, Debug)]
pub(crate) struct EmulatorArgs {
    /// Loopback port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Token lifetime in seconds, from 1 to 315360000 (10 years); real managed-identity
    /// tokens live about 24 h, and `entra-mi` itself refuses tokens that live over 7 days.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_399)]
    token_lifetime: u64,
    /// Add a user-assigned identity with this name (repeatable).
    #[arg(long = "identity", value_name = "NAME")]
    identities: Vec<String>,
    /// Give an identity an app role on an API: `IDENTITY,AUDIENCE,ROLE`, where IDENTITY is a
    /// user-assigned identity's name or `system` (repeatable).
    #[arg(long = "role", value_name = "IDENTITY,AUDIENCE,ROLE")]
    roles: Vec<String>,
    /// Read identities, roles, port and lifetime from a JSON file:
    /// `{"port": 0, "token_lifetime": 3600, "identities": ["orders-api"],
    ///   "roles": [{"identity": "orders-api", "audience": "https://graph.microsoft.com", "roles": ["User.Read.All"]}]}`
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Which endpoint the printed environment points apps at.
    #[arg(long, value_enum, default_value_t = EnvFor::Imds)]
    env_for: EnvFor,
    /// Print only `NAME=value` lines for the environment (for scripts), then keep serving.
    #[arg(long)]
    print_env: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EnvFor {
    /// AZURE_POD_IDENTITY_AUTHORITY_HOST, the IMDS address override.
    Imds,
    /// IDENTITY_ENDPOINT and IDENTITY_HEADER, as on App Service.
    AppService,
}

/// The allowed token lifetimes, in seconds: 1 to the emulator's maximum (10 years).
fn lifetime_in_range(seconds: u64) -> bool {
    (1..=MAX_TOKEN_LIFETIME.as_secs()).contains(&seconds)
}

struct Settings {
    port: u16,
    lifetime: u64,
    identities: Vec<String>,
    roles: Vec<(String, String, String)>,
}

fn settings(args: &EmulatorArgs) -> Result<Settings, Failure> {
    let max = MAX_TOKEN_LIFETIME.as_secs();
    if !lifetime_in_range(args.token_lifetime) {
        return Err(Failure::usage(format!(
            "--token-lifetime {}: must be from 1 to {max} seconds (10 years)",
            args.token_lifetime
        )));
    }
    let mut s = Settings {
        port: args.port,
        lifetime: args.token_lifetime,
        identities: args.identities.clone(),
        roles: Vec::new(),
    };
    if let Some(path) = &args.config {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("--config {shown}: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::usage(format!(
                "--config {shown}: not valid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        let bad = |what: &str| Failure::usage(format!("--config {shown}: {what}"));
        let obj = v.as_object().ok_or_else(|| bad("expected a JSON object"))?;
        for key in obj.keys() {
            if !["port", "token_lifetime", "identities", "roles"].contains(&key.as_str()) {
                return Err(bad(&format!("unknown key {key:?}")));
            }
        }
        if let Some(p) = obj.get("port") {
            s.port = p
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| bad("`port` must be a number from 0 to 65535"))?;
        }
        if let Some(l) = obj.get("token_lifetime") {
            s.lifetime = l.as_u64().filter(|&n| lifetime_in_range(n)).ok_or_else(|| {
                bad(&format!(
                    "`token_lifetime` must be a whole number of seconds from 1 to {max} (10 years)"
                ))
            })?;
        }
        if let Some(ids) = obj.get("identities") {
            for id in ids
                .as_array()
                .ok_or_else(|| bad("`identities` must be an array of names"))?
            {
                s.identities.push(
                    id.as_str()
                        .ok_or_else(|| bad("`identities` must hold strings"))?
                        .to_owned(),
                );
            }
        }
        if let Some(roles) = obj.get("roles") {
            for r in roles
                .as_array()
                .ok_or_else(|| bad("`roles` must be an array"))?
            {
                let field = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| bad(&format!("each role needs a string `{k}`")))
                };
                let (identity, audience) = (field("identity")?, field("audience")?);
                let names = r
                    .get("roles")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("each role needs a `roles` array"))?;
                for n in names {
                    let n = n.as_str().ok_or_else(|| bad("`roles` must hold strings"))?;
                    s.roles
                        .push((identity.clone(), audience.clone(), n.to_owned()));
                }
            }
        }
    }
    for r in &args.roles {
        let parts: Vec<&str> = r.split(',').collect();
        match parts.as_slice() {
            [i, a, role] if !i.is_empty() && !a.is_empty() && !role.is_empty() => {
                s.roles
                    .push(((*i).to_owned(), (*a).to_owned(), (*role).to_owned()))
            }
            _ => {
                return Err(Failure::usage(format!(
                    "--role {r:?}: expected IDENTITY,AUDIENCE,ROLE"
                )));
            }
        }
    }
    Ok(s)
}

pub(crate) async fn run(args: EmulatorArgs) -> Result<(), Failure> {
    let s = settings(&args)?;
    let identities: Vec<Identity> = s
        .identities
        .iter()
        .map(|n| Identity::user_assigned(n))
        .collect();
    let system = Identity::system_assigned();
    let mut builder = Emulator::builder()
        .port(s.port)
        .token_lifetime(Duration::from_secs(s.lifetime))
        .system_assigned(Some(system.clone()));
    for id in &identities {
        builder = builder.identity(id.clone());
    }
    for (who, audience, role) in &s.roles {
        let object_id = if who == "system" {
            &system.object_id
        } else {
            &identities
                .iter()
                .find(|i| i.display_name == *who || i.client_id == *who || i.object_id == *who)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "--role names unknown identity {who:?}; add it with --identity {who}"
                    ))
                })?
                .object_id
        };
        builder = builder.roles(object_id, audience, &[role.as_str()]);
    }
    let emulator = builder
        .start()
        .await
        .map_err(|e| Failure::auth(format!("cannot start the emulator: {e}")))?;
    let env: Vec<(&str, String)> = match args.env_for {
        EnvFor::Imds => vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.imds_host())],
        EnvFor::AppService => vec![
            ("IDENTITY_ENDPOINT", emulator.app_service_endpoint()),
            ("IDENTITY_HEADER", emulator.identity_header()),
        ],
    };
    if args.print_env {
        for (k, v) in &env {
            println!("{k}={v}");
        }
    } else {
        println!("entra-mi emulator listening on {}", emulator.base_url());
        println!("  IMDS:         {}", emulator.imds_token_url());
        println!("  App Service:  {}", emulator.app_service_endpoint());
        println!("  JWKS:         {}", emulator.jwks_url());
        println!("  tenant:       {}", emulator.tenant_id());
        println!("identities:");
        println!(
            "  system-assigned  object id {}  client id {}",
            system.object_id, system.client_id
        );
        for id in &identities {
            println!(
                "  {}  object id {}  client id {}\n    resource id {}",
                id.display_name, id.object_id, id.client_id, id.resource_id
            );
        }
        println!("point an unmodified app at it (this shell):");
        for (k, v) in &env {
            println!("  export {k}={v}");
        }
        println!("Ctrl-C stops it.");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::auth(format!("cannot wait for Ctrl-C: {e}")))?;
    emulator.shutdown().await;
    eprintln!("entra-mi emulator stopped");
    Ok(())
}
