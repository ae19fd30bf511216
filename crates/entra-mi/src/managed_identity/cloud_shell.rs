//! Cloud Shell: `MSI_ENDPOINT` alone, a `POST` form without api-version.

use super::ManagedIdentityId;
use super::source::{self, RequestContext, Source};
use crate::credential::TokenRequest;
use crate::error::Error;
use crate::retry::RetryClass;
use crate::source_kind::SourceKind;

/// Cloud Shell's endpoint. It returns the signed-in user's token whatever identity is asked
/// for, so only the system-assigned choice is accepted.
#[derive(Debug)]
pub(super) struct CloudShell {
    endpoint: url::Url,
}

impl CloudShell {
    pub(super) fn new(endpoint: url::Url, id: &ManagedIdentityId) -> Result<Self, Error> {
        source::system_assigned_only(
            SourceKind::CloudShell,
            id,
            "Cloud Shell returns the signed-in user's token whatever identity is asked for",
        )?;
        Ok(Self { endpoint })
    }
}

/// The form body: `resource=…`.
fn body(resource: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("resource", resource)
        .finish()
}

impl Source for CloudShell {
    fn kind(&self) -> SourceKind {
        SourceKind::CloudShell
    }

    fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    fn retry_class(&self) -> RetryClass {
        RetryClass::ManagedIdentityDefault
    }

    /// `POST {MSI_ENDPOINT}` with `Metadata: true` and the form body.
    fn request(
        &self,
        cx: &RequestContext<'_>,
        request: &TokenRequest,
    ) -> Result<reqwest::RequestBuilder, Error> {
        Ok(cx
            .client
            .post(self.endpoint.clone())
            .header("Metadata", "true")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body(request.audience().resource())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_resource_form() {
        assert_eq!(
            body("https://management.core.windows.net/"),
            "resource=https%3A%2F%2Fmanagement.core.windows.net%2F"
        );
    }

    #[test]
    fn only_the_system_assigned_identity() {
        let endpoint: url::Url = "http://localhost:50342/oauth2/token".parse().unwrap();
        assert!(CloudShell::new(endpoint.clone(), &ManagedIdentityId::SystemAssigned).is_ok());
        let e = CloudShell::new(endpoint, &ManagedIdentityId::ClientId("c".into())).unwrap_err();
        assert!(e.to_string().contains("signed-in user"), "{e}");
    }
}
