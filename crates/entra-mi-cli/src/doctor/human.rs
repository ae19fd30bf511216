//! `entra-mi doctor`'s report for people.

use serde_json::Value;

use crate::claims;

/// The report as lines of text (no final line feed). Its strings were made safe to print
/// when they were put in it.
pub(super) fn render(report: &Value) -> String {
    let s = |k: &str| report[k].as_str().unwrap_or("").to_owned();
    let mut lines: Vec<String> = Vec::new();
    lines.push("Environment (presence only; values are never shown):".to_owned());
    if let Some(vars) = report["variables"].as_object() {
        for (name, set) in vars {
            if set.as_bool() == Some(true) {
                lines.push(format!("  {name:<36} set"));
            }
        }
        if !vars.values().any(|v| v.as_bool() == Some(true)) {
            lines.push("  (none of the identity variables is set)".to_owned());
        }
    }
    if report.get("source").is_some() {
        lines.push(format!(
            "Source:      {} — because {}",
            s("source"),
            s("source_reason")
        ));
    } else {
        lines.push(format!(
            "Source:      cannot be determined: {}",
            s("source_error")
        ));
    }
    let summary = |k: &str| report[k]["summary"].as_str().map(str::to_owned);
    for (key, label) in [
        ("endpoint", "Endpoint:"),
        ("arc_key_directory", "Arc keys:"),
        ("proxy", "Proxy:"),
        ("federated_token_file", "WI token:"),
    ] {
        if let Some(line) = summary(key) {
            lines.push(format!("{label:<12} {line}"));
        }
    }
    if report.get("credential").is_some() {
        lines.push(format!("Credential:  {}", s("credential")));
    } else {
        lines.push(format!(
            "Credential:  cannot be built: {}",
            s("credential_error")
        ));
    }
    if report.get("elapsed_ms").is_some() {
        let verdict = if report.get("token").is_some() {
            "obtained"
        } else {
            "failed"
        };
        lines.push(format!(
            "Token:       {verdict} in {} ms for {}",
            report["elapsed_ms"],
            s("resource")
        ));
    }
    if report.get("error").is_some() {
        lines.push(format!("Error:       {}", s("error")));
    }
    if let Some(shown) = report["claims"].as_object() {
        lines.push(
            "Token claims (decoded, not verified; the token itself is not shown):".to_owned(),
        );
        for k in claims::SHOWN {
            if let Some(v) = shown.get(*k) {
                lines.push(format!("  {k:<10} {v}"));
            }
        }
    }
    if report.get("receiver").is_some() {
        lines.push(format!("Receiver:    {}", s("receiver")));
    }
    if let Some(hints) = report["hints"].as_array() {
        for h in hints {
            lines.push(format!("Hint:        {}", h.as_str().unwrap_or("")));
        }
    }
    lines.join("\n")
}
