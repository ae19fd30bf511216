//! Advice for the managed-identity service errors users commonly hit.

use crate::entra::hints::HINT_500011;
use crate::error::ServiceError;

impl ServiceError {
    /// Advice for errors users commonly hit, if this is one of them.
    pub fn hint(&self) -> Option<&'static str> {
        let d = self.description.as_deref().unwrap_or("");
        if d.contains("Multiple user assigned identities")
            || d.contains("multiple user assigned identities")
        {
            Some(
                "the resource has several user-assigned identities: select one by client id, object id or resource id",
            )
        } else if d.contains("AudienceNotSupported")
            || self.code.as_deref() == Some("AudienceNotSupported")
        {
            Some(
                "Cloud Shell serves only some audiences; for others run `az login --scope <resource>/.default` and use the Azure CLI credential",
            )
        } else if d.contains("AADSTS500011") {
            Some(HINT_500011)
        } else if self.is_identity_not_found() {
            Some(
                "no identity with that id is assigned to this resource: use the identity's client id or object id (not an app registration's), or its resource id; an identity assigned minutes ago may not have reached the endpoint yet, so retry",
            )
        } else {
            None
        }
    }
}
