//! The Microsoft Graph subset that app-role management uses: the APIs' service principals with
//! their app roles, and app-role assignments of a managed identity — listed (with paging),
//! created and deleted with Graph's validation and error bodies. Assignments feed the `roles`
//! claim of tokens minted afterwards.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

use crate::graph::{Paging, gate, graph_error, json_response};
use crate::model::guid;
use crate::state::{Shared, lock};

/// Graph's application id.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Azure Resource Manager's application id ("Windows Azure Service Management API").
pub const AZURE_RESOURCE_MANAGER_APP_ID: &str = "797f4846-ba00-4fd7-ba43-dac1f8f63013";

/// Roles a caller needs to read directory objects and to change app-role assignments.
const READ_ROLES: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "AppRoleAssignment.ReadWrite.All",
];
const WRITE_ROLE: &str = "AppRoleAssignment.ReadWrite.All";

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

    fn service_principal(&self) -> Value {
        json!({
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "servicePrincipalType": "Application",
            "accountEnabled": true,
            "servicePrincipalNames": self.identifier_uris,
            "appRoles": self.app_roles.iter().map(|r| json!({
                "id": r.id,
                "value": r.value,
                "displayName": r.value,
                "description": r.value,
                "allowedMemberTypes": r.allowed_member_types,
                "isEnabled": true,
                "origin": "Application",
            })).collect::<Vec<_>>(),
            "tags": [],
        })
    }
}

#[derive(Debug, Clone)]
struct Assignment {
    id: String,
    principal_id: String,
    principal_name: String,
    resource_id: String,
    resource_name: String,
    app_role_id: String,
    created: String,
}

impl Assignment {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "deletedDateTime": null,
            "appRoleId": self.app_role_id,
            "createdDateTime": self.created,
            "principalDisplayName": self.principal_name,
            "principalId": self.principal_id,
            "principalType": "ServicePrincipal",
            "resourceDisplayName": self.resource_name,
            "resourceId": self.resource_id,
        })
    }
}

/// The APIs and the assignments.
pub(crate) struct PermsState {
    pub(crate) apis: Vec<ApiApp>,
    assignments: Mutex<Vec<Assignment>>,
}

impl PermsState {
    pub(crate) fn new(mut custom: Vec<ApiApp>) -> Self {
        let mut apis = vec![ApiApp::microsoft_graph(), ApiApp::azure_resource_manager()];
        apis.append(&mut custom);
        PermsState {
            apis,
            assignments: Mutex::new(Vec::new()),
        }
    }

    /// The role values assigned to `principal` on the API whose tokens have `audience`.
    pub(crate) fn assigned_roles(&self, principal: &str, audience: &str) -> Vec<String> {
        let Some(api) = self
            .apis
            .iter()
            .find(|a| a.identifier_uris.iter().any(|u| u == audience))
        else {
            return Vec::new();
        };
        lock(&self.assignments)
            .iter()
            .filter(|a| {
                a.principal_id.eq_ignore_ascii_case(principal) && a.resource_id == api.object_id
            })
            .filter_map(|a| api.app_roles.iter().find(|r| r.id == a.app_role_id))
            .map(|r| r.value.clone())
            .collect()
    }

    /// Every API service principal, as Graph shows it.
    pub(crate) fn service_principals(&self) -> Vec<Value> {
        self.apis.iter().map(ApiApp::service_principal).collect()
    }
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1.0/servicePrincipals/{id}", any(by_id))
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignments",
            any(assignments),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignments/{assignment}",
            any(one_assignment),
        )
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

fn denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn has_any(claims: &Value, wanted: &[&str]) -> bool {
    claims["roles"].as_array().is_some_and(|r| {
        r.iter()
            .any(|v| v.as_str().is_some_and(|v| wanted.contains(&v)))
    })
}

/// The service principal with object id `id`: an identity or an API.
fn find_sp(s: &Shared, id: &str) -> Option<(Value, String)> {
    if let Some(api) = s
        .perms
        .apis
        .iter()
        .find(|a| a.object_id.eq_ignore_ascii_case(id))
    {
        return Some((api.service_principal(), api.display_name.clone()));
    }
    s.all_identities()
        .find(|i| i.object_id.eq_ignore_ascii_case(id))
        .map(|i| {
            let system = s
                .system
                .as_ref()
                .is_some_and(|x| x.object_id == i.object_id);
            (
                crate::graph::service_principal(i, system),
                i.display_name.clone(),
            )
        })
}

async fn by_id(State(s): State<Arc<Shared>>, Path(id): Path<String>, req: Request) -> Response {
    let claims = match gate(&s, &req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if req.method() != Method::GET {
        return graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Only GET is emulated here.",
        );
    }
    if !has_any(&claims, READ_ROLES) {
        return denied();
    }
    match find_sp(&s, &id) {
        Some((sp, _)) => json_response(StatusCode::OK, sp),
        None => not_found(&id),
    }
}

async fn assignments(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let claims = match gate(&s, &req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let Some((_, principal_name)) = find_sp(&s, &id) else {
        return not_found(&id);
    };
    match *req.method() {
        Method::GET => {
            if !has_any(&claims, READ_ROLES) {
                return denied();
            }
            list(&s, &id, &req)
        }
        Method::POST => {
            if !has_any(&claims, &[WRITE_ROLE]) {
                return denied();
            }
            create(&s, &id, &principal_name, req).await
        }
        _ => graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Only GET and POST are emulated here.",
        ),
    }
}

fn list(s: &Shared, id: &str, req: &Request) -> Response {
    let page = match Paging::from_request(req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let (top, skip) = (page.top, page.skip);
    let all: Vec<Value> = lock(&s.perms.assignments)
        .iter()
        .filter(|a| a.principal_id.eq_ignore_ascii_case(id))
        .map(Assignment::to_json)
        .collect();
    let mut body = json!({
        "@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#servicePrincipals('{id}')/appRoleAssignments"),
        "value": all.iter().skip(skip).take(top).cloned().collect::<Vec<_>>(),
    });
    if let Some(next_skip) = page.next_skip(all.len()) {
        body["@odata.nextLink"] = Value::String(format!(
            "{}/v1.0/servicePrincipals/{id}/appRoleAssignments?$top={top}&$skiptoken={next_skip}",
            s.base_url,
        ));
    }
    json_response(StatusCode::OK, body)
}

async fn create(s: &Shared, id: &str, principal_name: &str, req: Request) -> Response {
    let bytes = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                "The request body is too large.",
            );
        }
    };
    let body: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            );
        }
    };
    let field = |k: &str| body[k].as_str().map(str::to_owned);
    let (Some(principal), Some(resource), Some(role)) = (
        field("principalId"),
        field("resourceId"),
        field("appRoleId"),
    ) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "principalId, resourceId and appRoleId are required.",
        );
    };
    if !principal.eq_ignore_ascii_case(id) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The principalId in the body must match the service principal in the URL.",
        );
    }
    let Some(api) = s
        .perms
        .apis
        .iter()
        .find(|a| a.object_id.eq_ignore_ascii_case(&resource))
    else {
        return not_found(&resource);
    };
    let Some(app_role) = api
        .app_roles
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(&role))
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Permission being assigned was not found on application",
        );
    };
    if !app_role
        .allowed_member_types
        .iter()
        .any(|t| t == "Application")
    {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "The app role being assigned cannot be held by a service principal.",
        );
    }
    let mut assignments = lock(&s.perms.assignments);
    if assignments.iter().any(|a| {
        a.principal_id.eq_ignore_ascii_case(id)
            && a.resource_id == api.object_id
            && a.app_role_id == app_role.id
    }) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Permission being assigned already exists on the object",
        );
    }
    let bytes: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    let assignment = Assignment {
        id: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes),
        principal_id: id.to_ascii_lowercase(),
        principal_name: principal_name.to_owned(),
        resource_id: api.object_id.clone(),
        resource_name: api.display_name.clone(),
        app_role_id: app_role.id.clone(),
        created: crate::time::rfc3339_now(),
    };
    assignments.push(assignment.clone());
    let mut resp = json_response(StatusCode::CREATED, assignment.to_json());
    if let Ok(v) = header::HeaderValue::from_str(&format!(
        "{}/v1.0/servicePrincipals/{id}/appRoleAssignments/{}",
        s.base_url, assignment.id
    )) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn one_assignment(
    State(s): State<Arc<Shared>>,
    Path((id, assignment)): Path<(String, String)>,
    req: Request,
) -> Response {
    let claims = match gate(&s, &req) {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    if req.method() != Method::DELETE {
        return graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Only DELETE is emulated here.",
        );
    }
    if !has_any(&claims, &[WRITE_ROLE]) {
        return denied();
    }
    let mut all = lock(&s.perms.assignments);
    let before = all.len();
    all.retain(|a| !(a.id == assignment && a.principal_id.eq_ignore_ascii_case(&id)));
    if all.len() == before {
        return not_found(&assignment);
    }
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}
