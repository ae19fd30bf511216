//! The body of a token endpoint's answer as a JSON object, or what it is instead; the error
//! fields of a non-success answer; and whether a success answered another request.
//!
//! Nothing here copies a value from the body into an error: problems name the field and its
//! JSON kind only (a service's own error code and description excepted, truncated).

use serde_json::{Map, Value};

use crate::error::{ServiceError, Unavailable};
use crate::http::RawResponse;

/// What the body of a non-success answer looked like.
pub(crate) enum ErrorBody {
    /// A JSON object with recognisable error fields.
    Service(ServiceError),
    /// HTML (a proxy or gateway page).
    Html,
    /// Anything else.
    Other,
}

/// The JSON kind of `v` (`"a string"`, `"null"`, …), for messages that name a field's kind and
/// never its value.
pub(super) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn looks_like_html(response: &RawResponse) -> bool {
    let ct_html = response
        .content_type
        .as_deref()
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"));
    let body = trim_ascii_start(&response.body);
    ct_html || body.first() == Some(&b'<')
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[start..]
}

/// Parses the body as a JSON object, or says what it is instead.
pub(crate) fn json_object(response: &RawResponse) -> Result<Map<String, Value>, Unavailable> {
    if looks_like_html(response) {
        return Err(Unavailable::Html {
            status: response.status,
        });
    }
    if response.body.is_empty() {
        return Err(Unavailable::NotJson {
            status: response.status,
            what: "empty body".into(),
        });
    }
    if std::str::from_utf8(&response.body).is_err() {
        return Err(Unavailable::NotJson {
            status: response.status,
            what: "bytes that are not UTF-8".into(),
        });
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Unavailable::NotJson {
            status: response.status,
            what: format!("JSON {}", kind(&other)),
        }),
        Err(e) => Err(Unavailable::NotJson {
            status: response.status,
            what: match e.classify() {
                serde_json::error::Category::Eof => {
                    format!(
                        "truncated JSON (ends at line {} column {})",
                        e.line(),
                        e.column()
                    )
                }
                _ => format!("malformed JSON at line {} column {}", e.line(), e.column()),
            },
        }),
    }
}

/// Why a successful answer is for another token than the one asked for, if it is: its
/// `resource` names another API, or its `client_id` another identity than the client id
/// requested. Sources echo both; a token for the wrong API or identity must not be cached.
///
/// Resources are compared leniently, so that an echo in another spelling is no false alarm:
/// only two absolute URLs that differ in scheme, host, port or path (ignoring case and a
/// trailing slash) count as different; an answer for an application-id GUID or another form
/// is not judged. A client id is compared as a GUID, ignoring case (App Service answers in
/// upper case).
pub(crate) fn answered_for_another(
    map: &Map<String, Value>,
    requested_resource: &str,
    requested_client_id: Option<&str>,
) -> Option<String> {
    if let Some(Value::String(got)) = map.get("resource")
        && !same_resource(got, requested_resource)
    {
        return Some(format!(
            "the token is for resource {:?}, not the {requested_resource:?} asked for",
            truncate(got, 200)
        ));
    }
    if let (Some(want), Some(Value::String(got))) = (requested_client_id, map.get("client_id"))
        && crate::guid::Guid::is_guid(got)
        && !got.eq_ignore_ascii_case(want)
    {
        return Some(format!(
            "the token is for the identity with client id {got}, not {want} as asked"
        ));
    }
    None
}

fn same_resource(a: &str, b: &str) -> bool {
    let parts = |s: &str| {
        let url = url::Url::parse(s).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        let path = url.path().trim_end_matches('/').to_ascii_lowercase();
        Some((
            url.scheme().to_owned(),
            host,
            url.port_or_known_default(),
            path,
        ))
    };
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Reads the error fields of a non-success body.
pub(crate) fn error_body(response: &RawResponse) -> ErrorBody {
    if looks_like_html(response) {
        return ErrorBody::Html;
    }
    let Ok(map) = json_object(response) else {
        return ErrorBody::Other;
    };
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.is_empty() => Some(truncate(s, 1024)),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    // Entra / IMDS: {"error": "...", "error_description": "..."}; App Service:
    // {"statusCode": 400, "message": "..."}; some gateways nest {"error": {"code", "message"}}.
    let (code, description) = match map.get("error") {
        Some(Value::Object(inner)) => (text(inner.get("code")), text(inner.get("message"))),
        other => (
            text(other),
            text(map.get("error_description"))
                .or_else(|| text(map.get("message")))
                .or_else(|| text(map.get("Message"))),
        ),
    };
    let code = code.or_else(|| text(map.get("statusCode")).map(|c| format!("statusCode {c}")));
    if code.is_none() && description.is_none() {
        return ErrorBody::Other;
    }
    ErrorBody::Service(ServiceError {
        status: response.status,
        code,
        description,
    })
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
