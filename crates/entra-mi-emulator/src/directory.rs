//! The emulated tenant's directory: the app registrations its token endpoint knows ([`App`])
//! and the APIs whose app roles can be granted ([`ApiApp`], [`AppRole`]). Plain data: the
//! endpoints that use it read it, it reads none of them.

use crate::model::guid;

/// Graph's application id.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Azure Resource Manager's application id ("Windows Azure Service Management API").
pub const AZURE_RESOURCE_MANAGER_APP_ID: &str = "797f4846-ba00-4fd7-ba43-dac1f8f63013";

/// An app registration (and its service principal) the token endpoint knows.
///
/// Its `Debug` output shows how many client secrets and certificates it has, never the
/// secrets themselves.
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    /// The application (client) id.
    pub client_id: String,
    /// The object id of its service principal (`oid` in its tokens).
    pub object_id: String,
    /// A human-readable name.
    pub display_name: String,
    pub(crate) secrets: Vec<String>,
    pub(crate) certificates: Vec<Vec<u8>>,
    pub(crate) federated: Vec<(String, String)>,
    pub(crate) multi_tenant: bool,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("object_id", &self.object_id)
            .field("display_name", &self.display_name)
            .field(
                "secrets",
                &format_args!("{} {}", self.secrets.len(), crate::REDACTED),
            )
            .field("certificates", &self.certificates.len())
            .field("federated", &self.federated)
            .field("multi_tenant", &self.multi_tenant)
            .finish()
    }
}

impl App {
    /// An app named `name` with fresh random ids, no credentials, single-tenant.
    pub fn new(name: &str) -> App {
        App {
            client_id: guid(),
            object_id: guid(),
            display_name: name.to_owned(),
            secrets: Vec::new(),
            certificates: Vec::new(),
            federated: Vec::new(),
            multi_tenant: false,
        }
    }

    /// Adds a client secret (its value).
    pub fn with_secret(mut self, secret: impl Into<String>) -> App {
        self.secrets.push(secret.into());
        self
    }

    /// Adds a certificate (DER). Client assertions naming it by `x5t#S256` (or `x5t`) must be
    /// signed with its key (PS256 or RS256), have `aud` = the token endpoint URL, `iss` = `sub`
    /// = the client id, be within `nbf`..`exp`, and carry a `jti` not seen before.
    pub fn with_certificate(mut self, der: impl Into<Vec<u8>>) -> App {
        self.certificates.push(der.into());
        self
    }

    /// Adds a federated identity credential: assertions whose `iss` and `sub` are exactly
    /// these (and whose `aud` is `api://AzureADTokenExchange`) are accepted.
    pub fn with_federated_credential(mut self, issuer: &str, subject: &str) -> App {
        self.federated.push((issuer.to_owned(), subject.to_owned()));
        self
    }

    /// Whether tokens may be requested in the emulator's other tenants too (default: no).
    pub fn multi_tenant(mut self, on: bool) -> App {
        self.multi_tenant = on;
        self
    }
}

/// An app role an API defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRole {
    /// The role's id (a GUID).
    pub id: String,
    /// The value that appears in the `roles` claim (`User.Read.All`).
    pub value: String,
    /// Who may hold it: `Application`, `User`, or both.
    pub allowed_member_types: Vec<String>,
}

/// An API (a resource application) with its service principal in the emulated tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiApp {
    /// The application (client) id.
    pub app_id: String,
    /// The service principal's object id.
    pub object_id: String,
    /// Display name.
    pub display_name: String,
    /// The audiences of its tokens: identifier URIs (and the app id).
    pub identifier_uris: Vec<String>,
    /// Its app roles.
    pub app_roles: Vec<AppRole>,
}

impl ApiApp {
    /// A custom API at `identifier_uri` (e.g. `api://orders`) whose `roles` may be held by
    /// applications (and so by managed identities).
    pub fn new(display_name: &str, identifier_uri: &str, roles: &[&str]) -> ApiApp {
        let app_id = guid();
        ApiApp {
            identifier_uris: vec![identifier_uri.to_owned(), app_id.clone()],
            app_id,
            object_id: guid(),
            display_name: display_name.to_owned(),
            app_roles: roles
                .iter()
                .map(|v| AppRole {
                    id: guid(),
                    value: (*v).to_owned(),
                    allowed_member_types: vec!["Application".into()],
                })
                .collect(),
        }
    }

    /// Adds a role only users may hold (it cannot be granted to a managed identity).
    pub fn with_user_role(mut self, value: &str) -> ApiApp {
        self.app_roles.push(AppRole {
            id: guid(),
            value: value.to_owned(),
            allowed_member_types: vec!["User".into()],
        });
        self
    }

    /// Microsoft Graph with a few of its real application permissions (real role ids).
    pub fn microsoft_graph() -> ApiApp {
        let role = |id: &str, value: &str| AppRole {
            id: id.to_owned(),
            value: value.to_owned(),
            allowed_member_types: vec!["Application".into()],
        };
        ApiApp {
            app_id: MICROSOFT_GRAPH_APP_ID.to_owned(),
            object_id: guid(),
            display_name: "Microsoft Graph".to_owned(),
            identifier_uris: vec![
                "https://graph.microsoft.com".to_owned(),
                MICROSOFT_GRAPH_APP_ID.to_owned(),
            ],
            app_roles: vec![
                role("df021288-bdef-4463-88db-98f22de89214", "User.Read.All"),
                role(
                    "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
                    "Application.Read.All",
                ),
                role(
                    "06b708a9-e830-4db3-a914-8e69da51d44f",
                    "AppRoleAssignment.ReadWrite.All",
                ),
                role("5b567255-7703-4780-807c-7be8301ae99b", "Group.Read.All"),
                role("7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Directory.Read.All"),
                role("b633e1c5-b582-4048-a93e-9f11b44c7e96", "Mail.Send"),
            ],
        }
    }

    /// Azure Resource Manager (no app roles: it authorizes with Azure RBAC).
    pub fn azure_resource_manager() -> ApiApp {
        ApiApp {
            app_id: AZURE_RESOURCE_MANAGER_APP_ID.to_owned(),
            object_id: guid(),
            display_name: "Windows Azure Service Management API".to_owned(),
            identifier_uris: vec![
                "https://management.azure.com/".to_owned(),
                "https://management.azure.com".to_owned(),
                "https://management.core.windows.net/".to_owned(),
                AZURE_RESOURCE_MANAGER_APP_ID.to_owned(),
            ],
            app_roles: Vec::new(),
        }
    }
}
