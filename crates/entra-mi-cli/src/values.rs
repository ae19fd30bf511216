//! Parsers for flag values the command line alone can judge: a value they refuse is a clap
//! usage error (exit 2), found before anything runs.

use entra_mi::{Audience, Error};

/// An audience (`--resource`, `--scope`) by the library's own rules.
pub(crate) fn audience(value: &str) -> Result<Audience, String> {
    Audience::new(value).map_err(|e| match &e {
        Error::Configuration(family)
            if let entra_mi::error::ConfigurationError::Audience { reason, .. } = &**family =>
        {
            reason.to_string()
        }
        _ => e.to_string(),
    })
}

/// A tenant (`--tenant`): a GUID or a domain name, so letters, digits, `.` and `-`.
pub(crate) fn tenant(value: &str) -> Result<String, String> {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        Ok(value.to_owned())
    } else {
        Err("a tenant is a GUID or a domain name: letters, digits, `.` and `-` only".into())
    }
}

/// A value that must not be empty or blank (`--identity`, `--role`).
pub(crate) fn non_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_tenants_and_blanks() {
        assert_eq!(
            audience("https://graph.microsoft.com/.default")
                .unwrap()
                .resource(),
            "https://graph.microsoft.com"
        );
        assert!(audience("graph.microsoft.com").is_err());
        assert!(audience("https://a https://b").is_err());
        assert!(tenant("contoso.onmicrosoft.com").is_ok());
        assert!(tenant("72f988bf-86f1-41af-91ab-2d7cd011db47").is_ok());
        for bad in ["", "a b", "x;rm", "t/../u"] {
            assert!(tenant(bad).is_err(), "{bad}");
        }
        assert!(non_empty(" ").is_err());
        assert_eq!(non_empty("orders-api").unwrap(), "orders-api");
    }
}
