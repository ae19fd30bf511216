//! App-role assignments of a service principal: listed (paged), created and deleted with
//! Graph's validation and errors. They feed the `roles` claim of tokens minted afterwards.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::{READ_ROLES, WRITE_ROLE, admit, denied, gate, has_any};
use super::odata::{Paging, graph_error, json_response, not_found};
use super::service_principals::find_sp;
use crate::state::{Assignment, Shared, lock};

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

/// `GET` (list) and `POST` (create) `/v1.0/servicePrincipals/{id}/appRoleAssignments`.
pub(super) async fn assignments(
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

/// `DELETE /v1.0/servicePrincipals/{id}/appRoleAssignments/{assignment}`.
pub(super) async fn one_assignment(
    State(s): State<Arc<Shared>>,
    Path((id, assignment)): Path<(String, String)>,
    req: Request,
) -> Response {
    if let Some(refused) = admit(&s, &req, Method::DELETE, &[WRITE_ROLE]) {
        return refused;
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
