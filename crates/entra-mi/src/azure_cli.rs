//! Azure CLI: `az account get-access-token`, run without a shell, with a timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::validate_tenant;
use crate::env::Environment;
use crate::error::Error;
use crate::time::TimeSource;
use crate::token::AccessToken;

const NAME: &str = "azure-cli";
/// The most output read from `az` (a token answer is a few KiB).
const MAX_OUTPUT: u64 = 64 * 1024;

/// Tokens of the account signed in to the Azure CLI (`az login`): local development only.
///
/// Runs `az account get-access-token --output json --resource <resource> [--tenant <tenant>]`
/// directly (no shell; on Windows through `cmd /c az.cmd` with validated arguments), from a
/// protected working directory (`/bin`, or `%SYSTEMROOT%`), with stdin closed and a timeout
/// (default 10 s) after which the process is killed. `az` is looked up on the `PATH` of the
/// credential's [`Environment`]. The token's expiry is taken from `expires_on` (Azure CLI
/// 2.54.0 or newer).
///
/// "az not found", "not logged in" and timeouts are [`CredentialError::Unavailable`](crate::error::CredentialError::Unavailable) (a chain
/// moves on); other failures are [`CredentialError::Failed`](crate::error::CredentialError::Failed)
/// with `az`'s message, tokens redacted.
#[derive(Debug, Clone)]
pub struct AzureCliCredential {
    env: Environment,
    time: TimeSource,
    timeout: Duration,
    tenant: Option<String>,
}

/// Builds an [`AzureCliCredential`].
#[derive(Debug, Clone)]
pub struct AzureCliCredentialBuilder {
    inner: AzureCliCredential,
}

impl AzureCliCredentialBuilder {
    /// Where `PATH` is read from (default: the process environment).
    pub fn environment(mut self, env: Environment) -> Self {
        self.inner.env = env;
        self
    }

    /// How long `az` may run (default 10 s; `az` can be slow to start on CI machines).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner.timeout = timeout;
        self
    }

    /// The tenant to ask for when a request names none (default: the CLI's own).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.inner.tenant = Some(tenant.into());
        self
    }

    /// Clock and timer (the timeout runs on it).
    pub fn time_source(mut self, time: TimeSource) -> Self {
        self.inner.time = time;
        self
    }

    /// Validates the settings.
    pub fn build(self) -> Result<AzureCliCredential, Error> {
        if let Some(t) = &self.inner.tenant {
            validate_tenant("tenant", t)?;
        }
        Ok(self.inner)
    }
}

impl AzureCliCredential {
    /// A builder with the defaults.
    pub fn builder() -> AzureCliCredentialBuilder {
        AzureCliCredentialBuilder {
            inner: AzureCliCredential {
                env: Environment::process(),
                time: TimeSource::system(),
                timeout: Duration::from_secs(10),
                tenant: None,
            },
        }
    }

    fn unavailable(reason: impl Into<String>) -> Error {
        Error::from(crate::error::CredentialError::Unavailable {
            credential: NAME.into(),
            reason: reason.into(),
        })
    }

    fn failed(message: impl Into<String>) -> Error {
        Error::from(crate::error::CredentialError::Failed {
            credential: NAME.into(),
            message: message.into(),
        })
    }

    /// The first `az` (Windows: `az.cmd`) on `PATH`.
    fn find_az(&self) -> Option<(PathBuf, String)> {
        let path = self.env.get("PATH")?;
        let (sep, names): (char, &[&str]) = if cfg!(windows) {
            (';', &["az.cmd", "az.exe"])
        } else {
            (':', &["az"])
        };
        path.split(sep)
            .filter(|d| !d.is_empty() && Path::new(d).is_absolute())
            .flat_map(|d| names.iter().map(move |n| Path::new(d).join(n)))
            .find(|p| p.is_file())
            .map(|p| (p, path.clone()))
    }
}

fn valid_arg(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'))
}

/// Removes `"accessToken": "…"` values from text `az` printed.
fn redact(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find("accessToken") {
        out.push_str(&rest[..pos]);
        out.push_str("accessToken\": \"<redacted>\"");
        rest = &rest[pos + "accessToken".len()..];
        // Skip to the end of the value.
        let mut quotes = 0;
        let mut cut = rest.len();
        for (i, c) in rest.char_indices() {
            if c == '"' {
                quotes += 1;
                if quotes == 3 {
                    cut = i + 1;
                    break;
                }
            }
        }
        rest = &rest[cut..];
    }
    out.push_str(rest);
    redact_jwts(&out)
}

/// Replaces anything that looks like a JWT — `eyJ` (base64url of `{"`) and the token characters
/// that follow — wherever it starts: after a space, a newline, a quote, `=`, or inside a word.
fn redact_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // Each round consumes at least the three bytes of `eyJ`, so this ends.
    while let Some(pos) = rest.find("eyJ") {
        out.push_str(&rest[..pos]);
        out.push_str("<redacted>");
        let token = &rest[pos..];
        let end = token
            .find(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=' | '+' | '/'))
            })
            .unwrap_or(token.len());
        rest = &token[end..];
    }
    out.push_str(rest);
    out
}

#[async_trait]
impl TokenCredential for AzureCliCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        if request.claims().is_some() {
            return Err(Self::failed(
                "the Azure CLI cannot satisfy a claims challenge; run `az login --claims-challenge <base64 claims>` (Azure CLI 2.76.0 or newer) and retry",
            ));
        }
        let resource = request.audience().resource();
        if !valid_arg(resource) {
            return Err(Error::configuration(
                "audience",
                "the Azure CLI credential accepts only audiences made of letters, digits and . _ : / -",
            ));
        }
        let tenant = request.tenant().or(self.tenant.as_deref());
        if let Some(t) = tenant {
            validate_tenant("tenant", t)?;
        }
        let Some((az, path)) = self.find_az() else {
            return Err(Self::unavailable(
                "the Azure CLI (az) was not found on PATH; install it and run `az login`",
            ));
        };
        let mut args = vec![
            "account",
            "get-access-token",
            "--output",
            "json",
            "--resource",
            resource,
        ];
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        let mut command = if cfg!(windows) {
            let mut c = tokio::process::Command::new("cmd.exe");
            c.arg("/c").arg(&az).args(&args);
            c.current_dir(
                self.env
                    .get("SYSTEMROOT")
                    .unwrap_or_else(|| "C:\\Windows".into()),
            );
            c
        } else {
            let mut c = tokio::process::Command::new(&az);
            c.args(&args);
            c.current_dir(if Path::new("/bin").is_dir() {
                "/bin"
            } else {
                "/"
            });
            c
        };
        command
            .env("PATH", &path)
            .env("AZURE_CORE_NO_COLOR", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            Self::unavailable(format!(
                "{} could not be started ({})",
                az.display(),
                e.kind()
            ))
        })?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // Each pipe is closed as soon as its reader is done (at EOF or at the limit), so a
        // process still writing past the limit gets EPIPE instead of blocking until the
        // timeout (while the other reader waits for an EOF that would never come).
        async fn read_capped<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
            let mut buf = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut buf).await;
            }
            buf
        }
        let run = async {
            let (out, err) = tokio::join!(read_capped(stdout), read_capped(stderr));
            let status = child.wait().await;
            (status, out, err)
        };
        let (status, out, err) = tokio::select! {
            r = run => r,
            () = self.time.sleep(self.timeout) => {
                // Dropping the future drops the child, which kills it (kill_on_drop).
                return Err(Self::unavailable(format!(
                    "`az account get-access-token` did not finish within {:?}; raise the timeout if az is slow to start here",
                    self.timeout
                )));
            }
        };
        let status =
            status.map_err(|e| Self::failed(format!("waiting for az failed ({})", e.kind())))?;
        if out.len() as u64 >= MAX_OUTPUT {
            return Err(Self::failed(format!(
                "`az account get-access-token` printed more than {MAX_OUTPUT} bytes, which is not a token answer"
            )));
        }
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            let stderr = redact(stderr.trim());
            let first: String = stderr
                .lines()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(500)
                .collect();
            if status.code() == Some(127) || stderr.contains("is not recognized") {
                return Err(Self::unavailable("the Azure CLI (az) was not found"));
            }
            if (stderr.contains("az login") || stderr.contains("az account set"))
                && !stderr.contains("AADSTS")
            {
                return Err(Self::unavailable(format!(
                    "not logged in: run `az login` ({first})"
                )));
            }
            let hint = crate::entra::hints::aadsts_codes(&stderr)
                .into_iter()
                .find_map(crate::entra::hints::aadsts_hint)
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default();
            return Err(Self::failed(format!(
                "`az account get-access-token` failed with {status}: {first}{hint}"
            )));
        }
        parse_output(&out)
    }

    fn name(&self) -> &str {
        NAME
    }
}

/// `{"accessToken": "…", "expires_on": 1704110400, "tokenType": "Bearer", …}`.
fn parse_output(out: &[u8]) -> Result<AccessToken, Error> {
    let bad = |what: &str| {
        AzureCliCredential::failed(format!(
            "`az account get-access-token` printed {what}, not the expected JSON token"
        ))
    };
    let value: Value = serde_json::from_slice(out).map_err(|_| bad("output that is not JSON"))?;
    let Value::Object(map) = value else {
        return Err(bad("JSON that is not an object"));
    };
    let token = match map.get("accessToken") {
        Some(Value::String(t)) if !t.is_empty() && AccessToken::is_header_safe(t) => t,
        Some(_) => return Err(bad("an `accessToken` that is not a usable token string")),
        None => return Err(bad("JSON without `accessToken`")),
    };
    let expires_on = match map.get("expires_on") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        AzureCliCredential::failed(
            "the output has no `expires_on` (epoch seconds): Azure CLI 2.54.0 or newer is required",
        )
    })?;
    let now = SystemTime::now();
    let expires = UNIX_EPOCH
        .checked_add(Duration::from_secs(expires_on))
        .filter(|e| e.duration_since(now).unwrap_or_default() <= crate::response::MAX_LIFETIME)
        .ok_or_else(|| {
            AzureCliCredential::failed(format!(
                "the output's `expires_on` ({expires_on}) is more than {} days away: not a token lifetime",
                crate::response::MAX_LIFETIME.as_secs() / 86_400
            ))
        })?;
    if expires <= now {
        return Err(AzureCliCredential::failed(
            "the token the Azure CLI printed has already expired",
        ));
    }
    let token_type = match map.get("tokenType") {
        Some(Value::String(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            t.as_str()
        }
        _ => "Bearer",
    };
    Ok(AccessToken::new(token.clone(), expires).with_token_type(token_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens() {
        let s = redact(r#"{"accessToken": "eyJabc.def.ghi", "x": 1} and eyJzzz trailing"#);
        assert!(!s.contains("eyJabc") && !s.contains("eyJzzz"), "{s}");
        assert!(s.contains("trailing"));
        // Not only after a space: after a newline, in quotes, after `=`.
        let s = redact("ERROR: failed\neyJ0eXAi.a.b\ntoken 'eyJ1.c.d' was rejected; t=eyJ2.e.f.");
        assert!(!s.contains("eyJ"), "{s}");
        assert_eq!(
            s,
            "ERROR: failed\n<redacted>\ntoken '<redacted>' was rejected; t=<redacted>"
        );
    }

    #[test]
    fn arguments_are_validated() {
        assert!(valid_arg("https://management.azure.com/"));
        assert!(!valid_arg("https://x.example/ --subscription y"));
        assert!(!valid_arg("a;rm -rf"));
        assert!(!valid_arg(""));
    }
}
