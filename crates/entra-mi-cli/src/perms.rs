//! `entra-mi perms list|grant|revoke`: app roles of a managed identity on an API, through
//! Microsoft Graph (there is no portal UI for this).

use std::collections::HashMap;

use clap::{Args, Subcommand, ValueEnum};
use entra_mi::{Environment, Guid, TokenProvider};
use reqwest::Method;
use serde_json::{Value, json};

use crate::credential::{self, CredentialKind, IdentityArgs};
use crate::graph::{Graph, GraphError, GraphUrl};
use crate::{Failure, output, printable, progress, values};

const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const ARM_APP_ID: &str = "797f4846-ba00-4fd7-ba43-dac1f8f63013";
/// The variable that gives the Graph URL when `--graph-url` does not.
pub(crate) const ENTRA_MI_GRAPH_URL: &str = "ENTRA_MI_GRAPH_URL";

/// `entra-mi perms …`
#[derive(Subcommand, Debug)]
pub(crate) enum PermsCommand {
    /// List the app roles an identity holds (on one API, or on all).
    #[command(after_help = "Example:\n  entra-mi perms list --identity orders-api --api graph")]
    List(ListArgs),
    /// Grant app roles on an API to an identity; roles it already has are left alone.
    #[command(
        after_help = "Example:\n  entra-mi perms grant --identity orders-api --api graph --role User.Read.All --role Group.Read.All"
    )]
    Grant(ChangeArgs),
    /// Revoke app roles on an API from an identity; roles it lacks are left alone.
    #[command(
        after_help = "Example:\n  entra-mi perms revoke --identity 5f2f589e-e85b-4680-9658-0a870dfa1bee --api graph --role User.Read.All --dry-run"
    )]
    Revoke(ChangeArgs),
}

/// Options every `perms` command takes.
#[derive(Args, Debug)]
pub(crate) struct Common {
    /// The managed identity: its object (principal) id, or its display name when unique.
    #[arg(long, value_name = "OBJECT-ID|NAME", value_parser = values::non_empty)]
    identity: String,
    /// The credential that talks to Graph (it needs AppRoleAssignment.ReadWrite.All to change
    /// assignments, Application.Read.All to read them).
    #[arg(long, value_enum, default_value_t = CredentialKind::Auto)]
    credential: CredentialKind,
    #[command(flatten)]
    admin_identity: IdentityArgs,
    /// Microsoft Graph's base URL (sovereign clouds, the emulator) [default: $ENTRA_MI_GRAPH_URL,
    /// else https://graph.microsoft.com]. A loopback URL is used only with a token source on
    /// loopback too (the emulator).
    #[arg(long, value_name = "URL", value_parser = GraphUrl::parse)]
    graph_url: Option<GraphUrl>,
    /// `human` (default) or `json`.
    #[arg(long, value_enum, default_value_t = PermsOutput::Human)]
    output: PermsOutput,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum PermsOutput {
    Human,
    Json,
}

/// `perms list`.
#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    common: Common,
    /// Only roles on this API: an application id, `graph` or `arm`.
    #[arg(long, value_name = "APP-ID|graph|arm", value_parser = api_app_id)]
    api: Option<String>,
}

/// `perms grant` / `perms revoke`.
#[derive(Args, Debug)]
pub(crate) struct ChangeArgs {
    #[command(flatten)]
    common: Common,
    /// The API: an application id, `graph` or `arm`.
    #[arg(long, value_name = "APP-ID|graph|arm", value_parser = api_app_id)]
    api: String,
    /// A role value such as `User.Read.All` (repeatable).
    #[arg(
        long = "role",
        value_name = "VALUE",
        required = true,
        value_parser = values::non_empty
    )]
    roles: Vec<String>,
    /// Show the exact changes without making them.
    #[arg(long)]
    dry_run: bool,
}

/// `--api`: the application id it names (a clap value parser).
fn api_app_id(api: &str) -> Result<String, String> {
    match api.to_ascii_lowercase().as_str() {
        "graph" => Ok(GRAPH_APP_ID.to_owned()),
        "arm" => Ok(ARM_APP_ID.to_owned()),
        _ if Guid::is_guid(api) => Ok(api.to_owned()),
        _ => Err("expected an application id (GUID), `graph` or `arm`".into()),
    }
}

impl PermsCommand {
    /// Flag combinations clap cannot express: the subcommand's name and what is wrong.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        let (name, common) = match self {
            PermsCommand::List(a) => ("list", &a.common),
            PermsCommand::Grant(a) => ("grant", &a.common),
            PermsCommand::Revoke(a) => ("revoke", &a.common),
        };
        credential::check_selector(common.credential, &common.admin_identity).map_err(|m| (name, m))
    }
}

/// The string `k` of a Graph object, as Graph sent it (for requests and comparisons).
fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

/// The string `k` of a Graph object, safe to print (see [`printable`]).
fn shown(v: &Value, k: &str) -> String {
    printable::text(v[k].as_str().unwrap_or_default()).into_owned()
}

struct Session {
    graph: Graph,
}

impl Session {
    fn open(common: &Common) -> Result<Self, Failure> {
        let env = Environment::process();
        // The flag was checked by clap; the variable is part of the environment.
        let graph_url = match (&common.graph_url, env.get(ENTRA_MI_GRAPH_URL)) {
            (Some(url), _) => url.clone(),
            (None, Some(value)) => GraphUrl::parse(&value).map_err(|why| {
                Failure::new(format!(
                    "{ENTRA_MI_GRAPH_URL} {:?}: {why}",
                    printable::text(&value)
                ))
            })?,
            (None, None) => GraphUrl::parse(GraphUrl::PUBLIC).map_err(Failure::new)?,
        };
        let mut chosen = credential::build(common.credential, &common.admin_identity, &env)?;
        if graph_url.is_loopback() {
            chosen = chosen.for_loopback_graph(&graph_url.to_string())?;
        }
        let provider = TokenProvider::builder_shared(chosen.credential()).build();
        Ok(Session {
            graph: Graph::new(&graph_url, &provider)?,
        })
    }

    /// The identity's service principal, by object id (falling back to client id) or unique
    /// display name.
    async fn identity(&self, wanted: &str) -> Result<Value, Failure> {
        let g = &self.graph;
        if Guid::is_guid(wanted) {
            match g
                .send(
                    Method::GET,
                    &g.url(&format!("servicePrincipals/{wanted}"), &[]),
                    None,
                )
                .await
            {
                Ok(sp) => return Ok(sp),
                Err(GraphError::Api { status: 404, .. }) => {
                    let filter = format!("appId eq '{wanted}'");
                    let found = g
                        .get_all(&g.url("servicePrincipals", &[("$filter", &filter)]))
                        .await?;
                    return match found.into_iter().next() {
                        Some(sp) => {
                            progress::note(&format!(
                                "{wanted} is a client id; using its service principal {}",
                                shown(&sp, "id")
                            ));
                            Ok(sp)
                        }
                        None => Err(Failure::new(format!(
                            "no service principal has object id or client id {wanted} (is the identity in this tenant?)"
                        ))),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        let filter = format!("displayName eq '{}'", wanted.replace('\'', "''"));
        let found = g
            .get_all(&g.url("servicePrincipals", &[("$filter", &filter)]))
            .await?;
        match found.len() {
            1 => Ok(found.into_iter().next().unwrap_or_default()),
            0 => Err(Failure::new(format!(
                "no service principal is named {wanted:?}"
            ))),
            n => Err(Failure::new(format!(
                "{n} service principals are named {wanted:?}; pass one object id: {}",
                found
                    .iter()
                    .map(|sp| shown(sp, "id"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    async fn api(&self, app_id: &str) -> Result<Value, Failure> {
        let g = &self.graph;
        let filter = format!("appId eq '{app_id}'");
        let found = g
            .get_all(&g.url("servicePrincipals", &[("$filter", &filter)]))
            .await?;
        found.into_iter().next().ok_or_else(|| {
            Failure::new(format!(
                "no service principal for application {app_id} in this tenant (has the API been consented to or instantiated here?)"
            ))
        })
    }

    async fn assignments(&self, identity_id: &str) -> Result<Vec<Value>, Failure> {
        let g = &self.graph;
        Ok(g.get_all(&g.url(
            &format!("servicePrincipals/{identity_id}/appRoleAssignments"),
            &[],
        ))
        .await?)
    }
}

/// Role values an application may hold on `api`, value → id.
fn application_roles(api: &Value) -> HashMap<String, String> {
    api["appRoles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["isEnabled"].as_bool() != Some(false))
        .filter(|r| {
            r["allowedMemberTypes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "Application"))
        })
        .map(|r| (s(r, "value"), s(r, "id")))
        .collect()
}

pub(crate) async fn run(cmd: PermsCommand) -> Result<(), Failure> {
    match cmd {
        PermsCommand::List(args) => list(args).await,
        PermsCommand::Grant(args) => change(args, true).await,
        PermsCommand::Revoke(args) => change(args, false).await,
    }
}

async fn list(args: ListArgs) -> Result<(), Failure> {
    let session = Session::open(&args.common)?;
    let identity = progress::step(
        "finding the identity",
        session.identity(&args.common.identity),
    )
    .await?;
    let identity_id = s(&identity, "id");
    let only = match &args.api {
        Some(api) => Some(progress::step("finding the API", session.api(api)).await?),
        None => None,
    };
    let assignments = progress::step(
        "reading its app-role assignments",
        session.assignments(&identity_id),
    )
    .await?;
    // Role values come from each API's service principal.
    let mut apis: HashMap<String, Value> = HashMap::new();
    if let Some(api) = &only {
        apis.insert(s(api, "id"), api.clone());
    }
    let mut rows = Vec::new();
    for a in &assignments {
        let resource = s(a, "resourceId");
        if only.as_ref().is_some_and(|api| s(api, "id") != resource) {
            continue;
        }
        if !apis.contains_key(&resource) {
            let g = &session.graph;
            let sp = g
                .send(
                    Method::GET,
                    &g.url(&format!("servicePrincipals/{resource}"), &[]),
                    None,
                )
                .await?;
            apis.insert(resource.clone(), sp);
        }
        let api = &apis[&resource];
        let role_id = s(a, "appRoleId");
        let value = api["appRoles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| s(r, "id") == role_id)
            .map(|r| s(r, "value"))
            .unwrap_or_else(|| format!("(role {role_id})"));
        rows.push(json!({
            "role": value,
            "appRoleId": role_id,
            "api": s(api, "displayName"),
            "apiAppId": s(api, "appId"),
            "assignmentId": s(a, "id"),
            "createdDateTime": s(a, "createdDateTime"),
        }));
    }
    let mut doc = json!({
        "identity": {"id": identity_id, "displayName": s(&identity, "displayName")},
        "assignments": rows,
    });
    // Everything below came from Graph: shown only once made safe for a terminal.
    printable::json(&mut doc);
    let text = match args.common.output {
        PermsOutput::Json => pretty(&doc)?,
        PermsOutput::Human => {
            let mut lines = vec![format!(
                "{} ({}):",
                s(&doc["identity"], "displayName"),
                s(&doc["identity"], "id")
            )];
            let rows = doc["assignments"].as_array().map_or(&[][..], Vec::as_slice);
            if rows.is_empty() {
                lines.push("  no app roles".into());
            }
            for r in rows {
                lines.push(format!(
                    "  {:<32} on {} ({})",
                    s(r, "role"),
                    s(r, "api"),
                    s(r, "apiAppId")
                ));
            }
            lines.join("\n")
        }
    };
    output::emit(text + "\n")
}

/// `doc` as indented JSON.
fn pretty(doc: &Value) -> Result<String, Failure> {
    serde_json::to_string_pretty(doc).map_err(|e| Failure::new(e.to_string()))
}

async fn change(args: ChangeArgs, grant: bool) -> Result<(), Failure> {
    let session = Session::open(&args.common)?;
    let identity = progress::step(
        "finding the identity",
        session.identity(&args.common.identity),
    )
    .await?;
    let identity_id = s(&identity, "id");
    let api = progress::step("finding the API", session.api(&args.api)).await?;
    let api_id = s(&api, "id");
    let valid = application_roles(&api);
    let mut wanted = Vec::new();
    for role in &args.roles {
        match valid.get(role) {
            Some(id) => wanted.push((role.clone(), id.clone())),
            None => {
                let mut names: Vec<&String> = valid.keys().collect();
                names.sort();
                let list = if names.is_empty() {
                    "it defines none that an application may hold".to_owned()
                } else {
                    format!(
                        "valid ones: {}",
                        names
                            .iter()
                            .map(|n| printable::text(n))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                // The API does not define it: that depends on the tenant, not the command line.
                return Err(Failure::new(format!(
                    "{} has no application role {role:?}; {list}",
                    shown(&api, "displayName")
                )));
            }
        }
    }
    let current = progress::step(
        "reading its app-role assignments",
        session.assignments(&identity_id),
    )
    .await?;
    let held = |role_id: &str| {
        current
            .iter()
            .find(|a| s(a, "resourceId") == api_id && s(a, "appRoleId") == role_id)
            .map(|a| s(a, "id"))
    };
    let g = &session.graph;
    let mut changes = Vec::new();
    for (role, role_id) in &wanted {
        let action = match (grant, held(role_id), args.dry_run) {
            (true, Some(_), _) => "already-granted",
            (true, None, true) => "would-grant",
            (true, None, false) => {
                let body =
                    json!({"principalId": identity_id, "resourceId": api_id, "appRoleId": role_id});
                let url = g.url(
                    &format!("servicePrincipals/{identity_id}/appRoleAssignments"),
                    &[],
                );
                progress::step(
                    &format!("granting {role}"),
                    g.send(Method::POST, &url, Some(&body)),
                )
                .await?;
                "granted"
            }
            (false, None, _) => "not-granted",
            (false, Some(_), true) => "would-revoke",
            (false, Some(assignment), false) => {
                let url = g.url(
                    &format!("servicePrincipals/{identity_id}/appRoleAssignments/{assignment}"),
                    &[],
                );
                progress::step(
                    &format!("revoking {role}"),
                    g.send(Method::DELETE, &url, None),
                )
                .await?;
                "revoked"
            }
        };
        changes.push(json!({"role": role, "appRoleId": role_id, "action": action}));
    }
    let note = if grant && changes.iter().any(|c| c["action"] == "granted") {
        Some(
            "new roles appear in tokens issued from now on; managed-identity endpoints may keep serving an older token (without them) for up to 24 h",
        )
    } else {
        None
    };
    let mut doc = json!({
        "identity": {"id": identity_id, "displayName": s(&identity, "displayName")},
        "api": {"id": api_id, "appId": s(&api, "appId"), "displayName": s(&api, "displayName")},
        "dryRun": args.dry_run,
        "changes": changes,
        "note": note,
    });
    // Names and ids came from Graph: shown only once made safe for a terminal.
    printable::json(&mut doc);
    let text = match args.common.output {
        PermsOutput::Json => pretty(&doc)?,
        PermsOutput::Human => {
            let who = format!(
                "{} ({})",
                s(&doc["identity"], "displayName"),
                s(&doc["identity"], "id")
            );
            let api_name = s(&doc["api"], "displayName");
            let changes = doc["changes"].as_array().map_or(&[][..], Vec::as_slice);
            let mut lines: Vec<String> = changes
                .iter()
                .map(|c| {
                    let role = s(c, "role");
                    match c["action"].as_str().unwrap_or_default() {
                        "granted" => format!("granted {role} on {api_name} to {who}"),
                        "already-granted" => {
                            format!("no change: {who} already has {role} on {api_name}")
                        }
                        "would-grant" => {
                            format!("would grant {role} on {api_name} to {who} (dry run)")
                        }
                        "revoked" => format!("revoked {role} on {api_name} from {who}"),
                        "not-granted" => {
                            format!("no change: {who} does not have {role} on {api_name}")
                        }
                        _ => format!("would revoke {role} on {api_name} from {who} (dry run)"),
                    }
                })
                .collect();
            if let Some(n) = note {
                lines.push(format!("note: {n}"));
            }
            lines.join("\n")
        }
    };
    output::emit(text + "\n")
}
