//! Graph's wire: its JSON content type, its error body, and paging of listings (`$top`,
//! `$skiptoken`, `@odata.nextLink`).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::model::guid;
use crate::wire::respond;

/// The content type of Graph's JSON answers.
const ODATA_JSON: &str = "application/json;odata.metadata=minimal";

/// A Graph error: `{"error": {"code", "message", "innerError"}}`.
pub(super) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "",
                "request-id": guid(),
                "client-request-id": guid(),
            }
        }
    });
    respond(status, "application/json", body.to_string())
}

/// A JSON response as Graph sends it.
pub(super) fn json_response(status: StatusCode, body: Value) -> Response {
    respond(status, ODATA_JSON, body.to_string())
}

/// The query of a Graph listing: `$top` (1–999, default 100), `$skiptoken` (our page offset)
/// and the other parameters, with Graph's errors for bad values.
pub(super) struct Paging {
    query: Vec<(String, String)>,
    pub(super) top: usize,
    pub(super) skip: usize,
}

impl Paging {
    // `Err` is the response to send, as for `gate`.
    #[allow(clippy::result_large_err)]
    pub(super) fn from_request(req: &Request) -> Result<Paging, Response> {
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let mut page = Paging {
            query,
            top: 100,
            skip: 0,
        };
        match page.param("$top").map(str::parse::<usize>) {
            None => {}
            Some(Ok(n)) if (1..=999).contains(&n) => page.top = n,
            Some(_) => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    "Invalid page size specified: '$top'. Must be between 1 and 999 inclusive.",
                ));
            }
        }
        match page.param("$skiptoken").map(str::parse::<usize>) {
            None => {}
            Some(Ok(n)) => page.skip = n,
            Some(Err(_)) => {
                return Err(graph_error(
                    StatusCode::BAD_REQUEST,
                    "Directory_InvalidSkipToken",
                    "The specified page token value has expired or is invalid.",
                ));
            }
        }
        Ok(page)
    }

    /// The `$skiptoken` of the page after this one, if `total` items leave one. Saturating:
    /// a huge `$skiptoken` (any `usize` parses) just means there is no next page.
    pub(super) fn next_skip(&self, total: usize) -> Option<usize> {
        Some(self.skip.saturating_add(self.top)).filter(|&next| next < total)
    }

    /// A query parameter, names compared case-insensitively.
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Graph's `404` for a directory object that does not exist.
pub(super) fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}
