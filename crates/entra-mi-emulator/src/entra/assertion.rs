//! Client assertions at the token endpoint: a certificate assertion (`private_key_jwt`, the
//! certificate named by `x5t#S256` or `x5t`) is verified against the app's registered
//! certificates; anything else is a federated assertion, verified against the emulator's own
//! published keys and the app's federated identity credentials.

use axum::http::StatusCode;
use axum::response::Response;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::TOKEN_EXCHANGE_AUDIENCE;
use super::errors::{aadsts, timestamp};
use crate::directory::App;
use crate::state::{Shared, lock};
use crate::time::now_secs;

/// Verifies `assertion` as the credential of `app`; `Some` is the error answer.
pub(super) fn check(s: &Shared, app: &App, assertion: &str, tenant: &str) -> Option<Response> {
    if names_certificate(app, assertion) {
        check_certificate(s, app, assertion, tenant)
    } else {
        check_federated(s, app, assertion)
    }
}

/// Whether the assertion names a certificate. A certificate assertion names its certificate;
/// a federated token (the emulator's own too) may carry `x5t` of its issuer's key, which is
/// no certificate of the app.
fn names_certificate(app: &App, assertion: &str) -> bool {
    jsonwebtoken::decode_header(assertion)
        .map(|h| {
            h.x5t_s256.is_some()
                || h.x5t.as_deref().is_some_and(|t| {
                    app.certificates
                        .iter()
                        .any(|der| thumbprint(SHA1, der) == t.trim_end_matches('='))
                })
        })
        .unwrap_or(false)
}

const SHA1: &aws_lc_rs::digest::Algorithm = &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY;
const SHA256: &aws_lc_rs::digest::Algorithm = &aws_lc_rs::digest::SHA256;

/// A certificate's thumbprint as a JWS header carries it (`x5t`: SHA-1, `x5t#S256`:
/// SHA-256), base64url without padding.
fn thumbprint(algorithm: &'static aws_lc_rs::digest::Algorithm, der: &[u8]) -> String {
    base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        aws_lc_rs::digest::digest(algorithm, der).as_ref(),
    )
}

/// Entra's `401 invalid_client` with this AADSTS code.
fn invalid(code: u32, message: &str) -> Option<Response> {
    Some(aadsts(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        message,
    ))
}

/// The answer to an assertion that has expired or is not valid yet.
fn out_of_time_range() -> Option<Response> {
    invalid(
        700024,
        &format!(
            "Client assertion is not within its valid time range. Current time: {}.",
            timestamp(now_secs())
        ),
    )
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    #[serde(default)]
    aud: Value,
}

/// Verifies a federated assertion: RS256 signature by the emulator's key (it signs both its
/// managed-identity tokens and its OIDC issuer's tokens), `exp`/`nbf`, `aud`, and a federated
/// credential of `app` with the same issuer and subject.
fn check_federated(s: &Shared, app: &App, assertion: &str) -> Option<Response> {
    let Some(signing_key) = s.verification_key(assertion) else {
        return invalid(50013, "Assertion failed signature validation.");
    };
    let key = signing_key.decoding();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = match jsonwebtoken::decode::<AssertionClaims>(assertion, key, &validation) {
        Ok(d) => d,
        Err(e) => {
            return match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature => out_of_time_range(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid(50013, "Assertion failed signature validation.")
                }
                _ => invalid(50027, "JWT token is invalid or malformed."),
            };
        }
    };
    let c = data.claims;
    let aud_ok = match &c.aud {
        Value::String(a) => a == TOKEN_EXCHANGE_AUDIENCE,
        Value::Array(v) => v
            .iter()
            .any(|a| a.as_str() == Some(TOKEN_EXCHANGE_AUDIENCE)),
        _ => false,
    };
    let aud_text = match &c.aud {
        Value::String(a) => a.clone(),
        other => other.to_string(),
    };
    if !aud_ok {
        return invalid(
            700212,
            &format!(
                "No matching federated identity record found for presented assertion audience '{aud_text}'."
            ),
        );
    }
    if !app.federated.iter().any(|(iss, _)| *iss == c.iss) {
        return invalid(
            700211,
            &format!(
                "No matching federated identity record found for presented assertion issuer '{}'.",
                c.iss
            ),
        );
    }
    if !app
        .federated
        .iter()
        .any(|(iss, sub)| *iss == c.iss && *sub == c.sub)
    {
        return invalid(
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{aud_text}'.",
                c.iss, c.sub
            ),
        );
    }
    None
}

#[derive(Deserialize)]
struct CertificateAssertionClaims {
    sub: String,
    #[serde(default)]
    jti: Option<String>,
}

/// Verifies a certificate assertion against the app's registered certificates. (A replayed
/// `jti` is answered with AADSTS700027 and a message saying so; the code is the emulator's
/// choice.)
fn check_certificate(s: &Shared, app: &App, assertion: &str, tenant: &str) -> Option<Response> {
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return invalid(50027, "JWT token is invalid or malformed.");
    };
    let wanted_s256 = header
        .x5t_s256
        .as_deref()
        .map(|t| t.trim_end_matches('=').to_owned());
    let wanted_s1 = header
        .x5t
        .as_deref()
        .map(|t| t.trim_end_matches('=').to_owned());
    let cert = app.certificates.iter().find(|der| {
        let s256 = thumbprint(SHA256, der);
        let s1 = thumbprint(SHA1, der);
        wanted_s256.as_deref() == Some(s256.as_str())
            || (wanted_s256.is_none() && wanted_s1.as_deref() == Some(s1.as_str()))
    });
    let thumb = wanted_s256.or(wanted_s1).unwrap_or_default();
    let Some(cert) = cert else {
        return invalid(
            700027,
            &format!(
                "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: '{thumb}']"
            ),
        );
    };
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
        return invalid(
            700027,
            "Client assertion failed signature validation. [Reason - The registered certificate is unreadable.]",
        );
    };
    let key = DecodingKey::from_rsa_der(parsed.public_key().subject_public_key.data.as_ref());
    if !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return invalid(
            700027,
            "Client assertion failed signature validation. [Reason - Unsupported algorithm.]",
        );
    }
    let mut validation = Validation::new(header.alg);
    let endpoint = format!("{}/{tenant}/oauth2/v2.0/token", s.base_url);
    validation.set_audience(&[endpoint.as_str()]);
    validation.set_issuer(&[app.client_id.as_str()]);
    validation.validate_nbf = true;
    validation.leeway = 60;
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let claims = match jsonwebtoken::decode::<CertificateAssertionClaims>(
        assertion,
        &key,
        &validation,
    ) {
        Ok(d) => d.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind as K;
            return match e.kind() {
                K::ExpiredSignature | K::ImmatureSignature => out_of_time_range(),
                K::InvalidSignature => {
                    invalid(700027, "Client assertion contains an invalid signature.")
                }
                K::InvalidAudience => invalid(
                    700027,
                    &format!(
                        "Client assertion failed validation: its audience must be the token endpoint '{endpoint}'."
                    ),
                ),
                K::InvalidIssuer => invalid(
                    700027,
                    "Client assertion failed validation: its issuer must be the client id.",
                ),
                _ => invalid(50027, "JWT token is invalid or malformed."),
            };
        }
    };
    if !claims.sub.eq_ignore_ascii_case(&app.client_id) {
        return invalid(
            700027,
            "Client assertion failed validation: its subject must be the client id.",
        );
    }
    let Some(jti) = claims.jti.filter(|j| !j.is_empty()) else {
        return invalid(700027, "Client assertion failed validation: it has no jti.");
    };
    if !lock(&s.entra.seen_jti).insert(jti) {
        return invalid(
            700027,
            "Client assertion failed validation: its jti has already been used (replayed assertion).",
        );
    }
    None
}
