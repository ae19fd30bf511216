//! v2.0 access tokens: what Entra issues for an API whose manifest asks for them
//! (`accessTokenAcceptedVersion: 2`). They differ from v1 tokens in the issuer
//! (`<authority>/<tid>/v2.0`), the audience (always the API's client id, whatever URI the
//! token was requested for), and `azp`/`azpacr` in place of `appid`/`appidacr`
//! (<https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference>).

use serde_json::{Map, Value};

/// What a v2 token says.
pub(crate) struct V2Token<'a> {
    /// The authority's base URL (the issuer is `<base>/<tenant>/v2.0`).
    pub(crate) base_url: &'a str,
    pub(crate) tenant: &'a str,
    /// `aud`: the API's client id (or the resource as asked, for an API the tenant lacks).
    pub(crate) audience: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) object_id: &'a str,
    pub(crate) roles: &'a [String],
    /// `azpacr`: `1` client secret, `2` certificate or managed identity.
    pub(crate) credential: &'static str,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    /// `xms_mirid` of a managed identity.
    pub(crate) mirid: Option<&'a str>,
    pub(crate) uti: String,
}

/// The claims of a v2 token, in Entra's order.
pub(crate) fn claims(t: &V2Token<'_>) -> Value {
    let mut m = Map::new();
    m.insert("aud".into(), t.audience.into());
    m.insert(
        "iss".into(),
        format!("{}/{}/v2.0", t.base_url, t.tenant).into(),
    );
    m.insert("iat".into(), t.iat.into());
    m.insert("nbf".into(), t.iat.into());
    m.insert("exp".into(), t.exp.into());
    m.insert("azp".into(), t.client_id.into());
    m.insert("azpacr".into(), t.credential.into());
    m.insert("idtyp".into(), "app".into());
    m.insert("oid".into(), t.object_id.into());
    if !t.roles.is_empty() {
        m.insert("roles".into(), t.roles.into());
    }
    m.insert("sub".into(), t.object_id.into());
    m.insert("tid".into(), t.tenant.into());
    m.insert("uti".into(), t.uti.clone().into());
    m.insert("ver".into(), "2.0".into());
    if let Some(mirid) = t.mirid {
        m.insert("xms_mirid".into(), mirid.into());
    }
    Value::Object(m)
}
