//! Issuers: the discovery documents' `issuer` values (a template holding `{tenantid}` for the
//! multi-tenant `common` authority) and the tenant an issuer names.
//!
//! Entra's issuers put the tenant id in the first path segment: v1 tokens
//! `https://sts.windows.net/{tid}/`, v2 tokens `https://login.microsoftonline.com/{tid}/v2.0`
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-issuer>).

/// The placeholder multi-tenant discovery documents put where the tenant id goes.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Whether `iss` is `template` with `{tenantid}` replaced by `tid` (or `template` itself when
/// it holds no placeholder). Allocates nothing.
pub(crate) fn matches(template: &str, iss: &str, tid: &str) -> bool {
    match template.split_once(TENANT_PLACEHOLDER) {
        None => template == iss,
        Some((prefix, suffix)) => {
            iss.len() == prefix.len() + tid.len() + suffix.len()
                && iss.starts_with(prefix)
                && iss.ends_with(suffix)
                && iss.get(prefix.len()..prefix.len() + tid.len()) == Some(tid)
        }
    }
}

/// The tenant an issuer URL names: its first path segment (`None` if it has none).
pub(crate) fn tenant_of(issuer: &str) -> Option<&str> {
    let rest = issuer.split_once("://")?.1;
    let path = &rest[rest.find('/')? + 1..];
    let segment = path.split('/').next().unwrap_or_default();
    (!segment.is_empty()).then_some(segment)
}

/// Whether the key's `issuer` member (a template) names the same tenant as the token's
/// issuer, `{tenantid}` being the token's `tid`. Allocates nothing.
pub(crate) fn key_allows(key_issuer: &str, token_iss: Option<&str>, tid: Option<&str>) -> bool {
    let Some(token_tenant) = token_iss.and_then(tenant_of) else {
        return false;
    };
    let Some(key_tenant) = tenant_of(key_issuer) else {
        return false;
    };
    if key_tenant == TENANT_PLACEHOLDER {
        tid.is_some_and(|t| t.eq_ignore_ascii_case(token_tenant))
    } else {
        key_tenant.eq_ignore_ascii_case(token_tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let v2 = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(matches(
            v2,
            "https://login.microsoftonline.com/abc/v2.0",
            "abc"
        ));
        assert!(!matches(
            v2,
            "https://login.microsoftonline.com/abc/v2.0",
            "abd"
        ));
        assert!(!matches(
            v2,
            "https://login.microsoftonline.com/abc/v2.0/",
            "abc"
        ));
        assert!(!matches(
            v2,
            "https://login.microsoftonline.com//v2.0",
            "abc"
        ));
        let fixed = "https://sts.windows.net/abc/";
        assert!(matches(fixed, fixed, "anything"));
        assert!(!matches(fixed, "https://sts.windows.net/abc", "abc"));
    }

    #[test]
    fn tenants() {
        assert_eq!(tenant_of("https://sts.windows.net/t1/"), Some("t1"));
        assert_eq!(
            tenant_of("https://login.microsoftonline.com/t2/v2.0"),
            Some("t2")
        );
        assert_eq!(tenant_of("https://sts.windows.net/"), None);
        assert_eq!(tenant_of("https://sts.windows.net"), None);
        assert_eq!(tenant_of("no scheme/t"), None);
        assert!(key_allows(
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            Some("https://sts.windows.net/T1/"),
            Some("t1")
        ));
        assert!(!key_allows(
            "https://login.microsoftonline.com/{tenantid}/v2.0",
            Some("https://sts.windows.net/t2/"),
            Some("t1")
        ));
        assert!(key_allows(
            "https://login.microsoftonline.com/t1/v2.0",
            Some("https://sts.windows.net/t1/"),
            None
        ));
        assert!(!key_allows(
            "https://login.microsoftonline.com/t9/v2.0",
            Some("https://sts.windows.net/t1/"),
            Some("t1")
        ));
    }
}
