//! The Microsoft Graph subset that app-role management uses: the APIs' service principals with
//! their app roles, and app-role assignments of a managed identity — listed (with paging),
//! created and deleted with Graph's validation and error bodies. Assignments feed the `roles`
//! claim of tokens minted afterwards.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Value, json};

use crate::directory::ApiApp;
use crate::graph::{Paging, gate, graph_error, json_response};
use crate::state::{Assignment, Shared, lock};

/// Roles a caller needs to read directory objects and to change app-role assignments.
const READ_ROLES: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "AppRoleAssignment.ReadWrite.All",
];
const WRITE_ROLE: &str = "AppRoleAssignment.ReadWrite.All";

/// An API's service principal, as Graph shows it.
pub(crate) fn api_service_principal(api: &ApiApp) -> Value {
    json!({
        "id": api.object_id,
        "appId": api.app_id,
        "displayName": api.display_name,
        "servicePrincipalType": "Application",
        "accountEnabled": true,
        "servicePrincipalNames": api.identifier_uris,
        "appRoles": api.app_roles.iter().map(|r| json!({
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

/// An app-role assignment, as Graph shows it.
fn assignment_json(a: &Assignment) -> Value {
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": a.created,
        "principalDisplayName": a.principal_name,
        "principalId": a.principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": a.resource_name,
        "resourceId": a.resource_id,
    })
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
    if let Some(api) = s.perms.api_by_object_id(id) {
        return Some((api_service_principal(api), api.display_name.clone()));
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
        .map(assignment_json)
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
    let Some(api) = s.perms.api_by_object_id(&resource) else {
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
    let mut resp = json_response(StatusCode::CREATED, assignment_json(&assignment));
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
