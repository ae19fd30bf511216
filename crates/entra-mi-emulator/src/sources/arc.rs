//! Azure Arc's HIMDS agent: `GET /arc/metadata/identity/oauth2/token` with `Metadata: true`,
//! system-assigned identity only. The first leg is answered `401` with
//! `WWW-Authenticate: Basic realm=<path>` naming a fresh key file; the second leg carries that
//! file's content as `Authorization: Basic <key>`
//! (<https://learn.microsoft.com/en-us/azure/azure-arc/servers/managed-identity-authentication>).

use std::path::{Path, PathBuf};

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::common::{imds_error, imds_fault_body, imds_invalid_request, imds_preamble, imds_token};
use crate::endpoint::Emulated;
use crate::model::{Endpoint, guid};
use crate::state::{Shared, SourcesState, lock};
use crate::wire::Query;
use crate::{Emulator, EmulatorBuilder};

/// The api-versions the agent accepts.
const API_VERSIONS: &[&str] = &["2019-08-15", "2019-11-01", "2020-06-01", "2021-02-01"];

/// The Arc token endpoint.
pub(crate) struct AzureArc;

impl Emulated for AzureArc {
    const ENDPOINT: Endpoint = Endpoint::AzureArc;
    const PATHS: &'static [&'static str] = &["/arc/metadata/identity/oauth2/token"];

    fn answer(s: &Shared, parts: &Parts, _body: &[u8]) -> Response {
        if let Some(refused) = imds_preamble(parts) {
            return refused;
        }
        let q = Query::parse(parts);
        if !q
            .first("api-version")
            .is_some_and(|v| API_VERSIONS.contains(&v))
        {
            return imds_invalid_request(
                "Invalid or missing api-version; the agent supports 2019-08-15, 2019-11-01, 2020-06-01 and 2021-02-01",
            );
        }
        let Some(resource) = q.non_empty("resource") else {
            return imds_invalid_request("Required query variable 'resource' is missing");
        };
        if ["client_id", "object_id", "msi_res_id"]
            .iter()
            .any(|p| q.first(p).is_some())
        {
            return imds_invalid_request(
                "User-assigned identities are not supported by the Azure Connected Machine agent",
            );
        }
        let sources = &s.sources;
        let Some(auth) = parts.headers.get(header::AUTHORIZATION) else {
            return challenge(sources);
        };
        let presented = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Basic "))
            .unwrap_or_default();
        let valid = match lock(&sources.arc_realm).as_ref() {
            Some(path) => std::fs::read_to_string(path)
                .map(|k| !presented.is_empty() && k.trim() == presented)
                .unwrap_or(false),
            None => lock(&sources.arc_keys).iter().any(|k| k == presented),
        };
        if !valid {
            return imds_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "The Authorization header does not carry a valid key",
            );
        }
        let Some(identity) = s.system.as_ref() else {
            return imds_invalid_request("Identity not found");
        };
        imds_token(Endpoint::AzureArc, s, identity, resource)
    }

    fn fault_body(status: StatusCode) -> String {
        imds_fault_body(status)
    }
}

/// The first leg's `401`, naming the key file to read.
fn challenge(sources: &SourcesState) -> Response {
    let path = match lock(&sources.arc_realm).clone() {
        Some(p) => p,
        None => match new_key_file(sources.arc_key_directory.as_deref()) {
            Ok((path, key)) => {
                lock(&sources.arc_keys).push(key);
                path
            }
            Err(e) => {
                return imds_error(StatusCode::INTERNAL_SERVER_ERROR, "unknown", &e);
            }
        },
    };
    let mut resp = imds_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authorization with a key file is required",
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm={}", path.display())) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// Writes `<dir>/<guid>.key` with a fresh random key, like the agent does per challenge.
fn new_key_file(dir: Option<&Path>) -> Result<(PathBuf, String), String> {
    let dir = dir.ok_or("emulator: no Arc key directory configured")?;
    let key: String = (0..4).map(|_| guid().replace('-', "")).collect();
    let path = dir.join(format!("{}.key", guid()));
    std::fs::write(&path, &key).map_err(|e| format!("emulator: cannot write the key file: {e}"))?;
    Ok((path, key))
}

impl EmulatorBuilder {
    /// The directory the Azure Arc endpoint writes its challenge key files to (the agent's
    /// `/var/opt/azcmagent/tokens`). Without one, the Arc endpoint answers `500`.
    pub fn arc_key_directory(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sources.arc_key_directory = Some(dir.into());
        self
    }
}

impl Emulator {
    /// The value for `IDENTITY_ENDPOINT` on an Arc-enabled server:
    /// `<base>/arc/metadata/identity/oauth2/token` (set `IMDS_ENDPOINT` to anything too).
    pub fn arc_endpoint(&self) -> String {
        format!("{}/arc/metadata/identity/oauth2/token", self.base_url())
    }

    /// Makes the Arc challenge name this path instead of a fresh key file in the key
    /// directory (`None` goes back to fresh files). The second leg is accepted when its
    /// `Authorization: Basic` value is that file's content. For testing a client's checks of
    /// the path (outside the directory, `..`, symbolic links, extension, size, missing file).
    pub fn set_arc_challenge_path(&self, path: Option<PathBuf>) {
        *lock(&self.inner.shared.sources.arc_realm) = path;
    }
}
