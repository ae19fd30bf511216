//! Advice for the AADSTS codes users of the token endpoint commonly hit.

use crate::error::EntraError;

/// The advice for AADSTS500011, which managed-identity sources quote too.
pub(crate) const HINT_500011: &str = "the resource (audience) is not known in this tenant: check the exact audience string (a trailing `/` matters), the tenant and the cloud";

impl EntraError {
    /// Advice for the AADSTS codes users commonly hit.
    pub fn hint(&self) -> Option<&'static str> {
        self.aadsts.iter().copied().find_map(aadsts_hint)
    }
}

/// Advice for an AADSTS code users commonly hit.
pub(crate) fn aadsts_hint(code: u32) -> Option<&'static str> {
    match code {
        7000215 => Some(
            "invalid client secret: send the secret's Value, not its Secret ID, and check that it has not expired",
        ),
        700016 => Some(
            "the application (client id) is not in this tenant: check AZURE_CLIENT_ID, AZURE_TENANT_ID and the cloud (AZURE_AUTHORITY_HOST)",
        ),
        700024 => Some(
            "the client assertion is outside its valid time range: the federated token is stale (the token file is re-read on every request, so check that it is being rotated) or the clock is wrong",
        ),
        70021 | 700211 | 700213 => Some(
            "no federated identity credential of the app matches the assertion's issuer, subject and audience (api://AzureADTokenExchange): compare them with the app registration's federated credentials",
        ),
        500011 => Some(HINT_500011),
        700236 => Some(
            "a managed identity can be a federated credential only of an app registration in its own home tenant: register the (multi-tenant) app there and request tokens in the other tenant",
        ),
        70043 | 700082 | 50173 => Some("the sign-in has expired: run `az login` again"),
        _ => None,
    }
}

/// The AADSTS codes quoted in `text` (`AADSTS700082: …`), in order.
#[cfg(any(feature = "azure-cli", test))]
pub(crate) fn aadsts_codes(text: &str) -> Vec<u32> {
    text.match_indices("AADSTS")
        .filter_map(|(i, m)| {
            let digits: String = text[i + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_the_common_codes() {
        assert_eq!(
            aadsts_codes("ERROR: AADSTS700082: expired. AADSTS50173 and AADSTS x"),
            [700082, 50173]
        );
        for (code, needle) in [
            (7000215, "not its Secret ID"),
            (700016, "AZURE_CLIENT_ID"),
            (700024, "re-read"),
            (70021, "federated credentials"),
            (500011, "trailing `/`"),
            (700236, "home tenant"),
            (70043, "az login"),
            (700082, "az login"),
            (50173, "az login"),
        ] {
            let e = EntraError {
                status: 400,
                code: Some("invalid_client".into()),
                description: Some(format!("AADSTS{code}: something")),
                aadsts: vec![code],
                trace_id: Some("t".into()),
                correlation_id: Some("c".into()),
            };
            let shown = e.to_string();
            assert!(
                shown.contains(needle) && shown.contains("trace id t, correlation id c"),
                "{shown}"
            );
        }
    }
}
