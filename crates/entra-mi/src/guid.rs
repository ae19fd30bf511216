//! GUIDs: the ids of tenants, applications, service principals and managed identities.

use std::fmt;
use std::str::FromStr;

/// A GUID in its text form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case;
/// kept as given). Entra names tenants, applications, service principals and managed
/// identities by GUIDs.
///
/// ```
/// use entra_mi::Guid;
///
/// let id: Guid = "11111111-2222-3333-4444-555555555555".parse().unwrap();
/// assert_eq!(id.as_str(), "11111111-2222-3333-4444-555555555555");
/// assert!(Guid::is_guid("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"));
/// assert!("{11111111-2222-3333-4444-555555555555}".parse::<Guid>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(String);

impl Guid {
    /// True when `s` is a GUID in its text form.
    pub fn is_guid(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The error of parsing a [`Guid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a GUID: expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hexadecimal digits")]
#[non_exhaustive]
pub struct NotAGuid;

impl FromStr for Guid {
    type Err = NotAGuid;

    fn from_str(s: &str) -> Result<Self, NotAGuid> {
        if Guid::is_guid(s) {
            Ok(Guid(s.to_owned()))
        } else {
            Err(NotAGuid)
        }
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Guid {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
