//! The Entra v2.0 token endpoint: authority hosts, the client-credentials request shared by
//! the client-secret, workload-identity and federated managed-identity credentials, and
//! Entra's error bodies.

pub(crate) mod hints;

use std::time::Duration;

use serde_json::Value;

use crate::credential::TokenRequest;
use crate::env::Environment;
use crate::error::{EntraError, Error, Unavailable};
use crate::http::{HttpClient, RawResponse};
use crate::response::{self, SentAt};
use crate::time::TimeSource;
use crate::token::AccessToken;

/// Authority hosts of the Azure clouds (`AZURE_AUTHORITY_HOST` values).
pub mod authority {
    /// Azure public cloud (the default).
    pub const AZURE_PUBLIC_CLOUD: &str = "https://login.microsoftonline.com";
    /// Azure US Government.
    pub const AZURE_US_GOVERNMENT: &str = "https://login.microsoftonline.us";
    /// Azure operated by 21Vianet (China).
    pub const AZURE_CHINA: &str = "https://login.chinacloudapi.cn";
}

pub(crate) const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
pub(crate) const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub(crate) const AZURE_CLIENT_ID: &str = "AZURE_CLIENT_ID";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Options shared by the credentials that use the token endpoint.
#[derive(Clone, Debug)]
pub(crate) struct EntraOptions {
    pub(crate) authority_host: Option<String>,
    pub(crate) allow_loopback_http: bool,
    pub(crate) time: TimeSource,
    pub(crate) attempt_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) client_capabilities: Vec<String>,
}

impl Default for EntraOptions {
    fn default() -> Self {
        Self {
            authority_host: None,
            allow_loopback_http: false,
            time: TimeSource::system(),
            attempt_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            client_capabilities: Vec::new(),
        }
    }
}

impl EntraOptions {
    /// Takes `AZURE_AUTHORITY_HOST` from `env` unless the builder set a host.
    pub(crate) fn with_env_authority(mut self, env: &Environment) -> Self {
        if self.authority_host.is_none() {
            self.authority_host = env.get(AZURE_AUTHORITY_HOST);
        }
        self
    }
}

/// Builder methods of every token-endpoint credential.
macro_rules! entra_builder_methods {
    () => {
        /// The cloud's authority host (default: `AZURE_AUTHORITY_HOST` where the credential
        /// reads the environment, else [`AZURE_PUBLIC_CLOUD`](crate::credentials::authority::AZURE_PUBLIC_CLOUD)). It must be
        /// `https`.
        pub fn authority_host(mut self, host: impl Into<String>) -> Self {
            self.opts.authority_host = Some(host.into());
            self
        }

        /// Allows a plain-`http` authority on a loopback address (a local emulator). Default:
        /// refused.
        pub fn allow_loopback_http(mut self, allow: bool) -> Self {
            self.opts.allow_loopback_http = allow;
            self
        }

        /// Clock, timer and jitter (tests step time with the `test-util` feature).
        pub fn time_source(mut self, time: $crate::time::TimeSource) -> Self {
            self.opts.time = time;
            self
        }

        /// Time limit of one request to the token endpoint (default 30 s).
        pub fn attempt_timeout(mut self, d: std::time::Duration) -> Self {
            self.opts.attempt_timeout = d;
            self
        }

        /// Client capabilities declared on every token request, such as `cp1` for Continuous
        /// Access Evaluation: the app then handles claims challenges (the middlewares do), and
        /// Entra may issue longer-lived tokens that it can revoke. Sent as
        /// `claims={"access_token":{"xms_cc":{"values":[…]}}}`, merged with a challenge's
        /// claims. Default: none.
        pub fn client_capabilities<I, S>(mut self, capabilities: I) -> Self
        where
            I: IntoIterator<Item = S>,
            S: Into<String>,
        {
            self.opts.client_capabilities = capabilities.into_iter().map(Into::into).collect();
            self
        }
    };
}
pub(crate) use entra_builder_methods;

/// How the client proves who it is.
pub(crate) enum ClientAuth<'a> {
    Secret(&'a str),
    Assertion(&'a str),
}

/// A client of one app registration at one authority.
#[derive(Debug)]
pub(crate) struct ConfidentialClient {
    authority: url::Url,
    tenant: String,
    client_id: String,
    http: HttpClient,
    time: TimeSource,
    attempt_timeout: Duration,
    client_capabilities: Vec<String>,
    pub(crate) name: String,
}

/// Tenant ids and names: letters, digits, `.` and `-`.
pub(crate) fn validate_tenant(setting: &str, tenant: &str) -> Result<(), Error> {
    if tenant.is_empty()
        || !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(Error::configuration(
            setting,
            "a tenant is a GUID or a domain name: letters, digits, `.` and `-` only",
        ));
    }
    Ok(())
}

fn validate_client_id(setting: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(Error::configuration(
            setting,
            "expected the application (client) id, a GUID",
        ));
    }
    Ok(())
}

fn parse_authority(value: &str, allow_loopback_http: bool) -> Result<url::Url, Error> {
    let bad = |reason: String| Error::configuration(AZURE_AUTHORITY_HOST, reason);
    let url = url::Url::parse(value.trim()).map_err(|e| {
        let shown = crate::env::url_for_display(value);
        bad(format!("{shown:?} is not an absolute URL ({e})"))
    })?;
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(bad(
            "expected scheme://host[:port] without credentials, query or fragment".into(),
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad(format!("{value:?} has no host"))),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback && allow_loopback_http => Ok(url),
        "http" if loopback => Err(bad(
            "plain http is allowed only on loopback and only when enabled with `allow_loopback_http(true)`".into(),
        )),
        _ => Err(bad(format!("{value:?} must be an https URL"))),
    }
}

impl ConfidentialClient {
    pub(crate) fn new(
        kind: &str,
        tenant: &str,
        client_id: &str,
        opts: &EntraOptions,
    ) -> Result<Self, Error> {
        validate_tenant(AZURE_TENANT_ID, tenant)?;
        validate_client_id(AZURE_CLIENT_ID, client_id)?;
        let host = opts
            .authority_host
            .as_deref()
            .unwrap_or(authority::AZURE_PUBLIC_CLOUD);
        let authority = parse_authority(host, opts.allow_loopback_http)?;
        Ok(Self {
            authority,
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            http: HttpClient::for_token_endpoint(opts.connect_timeout)?,
            time: opts.time.clone(),
            attempt_timeout: opts.attempt_timeout,
            client_capabilities: opts.client_capabilities.clone(),
            name: kind.to_owned(),
        })
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `{authority}/{tenant}/oauth2/v2.0/token`; the request's tenant wins over the default.
    pub(crate) fn token_url(&self, request: &TokenRequest) -> Result<url::Url, Error> {
        let tenant = match request.tenant() {
            Some(t) => {
                validate_tenant("tenant", t)?;
                t
            }
            None => &self.tenant,
        };
        let base = self.authority.as_str().trim_end_matches('/');
        url::Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/token"))
            .map_err(|e| Error::configuration(AZURE_AUTHORITY_HOST, e.to_string()))
    }

    /// The client-credentials grant: one retry on 5xx without `Retry-After` and on transport
    /// failures, one second apart (on the credential's clock), within the caller's deadline.
    pub(crate) async fn get_token(
        &self,
        request: &TokenRequest,
        auth: ClientAuth<'_>,
    ) -> Result<AccessToken, Error> {
        let url = self.token_url(request)?;
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("client_id", &self.client_id)
                .append_pair("scope", &request.audience().scope())
                .append_pair("grant_type", "client_credentials");
            match auth {
                ClientAuth::Secret(s) => {
                    form.append_pair("client_secret", s);
                }
                ClientAuth::Assertion(a) => {
                    form.append_pair("client_assertion_type", JWT_BEARER)
                        .append_pair("client_assertion", a);
                }
            }
            if let Some(claims) = with_capabilities(request.claims(), &self.client_capabilities) {
                form.append_pair("claims", &claims);
            }
            form.finish()
        };
        let endpoint = url.as_str().to_owned();
        let started = self.time.monotonic();
        let budget = request.deadline().unwrap_or(Duration::from_secs(100));
        // Running out of the caller's deadline is `DeadlineExceeded` (a chain stops there), not
        // "unavailable" like the credential's own limits.
        let out_of_time = |last: Error| match request.deadline() {
            Some(deadline) => Error::deadline_exceeded(&self.name, deadline, Some(last)),
            None => last,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = budget.saturating_sub(self.time.monotonic() - started);
            if remaining.is_zero() {
                return Err(out_of_time(
                    self.failure(&endpoint, Unavailable::Timeout(budget)),
                ));
            }
            let sent = SentAt {
                monotonic: self.time.monotonic(),
                wall: self.time.system_now(),
            };
            let req = self
                .http
                .inner()
                .post(url.clone())
                .header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .header(http::header::ACCEPT, "application/json")
                .body(body.clone());
            let outcome = self
                .http
                .send(req, self.attempt_timeout.min(remaining))
                .await;
            // Once, after 1 s: a 5xx without `Retry-After`, or no answer (a timeout, a refused or
            // broken connection). An answer that was too large is not asked for again.
            let retry = match &outcome {
                Ok(r) => (500..600).contains(&r.status) && r.retry_after.is_none(),
                Err(reason) => {
                    !matches!(reason, Unavailable::BodyTooLarge { .. }) && !reason.is_permanent()
                }
            };
            if retry
                && attempt == 1
                && self.time.monotonic() - started + Duration::from_secs(1) < budget
            {
                tracing::debug!(credential = %self.name, "retrying the token request once");
                self.time.sleep(Duration::from_secs(1)).await;
                continue;
            }
            let response = outcome.map_err(|e| {
                let cut_by_caller =
                    matches!(e, Unavailable::Timeout(_)) && remaining < self.attempt_timeout;
                let failure = self.failure(&endpoint, e);
                if cut_by_caller {
                    out_of_time(failure)
                } else {
                    failure
                }
            })?;
            if (200..300).contains(&response.status) {
                return response::parse_token(
                    &response,
                    sent,
                    self.time.system_now(),
                    self.time.monotonic(),
                )
                .map_err(|e| self.failure(&endpoint, e));
            }
            // The client follows no redirects: a token endpoint that redirects is not one.
            if (300..400).contains(&response.status) {
                return Err(self.failure(
                    &endpoint,
                    Unavailable::Redirect {
                        status: response.status,
                    },
                ));
            }
            return Err(Error::from(crate::error::TokenEndpointError::Refused {
                credential: self.name.clone(),
                endpoint,
                error: entra_error(&response),
            }));
        }
    }

    fn failure(&self, endpoint: &str, reason: Unavailable) -> Error {
        Error::from(crate::error::TokenEndpointError::Unavailable {
            credential: self.name.clone(),
            endpoint: endpoint.to_owned(),
            reason,
        })
    }
}

/// The `claims` parameter: a challenge's `claims` with the client `capabilities` added as
/// `access_token.xms_cc.values`
/// (<https://learn.microsoft.com/en-us/entra/identity-platform/claims-challenge#client-capabilities>).
/// Claims that are not a JSON object are sent as they came (the API's words; the capabilities
/// are then left out).
fn with_capabilities(claims: Option<&str>, capabilities: &[String]) -> Option<String> {
    if capabilities.is_empty() {
        return claims.map(str::to_owned);
    }
    let mut merged = match claims.map(serde_json::from_str::<serde_json::Value>) {
        None => serde_json::Value::Object(serde_json::Map::new()),
        Some(Ok(v @ serde_json::Value::Object(_))) => v,
        Some(_) => return claims.map(str::to_owned),
    };
    let access_token = merged
        .as_object_mut()?
        .entry("access_token")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if let Some(access_token) = access_token.as_object_mut() {
        access_token.insert(
            "xms_cc".into(),
            serde_json::json!({ "values": capabilities }),
        );
    }
    Some(merged.to_string())
}

/// Reads Entra's error body: `error`, the first line of `error_description`, `error_codes`
/// (else the `AADSTSnnnn:` prefix), `trace_id`, `correlation_id`. Nothing else is kept.
pub(crate) fn entra_error(response: &RawResponse) -> EntraError {
    let mut e = EntraError {
        status: response.status,
        code: None,
        description: None,
        aadsts: Vec::new(),
        trace_id: None,
        correlation_id: None,
    };
    let map = match response::json_object(response) {
        Ok(map) => map,
        Err(what) => {
            e.description = Some(format!("no Entra error body ({what})"));
            return e;
        }
    };
    let text = |name: &str, max: usize| match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.chars().take(max).collect::<String>()),
        _ => None,
    };
    e.code = text("error", 128);
    e.description = map
        .get("error_description")
        .and_then(Value::as_str)
        .and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(|l| l.chars().take(1024).collect());
    if let Some(Value::Array(codes)) = map.get("error_codes") {
        e.aadsts = codes
            .iter()
            .filter_map(|c| c.as_u64())
            .filter_map(|c| u32::try_from(c).ok())
            .collect();
    }
    if e.aadsts.is_empty()
        && let Some(rest) = e
            .description
            .as_deref()
            .and_then(|d| d.strip_prefix("AADSTS"))
    {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(c) = digits.parse() {
            e.aadsts.push(c);
        }
    }
    let id = |name: &str| {
        text(name, 64).filter(|v| v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
    };
    e.trace_id = id("trace_id");
    e.correlation_id = id("correlation_id");
    e
}
