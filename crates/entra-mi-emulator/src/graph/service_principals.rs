//! Service principals: `GET /v1.0/servicePrincipals` lists the emulator's identities (as the
//! managed-identity service principals they are) and the tenant's APIs (with their app roles);
//! `GET /v1.0/servicePrincipals/{id}` reads one.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::{READ_ROLES, admit, gate};
use super::odata::{Paging, graph_error, json_response, not_found};
use crate::directory::ApiApp;
use crate::model::Identity;
use crate::state::Shared;

/// `GET /v1.0/servicePrincipals`: every identity and API, `$filter` by `appId` or
/// `displayName`, paged.
pub(super) async fn list(State(s): State<Arc<Shared>>, req: Request) -> Response {
    if let Err(resp) = gate(&s, &req) {
        return resp;
    }
    if req.method() != axum::http::Method::GET {
        return graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Only GET is supported by this emulator.",
        );
    }
    let page = match Paging::from_request(&req) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let (top, skip) = (page.top, page.skip);
    let param = |name: &str| page.param(name);
    let filter = match param("$filter").map(parse_filter) {
        None => None,
        Some(Some(f)) => Some(f),
        Some(None) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Unsupported query: only appId eq '…' and displayName eq '…' are emulated.",
            );
        }
    };
    let system_oid = s.system.as_ref().map(|i| i.object_id.clone());
    let all: Vec<Value> = s
        .all_identities()
        .map(|i| identity_service_principal(i, Some(&i.object_id) == system_oid.as_ref()))
        .chain(s.perms.apis.iter().map(api_service_principal))
        .collect();
    let matching: Vec<&Value> = all
        .iter()
        .filter(|sp| match &filter {
            None => true,
            Some((Field::AppId, v)) => sp["appId"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(v)),
            Some((Field::DisplayName, v)) => sp["displayName"].as_str() == Some(v.as_str()),
        })
        .collect();
    let values: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(top)
        .map(|v| (*v).clone())
        .collect();
    let mut body = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals",
        "value": values,
    });
    if let Some(next_skip) = page.next_skip(matching.len()) {
        let mut next = format!(
            "{}/v1.0/servicePrincipals?$top={top}&$skiptoken={next_skip}",
            s.base_url,
        );
        if let Some(f) = param("$filter") {
            next.push_str("&$filter=");
            next.extend(form_urlencoded::byte_serialize(f.as_bytes()));
        }
        body["@odata.nextLink"] = Value::String(next);
    }
    json_response(StatusCode::OK, body)
}

enum Field {
    AppId,
    DisplayName,
}

/// `appId eq '…'` or `displayName eq '…'` (quotes doubled inside, as OData escapes them).
fn parse_filter(f: &str) -> Option<(Field, String)> {
    let (field, rest) = f.trim().split_once(' ')?;
    let field = if field.eq_ignore_ascii_case("appId") {
        Field::AppId
    } else if field.eq_ignore_ascii_case("displayName") {
        Field::DisplayName
    } else {
        return None;
    };
    let value = rest.trim_start().strip_prefix("eq ")?.trim();
    let inner = value.strip_prefix('\'')?.strip_suffix('\'')?;
    Some((field, inner.replace("''", "'")))
}

/// A managed identity's service principal, as Graph shows it.
fn identity_service_principal(i: &Identity, system: bool) -> Value {
    json!({
        "id": i.object_id,
        "appId": i.client_id,
        "displayName": i.display_name,
        "servicePrincipalType": "ManagedIdentity",
        "accountEnabled": true,
        "alternativeNames": [
            if system { "isExplicit=False" } else { "isExplicit=True" },
            i.resource_id,
        ],
        "servicePrincipalNames": [i.client_id, format!("https://identity.azure.net/{}", i.object_id)],
        "appRoles": [],
        "tags": [],
    })
}

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

/// The service principal with object id `id`: an identity or an API.
pub(super) fn find_sp(s: &Shared, id: &str) -> Option<(Value, String)> {
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
                identity_service_principal(i, system),
                i.display_name.clone(),
            )
        })
}

/// `GET /v1.0/servicePrincipals/{id}`.
pub(super) async fn by_id(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    if let Some(refused) = admit(&s, &req, Method::GET, READ_ROLES) {
        return refused;
    }
    match find_sp(&s, &id) {
        Some((sp, _)) => json_response(StatusCode::OK, sp),
        None => not_found(&id),
    }
}
