//! HTTP plumbing every endpoint shares: building responses (content types, the `Allow`
//! header, JSON objects in a fixed field order) and reading query strings and form bodies.
//! It knows nothing of the endpoints themselves.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

/// The content type of JSON answers.
pub(crate) const JSON: &str = "application/json; charset=utf-8";
/// The content type of HTML pages.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// A response with this status, content type and body.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Adds `Allow: <method>` (to a `405 Method Not Allowed`).
pub(crate) fn with_allow(mut resp: Response, method: &'static str) -> Response {
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(method));
    resp
}

/// Adds `Allow: GET`.
pub(crate) fn with_allow_get(resp: Response) -> Response {
    with_allow(resp, "GET")
}

/// A status code from a number; anything that is not one is answered as `500`.
pub(crate) fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Serializes fields as a JSON object, keeping their order.
pub(crate) fn json_object(fields: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(*k).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// Decoded `name=value` pairs (a query string or a form body), in order, duplicates kept.
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// The request's query string.
    pub(crate) fn parse(parts: &Parts) -> Self {
        Query::from_bytes(parts.uri.query().unwrap_or_default().as_bytes())
    }

    /// An `application/x-www-form-urlencoded` body (or query string).
    pub(crate) fn from_bytes(encoded: &[u8]) -> Self {
        Query(form_urlencoded::parse(encoded).into_owned().collect())
    }

    /// The first value of `name`.
    pub(crate) fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, unless it is empty.
    pub(crate) fn non_empty(&self, name: &str) -> Option<&str> {
        self.first(name).filter(|v| !v.is_empty())
    }

    /// Every occurrence of the parameters named in `names`, in request order, each with the
    /// tag its name carries.
    pub(crate) fn tagged<T: Copy>(&self, names: &[(&str, T)]) -> Vec<(T, &str)> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                names
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, tag)| (*tag, v.as_str()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object_keeps_order() {
        let s = json_object(&[("b", Value::from(1)), ("a", Value::from("x\"y"))]);
        assert_eq!(s, r#"{"b":1,"a":"x\"y"}"#);
    }

    #[test]
    fn query_keeps_order_and_duplicates() {
        let q = Query::from_bytes(b"a=1&b=&a=2&c=x%20y");
        assert_eq!(q.first("a"), Some("1"));
        assert_eq!(q.first("b"), Some(""));
        assert_eq!(q.non_empty("b"), None);
        assert_eq!(q.non_empty("c"), Some("x y"));
        assert_eq!(
            q.tagged(&[("a", 'A'), ("c", 'C')]),
            [('A', "1"), ('A', "2"), ('C', "x y")]
        );
    }
}
