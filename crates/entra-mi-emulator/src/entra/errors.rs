//! How Entra words its errors: the token endpoint's `error`, `error_description` with its
//! AADSTS code and trace lines, `error_codes`, `trace_id`, `correlation_id`, `timestamp`
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>).

use axum::http::StatusCode;
use axum::response::Response;

use crate::model::guid;
use crate::time::now_secs;
use crate::wire::{JSON, respond};

/// The error body Entra sends with `status` (its token and discovery endpoints alike).
pub(crate) fn fault_body(status: StatusCode) -> String {
    let (error, description) = match status.as_u16() {
        429 => (
            "temporarily_unavailable",
            "AADSTS50196: The server terminated an operation because it encountered a client request loop.",
        ),
        500..=599 => (
            "temporarily_unavailable",
            "AADSTS90033: A transient error has occurred. Please try again.",
        ),
        _ => ("invalid_request", "AADSTS900144: The request is not valid."),
    };
    serde_json::json!({ "error": error, "error_description": description }).to_string()
}

/// An Entra error answer.
pub(super) fn aadsts(status: StatusCode, error: &str, code: u32, message: &str) -> Response {
    let trace = guid();
    let correlation = guid();
    let timestamp = timestamp(now_secs());
    let body = serde_json::json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    respond(status, JSON, body.to_string())
}

pub(super) fn timestamp(epoch: u64) -> String {
    let epoch = i64::try_from(epoch).unwrap_or(0);
    let (y, m, d) = crate::time::civil_from_days(epoch.div_euclid(86_400));
    let secs = epoch.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
