//! What several managed-identity sources share on the wire: identity selection, the checks of
//! the `Metadata` and secret headers, IMDS's first checks and its error and token bodies
//! (IMDS, Arc; Cloud Shell's token body), the `{"statusCode", "message"}` error body (App
//! Service, 2017-09-01), and how a token's expiry is written in each [`ResponseShape`].

use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::Value;

use crate::model::{Endpoint, Identity, ResponseShape};
use crate::state::{Issued, Shared};
use crate::time::{legacy_app_service_date, now_secs};
use crate::wire::{JSON, Query, json_object, respond, with_allow_get};

/// What an identity selector parameter selects by.
#[derive(Clone, Copy)]
pub(super) enum Selector {
    Client,
    Object,
    Resource,
}

/// The parameters of a source's token request, `resource` and the identity selectors, and
/// how the source words their refusal (all with `400`).
pub(super) struct TokenParams {
    /// The message for a missing or empty `resource`.
    pub(super) missing_resource: &'static str,
    /// The selector parameters and what each selects by.
    pub(super) selectors: &'static [(&'static str, Selector)],
    /// The message for more than one selector.
    pub(super) ambiguous: &'static str,
    /// The message for an id no identity has (or, without a selector, a machine without a
    /// system-assigned identity).
    pub(super) not_found: &'static str,
}

impl TokenParams {
    /// The resource and the selected identity, checked in that order: at most one selector;
    /// none selects the system-assigned identity; ids compare ignoring case. `Err` is the
    /// message to send.
    pub(super) fn read<'q, 's>(
        &self,
        s: &'s Shared,
        q: &'q Query,
    ) -> Result<(&'q str, &'s Identity), &'static str> {
        let resource = q.non_empty("resource").ok_or(self.missing_resource)?;
        let identity = match q.tagged(self.selectors)[..] {
            [] => s.system.as_ref().ok_or(self.not_found)?,
            [(sel, value)] => s
                .all_identities()
                .find(|i| {
                    let field = match sel {
                        Selector::Client => &i.client_id,
                        Selector::Object => &i.object_id,
                        Selector::Resource => &i.resource_id,
                    };
                    field.eq_ignore_ascii_case(value)
                })
                .ok_or(self.not_found)?,
            _ => return Err(self.ambiguous),
        };
        Ok((resource, identity))
    }
}

/// Entra's answer to a resource that cannot be an application: a v2 scope (`…/.default`)
/// passed where a v1 resource belongs.
pub(super) fn resource_problem(resource: &str, tenant: &str) -> Option<String> {
    resource.ends_with("/.default").then(|| {
        format!(
            "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
        )
    })
}

/// Whether the request carries exactly `Metadata: true` (lowercase), the SSRF guard of IMDS
/// and the endpoints modelled on it.
pub(super) fn has_metadata_header(parts: &Parts) -> bool {
    parts.headers.get("metadata").map(HeaderValue::as_bytes) == Some(b"true")
}

/// A source's secret header (`X-IDENTITY-HEADER`, `secret`), and how it words a request
/// without the expected value.
pub(super) struct SecretHeader {
    pub(super) name: &'static str,
    pub(super) missing: (StatusCode, &'static str),
    pub(super) mismatch: (StatusCode, &'static str),
}

impl SecretHeader {
    /// Compares the header with the secret the endpoint expects. `Err` is the status and
    /// message to send.
    pub(super) fn check(
        &self,
        parts: &Parts,
        expected: &str,
    ) -> Result<(), (StatusCode, &'static str)> {
        match parts.headers.get(self.name) {
            None => Err(self.missing),
            Some(v) if v.as_bytes() != expected.as_bytes() => Err(self.mismatch),
            Some(_) => Ok(()),
        }
    }
}

/// An IMDS error: `{"error": …, "error_description": …}`.
pub(super) fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    respond(status, JSON, body.to_string())
}

/// IMDS's `400 invalid_request`.
pub(super) fn imds_invalid_request(description: &str) -> Response {
    imds_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// What IMDS and the Arc agent check first, worded like IMDS: the method (`GET`) and, the
/// SSRF guard, exactly `Metadata: true` (SDK probes send no header and rely on getting this
/// `400` back). `Some` is the answer to send instead.
pub(super) fn imds_preamble(parts: &Parts) -> Option<Response> {
    if parts.method != Method::GET {
        return Some(with_allow_get(imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "The requested HTTP method is not supported; use GET",
        )));
    }
    if !has_metadata_header(parts) {
        return Some(imds_error(
            StatusCode::BAD_REQUEST,
            "bad_request_102",
            "Required metadata header not specified",
        ));
    }
    None
}

/// The IMDS error body the real service sends with `status`.
pub(super) fn imds_fault_body(status: StatusCode) -> String {
    let (error, description) = match status.as_u16() {
        400 => ("invalid_request", "Bad request"),
        401 => ("unknown_source", "Unknown Source"),
        403 => ("forbidden", "Forbidden"),
        404 => ("not_found", "IMDS endpoint is updating"),
        410 => (
            "gone",
            "IMDS is going through updates. Please try again later.",
        ),
        429 => (
            "too_many_requests",
            "Too many requests. Please try again later.",
        ),
        500 => (
            "unknown",
            "Failed to retrieve token from the Active directory. For details see logs in /var/log/azure",
        ),
        _ => (
            "service_unavailable",
            status.canonical_reason().unwrap_or("Service unavailable"),
        ),
    };
    serde_json::json!({ "error": error, "error_description": description }).to_string()
}

/// An App Service (and 2017-09-01) error: `{"statusCode": …, "message": …}`.
pub(super) fn status_message_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "statusCode": status.as_u16(), "message": message });
    respond(status, JSON, body.to_string())
}

/// The `{"statusCode", "message"}` body the real service sends with `status`.
pub(super) fn status_message_fault_body(status: StatusCode) -> String {
    let code = status.as_u16();
    let message = match code {
        400 => "Bad request",
        401 => "Unauthorized",
        404 => "Not found",
        429 => "Too many requests. Please retry later.",
        500 => "An unexpected error occured while fetching the AAD Token.",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    serde_json::json!({ "statusCode": code, "message": message }).to_string()
}

/// A token's expiry as IMDS and App Service 2019-08-01 write it in a [`ResponseShape`].
pub(super) struct Expiry {
    pub(super) expires_on: Value,
    /// `None` where the shape leaves `expires_in` out.
    pub(super) expires_in: Option<Value>,
    pub(super) refresh_in: Option<Value>,
}

impl Expiry {
    pub(super) fn new(shape: ResponseShape, t: &Issued) -> Self {
        let remaining = t.exp.saturating_sub(now_secs());
        let exp = i64::try_from(t.exp).unwrap_or(i64::MAX);
        let expires_on = match shape {
            ResponseShape::NumericExpiry => Value::from(t.exp),
            ResponseShape::ExpiresOnDate => Value::from(legacy_app_service_date(exp)),
            ResponseShape::ExpiresOnOffset(off) => Value::from(exp.saturating_add(off).to_string()),
            _ => Value::from(t.exp.to_string()),
        };
        let expires_in = match shape {
            ResponseShape::NoExpiresIn | ResponseShape::ExpiresOnDate => None,
            ResponseShape::NumericExpiry => Some(Value::from(remaining)),
            _ => Some(Value::from(remaining.to_string())),
        };
        let refresh_in = match shape {
            ResponseShape::WithRefreshIn(r) => Some(Value::from(r.to_string())),
            _ => None,
        };
        Expiry {
            expires_on,
            expires_in,
            refresh_in,
        }
    }
}

/// A token for `identity` and `resource` in the IMDS body, shaped as `shape_of` is set
/// (IMDS itself, and Arc and Cloud Shell, which answer like it); a minting failure is an
/// IMDS `500`.
pub(super) fn imds_token(
    shape_of: Endpoint,
    s: &Shared,
    identity: &Identity,
    resource: &str,
) -> Response {
    let t = match s.token_for(identity, resource) {
        Ok(t) => t,
        Err(e) => return imds_error(StatusCode::INTERNAL_SERVER_ERROR, "unknown", &e),
    };
    let expiry = Expiry::new(s.shape(shape_of), &t);
    let mut fields: Vec<(&str, Value)> = vec![
        ("access_token", Value::from(t.token.as_str())),
        ("refresh_token", Value::from("")),
    ];
    if let Some(v) = expiry.expires_in {
        fields.push(("expires_in", v));
    }
    fields.push(("expires_on", expiry.expires_on));
    if let Some(v) = expiry.refresh_in {
        fields.push(("refresh_in", v));
    }
    fields.push(("not_before", Value::from(t.nbf.to_string())));
    fields.push(("resource", Value::from(resource)));
    fields.push(("token_type", Value::from("Bearer")));
    respond(StatusCode::OK, JSON, json_object(&fields))
}
