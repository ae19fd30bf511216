//! Helpers shared by the integration tests: a plain HTTP client and token decoding.
#![allow(dead_code)]

use std::time::Duration;

use entra_mi_emulator::Emulator;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A client that never goes through a proxy and never waits forever.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `access_token` of a successful token response.
    pub fn token(&self) -> String {
        assert_eq!(self.status, StatusCode::OK, "body: {}", self.body);
        self.json()["access_token"]
            .as_str()
            .expect("access_token string")
            .to_owned()
    }
}

/// GET `url` with the given headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    try_get(url, headers).await.expect("HTTP response")
}

/// GET `url`; the transport error if there is no response.
pub async fn try_get(url: &str, headers: &[(&str, &str)]) -> Result<Reply, reqwest::Error> {
    let mut req = client().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// An IMDS token request: api-version 2018-02-01, `resource`, and `extra` appended verbatim.
pub async fn imds(em: &Emulator, resource: &str, extra: &str) -> Reply {
    let url = format!(
        "{}?api-version=2018-02-01&resource={}{extra}",
        em.imds_token_url(),
        enc(resource)
    );
    get(&url, &[("Metadata", "true")]).await
}

/// An App Service token request: api-version 2019-08-01, `resource`, `extra` appended verbatim,
/// with the current identity header.
pub async fn app_service(em: &Emulator, resource: &str, extra: &str) -> Reply {
    let url = format!(
        "{}?api-version=2019-08-01&resource={}{extra}",
        em.app_service_endpoint(),
        enc(resource)
    );
    get(&url, &[("X-IDENTITY-HEADER", &em.identity_header())]).await
}

/// The claims of a JWT, without verifying anything.
pub fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .expect("decodable JWT")
        .claims
}

/// Verifies a token like a resource server would: keys from the discovery document's
/// `jwks_uri`, RS256, `aud` and `iss` checked. Returns the header and the claims.
pub async fn verify(em: &Emulator, token: &str, audience: &str) -> (jsonwebtoken::Header, Value) {
    let config = get(&em.openid_configuration_url(), &[]).await.json();
    let jwks_uri = config["jwks_uri"].as_str().expect("jwks_uri");
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(&get(jwks_uri, &[]).await.body).expect("JWKS");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.as_deref().expect("kid");
    let jwk = set.find(kid).expect("the token's kid is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("RSA JWK");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[config["issuer"].as_str().expect("issuer")]);
    validation.validate_nbf = true;
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"));
    (data.header, data.claims)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}
