//! Which managed-identity source the environment selects.

use std::net::{IpAddr, Ipv4Addr};

use super::SourceKind;
use super::imds;
use crate::env::Environment;
use crate::error::Error;

pub(super) const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
pub(super) const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
pub(super) const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
pub(super) const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
pub(super) const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
pub(super) const MSI_SECRET: &str = "MSI_SECRET";
pub(super) const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";

#[cfg(windows)]
fn himds_present() -> bool {
    std::env::var_os("ProgramFiles")
        .map(|p| {
            std::path::Path::new(&p)
                .join("AzureConnectedMachineAgent")
                .join("himds.exe")
                .exists()
        })
        .unwrap_or(false)
}

#[cfg(not(windows))]
fn himds_present() -> bool {
    std::path::Path::new("/opt/azcmagent/bin/himds").exists()
}

/// The source the environment selects, with its endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detected {
    /// IMDS at this token URL.
    Imds {
        /// `…/metadata/identity/oauth2/token`, from `AZURE_POD_IDENTITY_AUTHORITY_HOST` or
        /// the well-known address.
        token_url: url::Url,
    },
    /// App Service 2019-08-01 at `IDENTITY_ENDPOINT`.
    AppService {
        /// The endpoint.
        endpoint: url::Url,
    },
    /// A source this version detects but does not implement.
    Unsupported {
        /// Which.
        kind: SourceKind,
        /// The variables (or file) that selected it.
        evidence: String,
    },
}

impl Detected {
    /// The source kind.
    pub fn kind(&self) -> SourceKind {
        match self {
            Detected::Imds { .. } => SourceKind::Imds,
            Detected::AppService { .. } => SourceKind::AppService,
            Detected::Unsupported { kind, .. } => *kind,
        }
    }
}

/// Detects the managed-identity source from `env`, in the order Service Fabric → App Service →
/// Azure Arc (variables, else the agent's `himds` file) → `MSI_ENDPOINT` + `MSI_SECRET` →
/// `MSI_ENDPOINT` alone (Cloud Shell) → IMDS.
///
/// `IDENTITY_ENDPOINT` alone (without `IDENTITY_HEADER` or `IMDS_ENDPOINT`) is a
/// configuration error rather than a reason to fall through to IMDS.
pub fn detect_source(env: &Environment) -> Result<Detected, Error> {
    detect(env, false)
}

pub(super) fn detect(env: &Environment, allow_http_endpoint: bool) -> Result<Detected, Error> {
    let has = |n| env.has(n);
    let unsupported = |kind, evidence: &str| {
        Ok(Detected::Unsupported {
            kind,
            evidence: evidence.to_owned(),
        })
    };
    if has(IDENTITY_ENDPOINT) && has(IDENTITY_HEADER) && has(IDENTITY_SERVER_THUMBPRINT) {
        return unsupported(
            SourceKind::ServiceFabric,
            "IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT are set",
        );
    }
    if has(IDENTITY_ENDPOINT) && has(IDENTITY_HEADER) {
        let endpoint = endpoint_url(env, IDENTITY_ENDPOINT)?;
        check_plain_http(&endpoint, IDENTITY_ENDPOINT, allow_http_endpoint)?;
        return Ok(Detected::AppService { endpoint });
    }
    if has(IDENTITY_ENDPOINT) && has(IMDS_ENDPOINT) {
        return unsupported(
            SourceKind::AzureArc,
            "IDENTITY_ENDPOINT and IMDS_ENDPOINT are set",
        );
    }
    if has(IDENTITY_ENDPOINT) {
        return Err(Error::configuration(
            IDENTITY_ENDPOINT,
            "it is set without IDENTITY_HEADER (App Service) or IMDS_ENDPOINT (Azure Arc); refusing to guess the source",
        ));
    }
    if himds_present() {
        return unsupported(
            SourceKind::AzureArc,
            "the Azure Connected Machine agent (himds) is installed",
        );
    }
    if has(MSI_ENDPOINT) && has(MSI_SECRET) {
        return unsupported(SourceKind::AzureMl, "MSI_ENDPOINT and MSI_SECRET are set");
    }
    if has(MSI_ENDPOINT) {
        return unsupported(
            SourceKind::CloudShell,
            "MSI_ENDPOINT is set without MSI_SECRET",
        );
    }
    let token_url = match env.get(AZURE_POD_IDENTITY_AUTHORITY_HOST) {
        Some(host) => {
            let base = parse_url(&host, AZURE_POD_IDENTITY_AUTHORITY_HOST)?;
            if base.query().is_some() || base.fragment().is_some() {
                return Err(Error::configuration(
                    AZURE_POD_IDENTITY_AUTHORITY_HOST,
                    "expected scheme://host[:port] without query or fragment",
                ));
            }
            let joined = format!("{}{}", host.trim_end_matches('/'), imds::TOKEN_PATH);
            parse_url(&joined, AZURE_POD_IDENTITY_AUTHORITY_HOST)?
        }
        None => url::Url::parse(&format!("{}{}", imds::DEFAULT_HOST, imds::TOKEN_PATH))
            .expect("the IMDS address is a valid URL"),
    };
    Ok(Detected::Imds { token_url })
}

fn endpoint_url(env: &Environment, name: &str) -> Result<url::Url, Error> {
    let value = env.get(name).unwrap_or_default();
    let url = parse_url(&value, name)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(
            name,
            "expected a URL without query or fragment",
        ));
    }
    Ok(url)
}

fn parse_url(value: &str, name: &str) -> Result<url::Url, Error> {
    let url = url::Url::parse(value.trim()).map_err(|e| {
        Error::configuration(name, format!("{value:?} is not an absolute URL ({e})"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::configuration(
            name,
            format!("{value:?} must be an http or https URL with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::configuration(
            name,
            "the URL must not carry credentials",
        ));
    }
    Ok(url)
}

/// Secrets go over plain `http` only to loopback or link-local endpoints (where the platform
/// puts them) unless explicitly allowed.
fn check_plain_http(url: &url::Url, name: &str, allow: bool) -> Result<(), Error> {
    if url.scheme() != "http" || allow {
        return Ok(());
    }
    let local = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => {
            IpAddr::from(ip).is_loopback() || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
        None => false,
    };
    let _ = Ipv4Addr::LOCALHOST;
    if local {
        Ok(())
    } else {
        Err(Error::configuration(
            name,
            "plain http to a host that is neither loopback nor link-local would expose the identity header; use https or allow it explicitly in the builder",
        ))
    }
}
