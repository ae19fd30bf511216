//! Which managed identity: system-assigned, or a user-assigned one by client, object or
//! resource id, with the text form a command line or a setting takes.

use std::fmt;

use crate::error::Error;
use crate::guid::Guid;

/// Which managed identity to use.
///
/// A resource has at most one system-assigned identity and any number of user-assigned ones.
/// A user-assigned identity is named by its **client id** (the `clientId` of the identity, not
/// of an app registration), its **object (principal) id**, or its ARM **resource id**
/// (`/subscriptions/…/resourceGroups/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
/// known before deployment). Each source renders the choice with its own parameter name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ManagedIdentityId {
    /// The resource's system-assigned identity.
    #[default]
    SystemAssigned,
    /// A user-assigned identity by client id.
    ClientId(String),
    /// A user-assigned identity by object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by ARM resource id.
    ResourceId(String),
}

impl ManagedIdentityId {
    pub(super) fn validate(&self) -> Result<(), Error> {
        let (what, value) = match self {
            ManagedIdentityId::SystemAssigned => return Ok(()),
            ManagedIdentityId::ClientId(v) => ("client id", v),
            ManagedIdentityId::ObjectId(v) => ("object id", v),
            ManagedIdentityId::ResourceId(v) => ("resource id", v),
        };
        let bad = |reason: &str| {
            Err(Error::configuration(
                format!("managed identity {what}"),
                reason,
            ))
        };
        if value.is_empty() {
            return bad("it is empty");
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("it contains whitespace");
        }
        match self {
            ManagedIdentityId::ResourceId(v) => {
                let lower = v.to_ascii_lowercase();
                if !lower.starts_with("/subscriptions/")
                    || !lower
                        .contains("/providers/microsoft.managedidentity/userassignedidentities/")
                {
                    return bad(
                        "expected /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
                    );
                }
            }
            _ if !Guid::is_guid(value) => {
                return bad("expected a GUID such as 00000000-0000-0000-0000-000000000000");
            }
            _ => {}
        }
        Ok(())
    }
}

/// The setting errors from parsing a [`ManagedIdentityId`] name.
const ID_SETTING: &str = "managed identity id";

impl std::str::FromStr for ManagedIdentityId {
    type Err = Error;

    /// Parses the text forms [`Display`](fmt::Display) writes:
    ///
    /// * `system-assigned` (or `system`);
    /// * `client_id=<GUID>` and `object_id=<GUID>` (also `clientid`, `objectid`,
    ///   `principal_id`, and `-` for `_`, in any case);
    /// * an ARM resource id, `/subscriptions/…/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>`,
    ///   alone or as `resource_id=…` (or `mi_res_id=`, `msi_res_id=`).
    ///
    /// A GUID alone is refused: a user-assigned identity has a client id *and* an object id,
    /// both GUIDs, and sending one as the other selects nothing (or, with an app
    /// registration's id, the wrong thing). The identity's Overview page in the portal shows
    /// both ("Client ID", "Object (principal) ID").
    ///
    /// ```
    /// use entra_mi::ManagedIdentityId;
    ///
    /// let id: ManagedIdentityId = "client_id=11111111-2222-3333-4444-555555555555".parse()?;
    /// assert_eq!(id, ManagedIdentityId::ClientId("11111111-2222-3333-4444-555555555555".into()));
    /// assert_eq!(id.to_string().parse::<ManagedIdentityId>()?, id);
    /// assert!("11111111-2222-3333-4444-555555555555".parse::<ManagedIdentityId>().is_err());
    /// # Ok::<(), entra_mi::Error>(())
    /// ```
    fn from_str(s: &str) -> Result<Self, Error> {
        let text = s.trim();
        let id = if text.eq_ignore_ascii_case("system-assigned")
            || text.eq_ignore_ascii_case("system")
        {
            ManagedIdentityId::SystemAssigned
        } else if text.starts_with('/') {
            ManagedIdentityId::ResourceId(text.to_owned())
        } else if let Some((key, value)) = text.split_once('=') {
            let value = value.trim().to_owned();
            match key.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "client_id" | "clientid" => ManagedIdentityId::ClientId(value),
                "object_id" | "objectid" | "principal_id" => ManagedIdentityId::ObjectId(value),
                "resource_id" | "mi_res_id" | "msi_res_id" => ManagedIdentityId::ResourceId(value),
                _ => {
                    return Err(Error::configuration(
                        ID_SETTING,
                        format!(
                            "unknown kind {:?}: expected client_id=, object_id= or resource_id=",
                            key.trim()
                        ),
                    ));
                }
            }
        } else if Guid::is_guid(text) {
            return Err(Error::configuration(
                ID_SETTING,
                "a GUID alone does not say which id it is: write client_id=<GUID> or object_id=<GUID> (the identity's Overview page shows both)",
            ));
        } else {
            return Err(Error::configuration(
                ID_SETTING,
                "expected system-assigned, client_id=<GUID>, object_id=<GUID> or an ARM resource id (/subscriptions/…/userAssignedIdentities/<name>)",
            ));
        };
        id.validate()?;
        Ok(id)
    }
}

impl fmt::Display for ManagedIdentityId {
    /// The text form [`FromStr`](std::str::FromStr) reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManagedIdentityId::SystemAssigned => f.write_str("system-assigned"),
            ManagedIdentityId::ClientId(v) => write!(f, "client_id={v}"),
            ManagedIdentityId::ObjectId(v) => write!(f, "object_id={v}"),
            ManagedIdentityId::ResourceId(v) => f.write_str(v),
        }
    }
}
