//! Azure Arc (the Connected Machine agent's HIMDS), api-version 2020-06-01: a first request
//! answered by a `401` naming a key file, then the same request with that file's content.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use super::source::{self, RequestContext, Source, SourceConfig};
use crate::credential::TokenRequest;
use crate::error::{Error, SourceError, Unavailable};
use crate::http::{HttpClient, RawResponse};
use crate::retry::RetryClass;
use crate::secret::Secret;
use crate::source_kind::SourceKind;

pub(super) const API_VERSION: &str = "2020-06-01";
pub(super) const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:40342/metadata/identity/oauth2/token";
/// The largest key file read.
pub(crate) const MAX_KEY_FILE: u64 = 4096;

/// The agent's token directory, fixed per OS (`None` where Arc does not run).
pub(super) fn default_key_directory() -> Option<PathBuf> {
    if cfg!(target_os = "linux") {
        Some(PathBuf::from("/var/opt/azcmagent/tokens"))
    } else if cfg!(windows) {
        std::env::var_os("ProgramData").map(|p| {
            Path::new(&p)
                .join("AzureConnectedMachineAgent")
                .join("Tokens")
        })
    } else {
        None
    }
}

/// The Arc agent at its (loopback) endpoint. It serves only the machine's system-assigned
/// identity; key files must lie in `key_dir`.
#[derive(Debug)]
pub(super) struct Arc {
    endpoint: url::Url,
    key_dir: PathBuf,
}

impl Arc {
    pub(super) fn new(endpoint: url::Url, config: &SourceConfig<'_>) -> Result<Self, Error> {
        source::system_assigned_only(
            SourceKind::AzureArc,
            config.id,
            "the Arc agent serves only the machine's system-assigned identity",
        )?;
        let key_dir = config
            .arc_key_directory
            .clone()
            .or_else(default_key_directory)
            .ok_or_else(|| {
                Error::from(SourceError::NotSupported {
                    source_kind: SourceKind::AzureArc,
                    evidence: "the Arc agent runs only on Linux and Windows".into(),
                })
            })?;
        Ok(Self { endpoint, key_dir })
    }

    fn invalid(&self, problem: String) -> Error {
        source::unavailable(
            SourceKind::AzureArc,
            &self.endpoint,
            Unavailable::InvalidResponse { problem },
        )
    }
}

/// `GET {endpoint}?api-version=2020-06-01&resource=…` with `Metadata: true`.
fn request(
    client: &reqwest::Client,
    endpoint: &url::Url,
    resource: &str,
) -> reqwest::RequestBuilder {
    let url = source::token_url(endpoint, API_VERSION, resource);
    client.get(url).header("Metadata", "true")
}

/// The second leg: `request` with `Authorization: Basic <key file content>`; `None` when the
/// key cannot be sent in a header.
fn with_key(request: reqwest::RequestBuilder, key: &Secret) -> Option<reqwest::RequestBuilder> {
    let value = crate::http::sensitive_authorization("Basic", key.expose())?;
    Some(request.header(http::header::AUTHORIZATION, value))
}

#[async_trait]
impl Source for Arc {
    fn kind(&self) -> SourceKind {
        SourceKind::AzureArc
    }

    fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    fn retry_class(&self) -> RetryClass {
        RetryClass::Imds
    }

    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error> {
        Ok(self::request(
            cx.client,
            &self.endpoint,
            request.audience().resource(),
        ))
    }

    /// The first answer must be the `401` Basic challenge naming a key file in the agent's
    /// directory; the second request carries that file's content.
    async fn next_leg(
        &self,
        http: &HttpClient,
        request: &TokenRequest,
        first: RawResponse,
        timeout: Duration,
    ) -> Result<Result<RawResponse, Unavailable>, Error> {
        if (200..300).contains(&first.status) {
            return Err(self.invalid(
                "the first request was answered without the `401` Basic challenge the Arc agent sends".into(),
            ));
        }
        if first.status != 401 {
            return Ok(Ok(first));
        }
        let path =
            challenge_path(first.www_authenticate.as_deref()).map_err(|p| self.invalid(p))?;
        let key = read_key(&path, &self.key_dir).await?;
        let first_leg = self::request(http.inner(), &self.endpoint, request.audience().resource());
        let second = with_key(first_leg, &key).ok_or_else(|| {
            Error::from(SourceError::ArcKeyFile {
                path: path.clone(),
                reason: "its content cannot be sent in an HTTP header".into(),
            })
        })?;
        Ok(http.send(second, timeout).await)
    }
}

/// The key file path of a `WWW-Authenticate: Basic realm=<path>` challenge.
pub(crate) fn challenge_path(header: Option<&str>) -> Result<String, String> {
    let header = header.ok_or("the 401 answer has no WWW-Authenticate header")?;
    let (scheme, rest) = header
        .trim()
        .split_once(char::is_whitespace)
        .ok_or("the WWW-Authenticate header is not `Basic realm=<path>`")?;
    let path = rest
        .trim()
        .strip_prefix("realm=")
        .filter(|_| scheme.eq_ignore_ascii_case("basic"))
        .ok_or("the WWW-Authenticate header is not `Basic realm=<path>`")?;
    let path = path.trim().trim_matches('"');
    if path.is_empty() {
        return Err("the WWW-Authenticate realm names no file".into());
    }
    Ok(path.to_owned())
}

/// Checks the challenge's path, then reads it: absolute, ends in `.key`, after resolving `..`
/// and symbolic links directly inside `key_dir`, and — checked on the file once opened, at
/// its resolved path and without following a link there — a regular file of at most 4096
/// bytes that is still the file at that path.
pub(crate) async fn read_key(path: &str, key_dir: &Path) -> Result<Secret, Error> {
    let fail = |reason: String| {
        Error::from(SourceError::ArcKeyFile {
            path: path.to_owned(),
            reason,
        })
    };
    let given = Path::new(path);
    if !given.is_absolute() {
        return Err(fail("it is not an absolute path".into()));
    }
    let is_key = |p: &Path| p.extension().is_some_and(|e| e == "key");
    if !is_key(given) {
        return Err(fail("it does not end in `.key`".into()));
    }
    let dir = tokio::fs::canonicalize(key_dir).await.map_err(|e| {
        fail(format!(
            "the agent's token directory {} cannot be resolved ({})",
            key_dir.display(),
            e.kind()
        ))
    })?;
    let real = tokio::fs::canonicalize(given)
        .await
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => fail("it does not exist".into()),
            ErrorKind::PermissionDenied => fail(permission_hint()),
            k => fail(format!("it cannot be resolved ({k})")),
        })?;
    if real.parent() != Some(dir.as_path()) {
        return Err(fail(format!(
            "it lies outside the agent's token directory {} (after resolving `..` and symbolic links)",
            dir.display()
        )));
    }
    if !is_key(&real) {
        return Err(fail(
            "it resolves to a file that does not end in `.key`".into(),
        ));
    }
    // Opened once, without following a link and without blocking on a FIFO; the checks are
    // made on the opened handle, which must still be the file at the checked path.
    let limits = crate::fs::Limits {
        max: MAX_KEY_FILE,
        follow_symlinks: false,
    };
    let bytes = crate::fs::read_regular_async(real, limits)
        .await
        .map_err(|failure| {
            use crate::fs::ReadFailure;
            fail(match failure {
                ReadFailure::NotFound => "it does not exist".into(),
                ReadFailure::PermissionDenied => permission_hint(),
                ReadFailure::Symlink | ReadFailure::Replaced => {
                    "it was replaced after it was checked (by a symbolic link or another file)"
                        .into()
                }
                ReadFailure::NotRegular => "it is not a regular file".into(),
                ReadFailure::TooLarge => format!("it is larger than {MAX_KEY_FILE} bytes"),
                ReadFailure::Other(k) => format!("it cannot be read ({k})"),
            })
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| fail("its content is not text".into()))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(fail("it is empty".into()));
    }
    Ok(Secret::new(key))
}

fn permission_hint() -> String {
    if cfg!(windows) {
        "permission denied: the process must run as an Administrator or in the \"Hybrid Agent Extension Applications\" group".into()
    } else {
        "permission denied: the process's user must be in the `himds` group".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_names_the_key_file() {
        assert_eq!(
            challenge_path(Some("Basic realm=/var/opt/azcmagent/tokens/a.key")).unwrap(),
            "/var/opt/azcmagent/tokens/a.key"
        );
        assert_eq!(
            challenge_path(Some("basic realm=\"C:\\ProgramData\\x.key\"")).unwrap(),
            "C:\\ProgramData\\x.key"
        );
        for bad in [
            None,
            Some("Bearer realm=/x.key"),
            Some("Basic"),
            Some("Basic realm="),
        ] {
            assert!(challenge_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_second_leg_carries_the_key_as_basic_and_marks_it_sensitive() {
        let endpoint: url::Url = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
            .parse()
            .unwrap();
        let client = reqwest::Client::new();
        let first = request(&client, &endpoint, "https://management.azure.com")
            .build()
            .unwrap();
        assert_eq!(
            first.url().as_str(),
            "http://127.0.0.1:40342/metadata/identity/oauth2/token?api-version=2020-06-01&resource=https%3A%2F%2Fmanagement.azure.com"
        );
        assert_eq!(first.headers()["Metadata"], "true");
        assert!(first.headers().get(http::header::AUTHORIZATION).is_none());
        let key = Secret::new("k3y");
        let second = with_key(request(&client, &endpoint, "x"), &key)
            .unwrap()
            .build()
            .unwrap();
        let auth = &second.headers()[http::header::AUTHORIZATION];
        assert_eq!(auth, "Basic k3y");
        assert!(auth.is_sensitive());
        let bad = Secret::new("line\nbreak");
        assert!(with_key(request(&client, &endpoint, "x"), &bad).is_none());
    }
}
