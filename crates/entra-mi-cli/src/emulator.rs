//! `entra-mi emulator`: the managed-identity endpoints on loopback, for local development.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use entra_mi_emulator::{Emulator, Identity, MAX_TOKEN_LIFETIME};
use serde_json::Value;

use crate::{Failure, output, printable, values};

/// Arguments of `entra-mi emulator`.
#[derive(Args, Debug)]
pub(crate) struct EmulatorArgs {
    /// Loopback port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Token lifetime in seconds, from 1 to 315360000 (10 years); real managed-identity
    /// tokens live about 24 h, and `entra-mi` itself refuses tokens that live over 7 days.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 86_399,
        value_parser = clap::value_parser!(u64).range(1..=MAX_TOKEN_LIFETIME.as_secs())
    )]
    token_lifetime: u64,
    /// Add a user-assigned identity with this name (repeatable).
    #[arg(long = "identity", value_name = "NAME", value_parser = values::non_empty)]
    identities: Vec<String>,
    /// Give an identity an app role on an API: `IDENTITY,AUDIENCE,ROLE`, where IDENTITY is a
    /// user-assigned identity's name or `system` (repeatable).
    #[arg(long = "role", value_name = "IDENTITY,AUDIENCE,ROLE", value_parser = parse_role)]
    roles: Vec<RoleArg>,
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
    /// Do not give the system-assigned identity Microsoft Graph's `AppRoleAssignment.ReadWrite.All`
    /// and `Application.Read.All` (without them, `entra-mi perms` against the emulator gets
    /// Graph's `403 Authorization_RequestDenied`, as an identity without them does in Azure).
    #[arg(long)]
    no_graph_admin: bool,
}

/// Microsoft Graph's resource URI, the audience of the administrator's roles.
const GRAPH: &str = "https://graph.microsoft.com";
/// The application permissions `entra-mi perms` needs on Microsoft Graph: reading service
/// principals and their app roles, and creating and deleting app-role assignments.
const GRAPH_ADMIN_ROLES: [&str; 2] = ["AppRoleAssignment.ReadWrite.All", "Application.Read.All"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EnvFor {
    /// AZURE_POD_IDENTITY_AUTHORITY_HOST, the IMDS address override.
    Imds,
    /// IDENTITY_ENDPOINT and IDENTITY_HEADER, as on App Service.
    AppService,
}

/// `--role IDENTITY,AUDIENCE,ROLE`.
#[derive(Clone, Debug)]
pub(crate) struct RoleArg {
    identity: String,
    audience: String,
    role: String,
}

/// `--role`: three non-empty parts (a clap value parser).
fn parse_role(value: &str) -> Result<RoleArg, String> {
    match value.split(',').collect::<Vec<_>>().as_slice() {
        [i, a, r] if !i.is_empty() && !a.is_empty() && !r.is_empty() => Ok(RoleArg {
            identity: (*i).to_owned(),
            audience: (*a).to_owned(),
            role: (*r).to_owned(),
        }),
        _ => Err("expected IDENTITY,AUDIENCE,ROLE".into()),
    }
}

/// The allowed token lifetimes, in seconds: 1 to the emulator's maximum (10 years).
fn lifetime_in_range(seconds: u64) -> bool {
    (1..=MAX_TOKEN_LIFETIME.as_secs()).contains(&seconds)
}

impl EmulatorArgs {
    /// What the command line alone shows wrong: without `--config`, the identities are
    /// exactly the `--identity` names, so a `--role` naming another one is a usage error.
    /// (With `--config`, the file may name it: that is checked when the file is read.)
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.config.is_some() {
            return Ok(());
        }
        match self
            .roles
            .iter()
            .find(|r| r.identity != "system" && !self.identities.contains(&r.identity))
        {
            Some(r) => Err(unknown_identity(&r.identity)),
            None => Ok(()),
        }
    }
}

fn unknown_identity(who: &str) -> String {
    format!(
        "--role names unknown identity {:?}; add it with --identity {}",
        printable::text(who),
        printable::text(who)
    )
}

struct Settings {
    port: u16,
    lifetime: u64,
    identities: Vec<String>,
    roles: Vec<(String, String, String)>,
}

/// The settings from the flags and the `--config` file. The file is part of the environment:
/// what is wrong with it is a failure (exit 1), not a usage error.
fn settings(args: &EmulatorArgs) -> Result<Settings, Failure> {
    let max = MAX_TOKEN_LIFETIME.as_secs();
    let mut s = Settings {
        port: args.port,
        lifetime: args.token_lifetime,
        identities: args.identities.clone(),
        roles: Vec::new(),
    };
    if let Some(path) = &args.config {
        let shown = printable::text(&path.display().to_string()).into_owned();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("--config {shown}: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::new(format!(
                "--config {shown}: not valid JSON at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        let bad = |what: &str| Failure::new(format!("--config {shown}: {what}"));
        let obj = v.as_object().ok_or_else(|| bad("expected a JSON object"))?;
        for key in obj.keys() {
            if !["port", "token_lifetime", "identities", "roles"].contains(&key.as_str()) {
                return Err(bad(&format!("unknown key {:?}", printable::text(key))));
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
                        .filter(|n| !n.trim().is_empty())
                        .ok_or_else(|| bad("`identities` must hold non-empty strings"))?
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
        s.roles
            .push((r.identity.clone(), r.audience.clone(), r.role.clone()));
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
    // `entra-mi perms` uses the managed identity without a selector, the system-assigned one:
    // it administers app roles through the emulator's Graph out of the box.
    if !args.no_graph_admin {
        builder = builder.roles(&system.object_id, GRAPH, &GRAPH_ADMIN_ROLES);
    }
    for (who, audience, role) in &s.roles {
        let object_id = if who == "system" {
            &system.object_id
        } else {
            &identities
                .iter()
                .find(|i| i.display_name == *who || i.client_id == *who || i.object_id == *who)
                .ok_or_else(|| Failure::new(unknown_identity(who)))?
                .object_id
        };
        builder = builder.roles(object_id, audience, &[role.as_str()]);
    }
    let emulator = builder
        .start()
        .await
        .map_err(|e| Failure::new(format!("cannot start the emulator: {e}")))?;
    let env: Vec<(&str, String)> = match args.env_for {
        EnvFor::Imds => vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emulator.imds_host())],
        EnvFor::AppService => vec![
            ("IDENTITY_ENDPOINT", emulator.app_service_endpoint()),
            ("IDENTITY_HEADER", emulator.identity_header()),
        ],
    };
    // Listening before the environment is printed: whoever reads it may press Ctrl-C (or send
    // SIGINT) at once, and that must stop the emulator, not kill the process.
    let interrupted = match ctrl_c() {
        Ok(interrupted) => interrupted,
        Err(e) => {
            emulator.shutdown().await;
            return Err(Failure::new(format!("cannot wait for Ctrl-C: {e}")));
        }
    };
    // Where `entra-mi perms` finds the emulator's Microsoft Graph.
    let graph = (crate::perms::ENTRA_MI_GRAPH_URL, emulator.base_url());
    let text = if args.print_env {
        env.iter()
            .chain([&graph])
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect::<String>()
    } else {
        let mut lines = vec![
            format!("entra-mi emulator listening on {}", emulator.base_url()),
            format!("  IMDS:         {}", emulator.imds_token_url()),
            format!("  App Service:  {}", emulator.app_service_endpoint()),
            format!("  JWKS:         {}", emulator.jwks_url()),
            format!("  tenant:       {}", emulator.tenant_id()),
            "identities:".to_owned(),
            format!(
                "  system-assigned  object id {}  client id {}",
                system.object_id, system.client_id
            ),
        ];
        if !args.no_graph_admin {
            lines.push(format!(
                "    holds {GRAPH} {} (for `entra-mi perms`)",
                GRAPH_ADMIN_ROLES.join(", ")
            ));
        }
        for id in &identities {
            // Names may come from a configuration file.
            lines.push(format!(
                "  {}  object id {}  client id {}\n    resource id {}",
                printable::text(&id.display_name),
                id.object_id,
                id.client_id,
                printable::text(&id.resource_id)
            ));
        }
        lines.push("point an unmodified app at it (this shell):".to_owned());
        for (k, v) in &env {
            lines.push(format!("  export {k}={v}"));
        }
        lines.push("point `entra-mi perms` at its Microsoft Graph:".to_owned());
        lines.push(format!("  export {}={}", graph.0, graph.1));
        lines.push("Ctrl-C stops it.".to_owned());
        lines.join("\n") + "\n"
    };
    if let Err(failure) = output::emit(text) {
        emulator.shutdown().await;
        return Err(failure);
    }
    interrupted.await;
    emulator.shutdown().await;
    // Nothing is left to report to if standard error is gone.
    let _ = writeln!(std::io::stderr(), "entra-mi emulator stopped");
    Ok(())
}

/// Listens for Ctrl-C (SIGINT) from now on; the future ends when it comes. (Tokio's
/// `signal::ctrl_c` starts listening only when first polled, which leaves a window.)
fn ctrl_c() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    #[cfg(windows)]
    let mut signal = tokio::signal::windows::ctrl_c()?;
    Ok(async move {
        signal.recv().await;
    })
}
