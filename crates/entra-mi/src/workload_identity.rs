//! Workload identity: a federated token from a file (Kubernetes projects it and rotates it)
//! exchanged at the v2.0 token endpoint.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::client_secret::missing;
use crate::credential::{TokenCredential, TokenRequest};
use crate::entra::{
    AZURE_CLIENT_ID, AZURE_TENANT_ID, ClientAuth, ConfidentialClient, EntraOptions,
    entra_builder_methods,
};
use crate::env::Environment;
use crate::error::Error;
use crate::secret::Secret;
use crate::token::AccessToken;

pub(crate) const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
/// Federated tokens are JWTs of a few KiB; a larger file is not one.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Tokens for an app registration or user-assigned identity through workload identity
/// federation (AKS workload identity and any OIDC-federated workload): the token in
/// `AZURE_FEDERATED_TOKEN_FILE` is the client assertion.
///
/// The file is read for **every** token request, so a token the platform rotated is picked
/// up (a pod that has run for days keeps working); if Entra still says the assertion has
/// expired (AADSTS700024) and the file has changed since, the request is repeated once with
/// the new content. The file's content never appears in errors or logs.
#[derive(Debug)]
pub struct WorkloadIdentityCredential {
    client: ConfidentialClient,
    token_file: PathBuf,
}

/// Builds a [`WorkloadIdentityCredential`].
#[derive(Debug)]
pub struct WorkloadIdentityCredentialBuilder {
    tenant: String,
    client_id: String,
    token_file: PathBuf,
    opts: EntraOptions,
}

impl WorkloadIdentityCredentialBuilder {
    entra_builder_methods!();

    /// Validates the settings (the file is read per request, not here).
    pub fn build(self) -> Result<WorkloadIdentityCredential, Error> {
        Ok(WorkloadIdentityCredential {
            client: ConfidentialClient::new(
                "workload-identity",
                &self.tenant,
                &self.client_id,
                &self.opts,
            )?,
            token_file: self.token_file,
        })
    }
}

impl WorkloadIdentityCredential {
    /// A builder for the app (or user-assigned identity) `client_id` in `tenant`, with the
    /// federated token in `token_file`.
    pub fn builder(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        token_file: impl Into<PathBuf>,
    ) -> WorkloadIdentityCredentialBuilder {
        WorkloadIdentityCredentialBuilder {
            tenant: tenant.into(),
            client_id: client_id.into(),
            token_file: token_file.into(),
            opts: EntraOptions::default(),
        }
    }

    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and
    /// `AZURE_AUTHORITY_HOST` (what the AKS webhook injects); [`CredentialError::Unavailable`](crate::error::CredentialError::Unavailable)
    /// when one of the first three is not set.
    pub fn from_environment(env: &Environment) -> Result<Self, Error> {
        Self::builder_from_environment(env)?.build()
    }

    pub(crate) fn builder_from_environment(
        env: &Environment,
    ) -> Result<WorkloadIdentityCredentialBuilder, Error> {
        match (
            env.get(AZURE_TENANT_ID),
            env.get(AZURE_CLIENT_ID),
            env.get(AZURE_FEDERATED_TOKEN_FILE),
        ) {
            (Some(t), Some(c), Some(f)) => {
                let mut b = Self::builder(t, c, f);
                b.opts = b.opts.with_env_authority(env);
                Ok(b)
            }
            (t, c, f) => Err(Error::from(crate::error::CredentialError::Unavailable {
                credential: "workload-identity".into(),
                reason: missing(&[
                    (AZURE_TENANT_ID, t.is_some()),
                    (AZURE_CLIENT_ID, c.is_some()),
                    (AZURE_FEDERATED_TOKEN_FILE, f.is_some()),
                ]),
            })),
        }
    }

    /// The token file.
    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    async fn read_assertion(&self) -> Result<Secret, Error> {
        let path = &self.token_file;
        let fail = |reason: String| {
            Error::configuration(
                AZURE_FEDERATED_TOKEN_FILE,
                format!("{}: {reason}", path.display()),
            )
        };
        // Opened once without blocking (a FIFO in its place must not hang the caller), checked
        // on the opened handle, and read no further than the limit. Kubernetes projects the
        // file as a symbolic link into a `..data` directory, so links are followed.
        let limits = crate::fs::Limits {
            max: MAX_TOKEN_FILE,
            follow_symlinks: true,
        };
        let bytes = crate::fs::read_regular_async(path.clone(), limits)
            .await
            .map_err(|failure| {
                use crate::fs::ReadFailure;
                fail(match failure {
                    ReadFailure::NotFound => "the file does not exist".into(),
                    ReadFailure::PermissionDenied => "permission denied".into(),
                    ReadFailure::NotRegular | ReadFailure::Symlink | ReadFailure::Replaced => {
                        "not a regular file".into()
                    }
                    ReadFailure::TooLarge => {
                        format!("larger than {MAX_TOKEN_FILE} bytes: not a federated token")
                    }
                    ReadFailure::Other(k) => format!("cannot be read ({k})"),
                })
            })?;
        let text =
            std::str::from_utf8(&bytes).map_err(|_| fail("the content is not text".into()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(fail("the file is empty".into()));
        }
        if token.split('.').count() != 3 || token.contains(char::is_whitespace) {
            return Err(fail("the content is not a JWT".into()));
        }
        Ok(Secret::new(token))
    }
}

#[async_trait]
impl TokenCredential for WorkloadIdentityCredential {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let assertion = self.read_assertion().await?;
        let result = self
            .client
            .get_token(request, ClientAuth::Assertion(assertion.expose()))
            .await;
        let expired_assertion = result
            .as_ref()
            .err()
            .and_then(Error::entra_error)
            .is_some_and(|e| e.aadsts.contains(&700024));
        if !expired_assertion {
            return result;
        }
        let fresh = self.read_assertion().await?;
        if fresh == assertion {
            return result;
        }
        tracing::debug!("federated token expired; the file has been rotated, retrying once");
        self.client
            .get_token(request, ClientAuth::Assertion(fresh.expose()))
            .await
    }

    fn name(&self) -> &str {
        &self.client.name
    }
}
