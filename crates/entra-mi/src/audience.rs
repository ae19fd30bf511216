//! The API a token is for.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::error::Error;
use crate::guid::Guid;

const DEFAULT_SUFFIX: &str = "/.default";

/// The API a token is for: Microsoft Graph, Azure Resource Manager, `api://<client-id>`, …
///
/// Managed-identity endpoints take a *resource* (`https://graph.microsoft.com`); the v2.0
/// token endpoint takes a *scope* (`https://graph.microsoft.com/.default`). An `Audience` is
/// built from either and renders both. Only a literal `/.default` suffix is removed or added;
/// the rest is kept **exactly** — a trailing `/` is significant (the token's `aud` echoes it,
/// and some APIs insist on it or reject it), so `https://management.azure.com/` and
/// `https://management.azure.com` are different audiences.
///
/// Refused: empty input, any whitespace (including several space-separated scopes), and
/// relative input. An absolute URI (`https://…`, `api://…`) or a bare application (client)
/// id GUID is accepted.
///
/// ```
/// use entra_mi::Audience;
/// let graph: Audience = "https://graph.microsoft.com/.default".parse()?;
/// assert_eq!(graph.resource(), "https://graph.microsoft.com");
/// assert_eq!(graph.scope(), "https://graph.microsoft.com/.default");
/// assert_eq!(graph, Audience::new("https://graph.microsoft.com")?);
///
/// let arm = Audience::new("https://management.core.windows.net//.default")?;
/// assert_eq!(arm.resource(), "https://management.core.windows.net/");
/// # Ok::<(), entra_mi::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Audience {
    resource: Arc<str>,
}

impl Audience {
    /// Parses a resource or a `/.default` scope.
    pub fn new(input: &str) -> Result<Self, Error> {
        let refuse = |reason| {
            Error::from(crate::error::ConfigurationError::Audience {
                input: input.to_owned(),
                reason,
            })
        };
        if input.is_empty() {
            return Err(refuse("it is empty"));
        }
        if input.chars().any(char::is_whitespace) {
            return Err(refuse(if input.trim().contains(char::is_whitespace) {
                "it holds several scopes or contains whitespace; a token is for exactly one audience"
            } else {
                "it has leading or trailing whitespace"
            }));
        }
        let resource = input.strip_suffix(DEFAULT_SUFFIX).unwrap_or(input);
        if resource.is_empty() {
            return Err(refuse("`/.default` must follow a resource"));
        }
        if !Guid::is_guid(resource) {
            match url::Url::parse(resource) {
                Ok(url) if url.cannot_be_a_base() && url.path().is_empty() => {
                    return Err(refuse("it has a scheme but nothing after it"));
                }
                Ok(url) if url.has_host() || url.cannot_be_a_base() || url.scheme() == "api" => {}
                Ok(_) => return Err(refuse("it names no host or application")),
                Err(_) => {
                    return Err(refuse(
                        "it is not an absolute URI (such as https://graph.microsoft.com or api://<client-id>) nor an application id",
                    ));
                }
            }
        }
        Ok(Self {
            resource: Arc::from(resource),
        })
    }

    /// The resource form, for managed-identity endpoints (`https://graph.microsoft.com`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The scope form, for the v2.0 token endpoint (`https://graph.microsoft.com/.default`).
    pub fn scope(&self) -> String {
        format!("{}{DEFAULT_SUFFIX}", self.resource)
    }

    /// Microsoft Graph: `https://graph.microsoft.com`.
    pub fn microsoft_graph() -> Self {
        Self::known("https://graph.microsoft.com")
    }

    /// Azure Resource Manager: `https://management.azure.com/` (with the slash it expects).
    pub fn azure_resource_manager() -> Self {
        Self::known("https://management.azure.com/")
    }

    /// Azure Key Vault: `https://vault.azure.net`.
    pub fn key_vault() -> Self {
        Self::known("https://vault.azure.net")
    }

    /// Azure Storage: `https://storage.azure.com/`.
    pub fn storage() -> Self {
        Self::known("https://storage.azure.com/")
    }

    fn known(resource: &'static str) -> Self {
        Self {
            resource: Arc::from(resource),
        }
    }
}

impl FromStr for Audience {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Audience {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for Audience {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(&s)
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.resource)
    }
}

impl fmt::Debug for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Audience({:?})", &*self.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_resource_are_one_audience() {
        let a = Audience::new("https://graph.microsoft.com/.default").unwrap();
        let b = Audience::new("https://graph.microsoft.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.resource(), "https://graph.microsoft.com");
        assert_eq!(b.scope(), "https://graph.microsoft.com/.default");
    }

    #[test]
    fn trailing_slash_is_kept_exactly() {
        let with = Audience::new("https://management.azure.com/").unwrap();
        let without = Audience::new("https://management.azure.com").unwrap();
        assert_ne!(with, without);
        assert_eq!(with.resource(), "https://management.azure.com/");
        assert_eq!(with.scope(), "https://management.azure.com//.default");
        let cli_style = Audience::new("https://management.core.windows.net//.default").unwrap();
        assert_eq!(cli_style.resource(), "https://management.core.windows.net/");
    }

    #[test]
    fn only_the_default_suffix_is_stripped_once() {
        let a = Audience::new("https://x.example/.default/.default").unwrap();
        assert_eq!(a.resource(), "https://x.example/.default");
        let b = Audience::new("https://graph.microsoft.com/User.Read").unwrap();
        assert_eq!(b.resource(), "https://graph.microsoft.com/User.Read");
    }

    #[test]
    fn api_uris_and_app_ids_are_accepted() {
        for ok in [
            "api://11111111-2222-3333-4444-555555555555",
            "api://my-api/.default",
            "00000003-0000-0000-c000-000000000000",
            "https://vault.azure.net",
            "urn:example:api",
        ] {
            Audience::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        for (bad, needle) in [
            ("", "empty"),
            ("   ", "whitespace"),
            (" https://graph.microsoft.com", "whitespace"),
            ("https://graph.microsoft.com/.default\n", "whitespace"),
            (
                "https://graph.microsoft.com/.default https://vault.azure.net/.default",
                "several scopes",
            ),
            ("graph.microsoft.com", "absolute"),
            ("/.default", "must follow"),
            ("https://", "absolute"),
            ("User.Read", "absolute"),
            ("api:", "nothing after"),
        ] {
            let err = Audience::new(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(needle), "{bad:?}: {msg}");
            assert!(
                matches!(&err, Error::Configuration(family) if matches!(&**family, crate::error::ConfigurationError::Audience { .. }))
            );
        }
    }
}
