//! Which managed-identity source the environment selects.

use std::net::IpAddr;

use super::dispatch::ManagedIdentitySource;
use super::imds;
use super::vars::*;
use crate::env::Environment;
use crate::error::Error;
use crate::source_kind::SourceKind;

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

/// Every environment variable source detection reads, in the order it looks at them.
pub const VARIABLES: &[&str] = &[
    IDENTITY_ENDPOINT,
    IDENTITY_HEADER,
    IDENTITY_SERVER_THUMBPRINT,
    IMDS_ENDPOINT,
    MSI_ENDPOINT,
    MSI_SECRET,
    AZURE_POD_IDENTITY_AUTHORITY_HOST,
    DEFAULT_IDENTITY_CLIENT_ID,
];

/// The source the environment selects, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Detection {
    /// The source and its endpoint.
    pub source: ManagedIdentitySource,
    /// What in the environment selected it, in words (variable names, never values).
    pub evidence: String,
    /// For App Service, the 2017-09-01 endpoint (`MSI_ENDPOINT` with `MSI_SECRET`) the
    /// credential switches to where the 2019-08-01 protocol is refused.
    pub fallback: Option<url::Url>,
}

impl Detection {
    /// Detects the source from `env`, as [`detect_source`] does, with the evidence.
    pub fn from_env(env: &Environment) -> Result<Self, Error> {
        let source = detect(env, false)?;
        let set = |names: &[&str]| names.join(" and ") + " are set";
        let evidence = match source.kind() {
            SourceKind::ServiceFabric => set(&[
                IDENTITY_ENDPOINT,
                IDENTITY_HEADER,
                IDENTITY_SERVER_THUMBPRINT,
            ]),
            SourceKind::AppService => set(&[IDENTITY_ENDPOINT, IDENTITY_HEADER]),
            SourceKind::AzureArc if env.has(IDENTITY_ENDPOINT) => {
                set(&[IDENTITY_ENDPOINT, IMDS_ENDPOINT])
            }
            SourceKind::AzureArc => {
                "the Azure Arc agent is installed (its himds program exists)".into()
            }
            SourceKind::AzureMl => set(&[MSI_ENDPOINT, MSI_SECRET]),
            SourceKind::CloudShell => format!("{MSI_ENDPOINT} is set without {MSI_SECRET}"),
            _ if env.has(AZURE_POD_IDENTITY_AUTHORITY_HOST) => format!(
                "no other managed-identity variables are set; {AZURE_POD_IDENTITY_AUTHORITY_HOST} moves IMDS"
            ),
            _ => {
                "no other managed-identity variables are set, so the VM's Instance Metadata Service"
                    .into()
            }
        };
        let fallback = match source.kind() {
            SourceKind::AppService => app_service_2017_fallback(env, false),
            _ => None,
        };
        Ok(Self {
            source,
            evidence,
            fallback,
        })
    }
}

/// True when any managed-identity variable other than the IMDS host override is set (the
/// default chain probes IMDS only when none is).
pub(crate) fn other_source_configured(env: &Environment) -> bool {
    [
        IDENTITY_ENDPOINT,
        IDENTITY_HEADER,
        IMDS_ENDPOINT,
        MSI_ENDPOINT,
        MSI_SECRET,
    ]
    .iter()
    .any(|n| env.has(n))
        || himds_present()
}

/// Detects the managed-identity source from `env`, in the order Service Fabric → App Service →
/// Azure Arc (variables, else the agent's `himds` file) → `MSI_ENDPOINT` + `MSI_SECRET` →
/// `MSI_ENDPOINT` alone (Cloud Shell) → IMDS.
///
/// `IDENTITY_ENDPOINT` alone (without `IDENTITY_HEADER` or `IMDS_ENDPOINT`) is a
/// configuration error rather than a reason to fall through to IMDS.
pub fn detect_source(env: &Environment) -> Result<ManagedIdentitySource, Error> {
    detect(env, false)
}

pub(super) fn detect(
    env: &Environment,
    allow_http_endpoint: bool,
) -> Result<ManagedIdentitySource, Error> {
    let has = |n| env.has(n);
    if has(IDENTITY_ENDPOINT) && has(IDENTITY_HEADER) && has(IDENTITY_SERVER_THUMBPRINT) {
        let endpoint = endpoint_url(env, IDENTITY_ENDPOINT)?;
        if endpoint.scheme() != "https" {
            return Err(Error::configuration(
                IDENTITY_ENDPOINT,
                "Service Fabric's token endpoint must be https (its certificate is pinned to IDENTITY_SERVER_THUMBPRINT)",
            ));
        }
        let thumbprint =
            parse_thumbprint(&env.get(IDENTITY_SERVER_THUMBPRINT).unwrap_or_default())?;
        return Ok(ManagedIdentitySource::ServiceFabric {
            endpoint,
            thumbprint,
        });
    }
    if has(IDENTITY_ENDPOINT) && has(IDENTITY_HEADER) {
        let endpoint = endpoint_url(env, IDENTITY_ENDPOINT)?;
        check_plain_http(&endpoint, IDENTITY_ENDPOINT, allow_http_endpoint)?;
        return Ok(ManagedIdentitySource::AppService { endpoint });
    }
    if has(IDENTITY_ENDPOINT) && has(IMDS_ENDPOINT) {
        let endpoint = endpoint_url(env, IDENTITY_ENDPOINT)?;
        // Only its presence selects Arc, but a value that is no URL is a broken setup.
        endpoint_url(env, IMDS_ENDPOINT)?;
        check_arc_loopback(&endpoint, IDENTITY_ENDPOINT)?;
        return Ok(ManagedIdentitySource::AzureArc { endpoint });
    }
    if has(IDENTITY_ENDPOINT) {
        return Err(Error::configuration(
            IDENTITY_ENDPOINT,
            "it is set without IDENTITY_HEADER (App Service) or IMDS_ENDPOINT (Azure Arc); refusing to guess the source",
        ));
    }
    if himds_present() {
        let endpoint = url::Url::parse(super::arc::DEFAULT_ENDPOINT)
            .expect("the Arc agent's address is a valid URL");
        return Ok(ManagedIdentitySource::AzureArc { endpoint });
    }
    if has(MSI_ENDPOINT) {
        let endpoint = endpoint_url(env, MSI_ENDPOINT)?;
        check_plain_http(&endpoint, MSI_ENDPOINT, allow_http_endpoint)?;
        return Ok(if has(MSI_SECRET) {
            ManagedIdentitySource::AzureMl { endpoint }
        } else {
            ManagedIdentitySource::CloudShell { endpoint }
        });
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
    Ok(ManagedIdentitySource::Imds { token_url })
}

/// `IDENTITY_SERVER_THUMBPRINT`: 40 hex digits (any case; `:` and whitespace ignored).
fn parse_thumbprint(value: &str) -> Result<[u8; 20], Error> {
    let hex: Vec<u8> = value
        .bytes()
        .filter(|b| *b != b':' && !b.is_ascii_whitespace())
        .collect();
    let bad = || {
        Error::configuration(
            IDENTITY_SERVER_THUMBPRINT,
            "expected the SHA-1 thumbprint of the token service's certificate: 40 hexadecimal digits",
        )
    };
    if hex.len() != 40 {
        return Err(bad());
    }
    let mut out = [0u8; 20];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The 2017-09-01 endpoint App Service also sets (`MSI_ENDPOINT` + `MSI_SECRET`), valid by the
/// same rules as when it is detected on its own: where the 2019-08-01 protocol is refused
/// (Linux Consumption Functions answer `UnsupportedApiVersion`), the credential falls back to
/// it. `None` when it is not set or not valid.
pub(crate) fn app_service_2017_fallback(
    env: &Environment,
    allow_http_endpoint: bool,
) -> Option<url::Url> {
    env.get(MSI_SECRET).filter(|s| !s.trim().is_empty())?;
    let endpoint = endpoint_url(env, MSI_ENDPOINT).ok()?;
    check_plain_http(&endpoint, MSI_ENDPOINT, allow_http_endpoint).ok()?;
    Some(endpoint)
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
    let shown = crate::env::url_for_display(value);
    let url = url::Url::parse(value.trim()).map_err(|e| {
        Error::configuration(name, format!("{shown:?} is not an absolute URL ({e})"))
    })?;
    // Credentials first: the messages below quote the value.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::configuration(
            name,
            "the URL must not carry credentials",
        ));
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::configuration(
            name,
            format!("{shown:?} must be an http or https URL with a host"),
        ));
    }
    Ok(url)
}

/// Checks an endpoint given in code ([`ManagedIdentityCredentialBuilder::source`]) by the
/// rules an endpoint from the environment meets: an absolute `http`/`https` URL with a host,
/// no credentials, query or fragment; plain `http` only to loopback or link-local hosts
/// unless `allow_http_endpoint`; Service Fabric over `https` only.
///
/// [`ManagedIdentityCredentialBuilder::source`]: super::ManagedIdentityCredentialBuilder::source
pub(crate) fn check_explicit(
    source: &ManagedIdentitySource,
    allow_http_endpoint: bool,
) -> Result<(), Error> {
    const NAME: &str = "ManagedIdentityCredentialBuilder::source";
    let url = parse_url(source.endpoint().as_str(), NAME)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::configuration(
            NAME,
            "expected a URL without query or fragment",
        ));
    }
    if matches!(source, ManagedIdentitySource::ServiceFabric { .. }) && url.scheme() != "https" {
        return Err(Error::configuration(
            NAME,
            "Service Fabric's endpoint is reached over https only (its certificate is pinned)",
        ));
    }
    if matches!(source, ManagedIdentitySource::AzureArc { .. }) {
        check_arc_loopback(&url, NAME)?;
    }
    check_plain_http(&url, NAME, allow_http_endpoint)
}

/// The Arc agent listens on the machine itself, and its second leg sends the content of a
/// local key file: its endpoint must be a loopback address whatever the scheme, and no
/// builder option relaxes that.
fn check_arc_loopback(url: &url::Url, name: &str) -> Result<(), Error> {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(Error::configuration(
            name,
            "the Azure Arc agent's endpoint must be a loopback address (127.0.0.0/8, ::1 or localhost): its second request carries the content of a local key file",
        ))
    }
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
    if local {
        Ok(())
    } else {
        Err(Error::configuration(
            name,
            "plain http to a host that is neither loopback nor link-local would expose the identity header; use https or allow it explicitly in the builder",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(vars: &[(&str, &str)]) -> Detection {
        Detection::from_env(&Environment::from_vars(vars.iter().copied())).expect("detected")
    }

    #[test]
    fn detection_names_the_variables_that_selected_the_source() {
        let app = detection(&[
            (IDENTITY_ENDPOINT, "http://127.0.0.1:41000/msi/token"),
            (IDENTITY_HEADER, "h"),
        ]);
        assert_eq!(app.source.kind(), SourceKind::AppService);
        assert_eq!(
            app.evidence,
            "IDENTITY_ENDPOINT and IDENTITY_HEADER are set"
        );
        assert_eq!(app.fallback, None);

        let with_2017 = detection(&[
            (IDENTITY_ENDPOINT, "http://127.0.0.1:41000/msi/token"),
            (IDENTITY_HEADER, "h"),
            (MSI_ENDPOINT, "http://127.0.0.1:41001/msi/token"),
            (MSI_SECRET, "s"),
        ]);
        assert_eq!(
            with_2017.fallback.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:41001/msi/token")
        );

        let ml = detection(&[(MSI_ENDPOINT, "http://127.0.0.1:41001/"), (MSI_SECRET, "s")]);
        assert_eq!(ml.source.kind(), SourceKind::AzureMl);
        assert_eq!(ml.evidence, "MSI_ENDPOINT and MSI_SECRET are set");

        let shell = detection(&[(MSI_ENDPOINT, "http://localhost:50342/oauth2/token")]);
        assert_eq!(shell.evidence, "MSI_ENDPOINT is set without MSI_SECRET");

        let moved = detection(&[(AZURE_POD_IDENTITY_AUTHORITY_HOST, "http://127.0.0.1:8080")]);
        assert_eq!(moved.source.kind(), SourceKind::Imds);
        assert!(
            moved.evidence.contains(AZURE_POD_IDENTITY_AUTHORITY_HOST),
            "{}",
            moved.evidence
        );
    }

    #[test]
    fn every_variable_detection_reads_is_listed() {
        for name in [
            IDENTITY_ENDPOINT,
            IDENTITY_HEADER,
            IDENTITY_SERVER_THUMBPRINT,
            IMDS_ENDPOINT,
            MSI_ENDPOINT,
            MSI_SECRET,
            AZURE_POD_IDENTITY_AUTHORITY_HOST,
            DEFAULT_IDENTITY_CLIENT_ID,
        ] {
            assert!(VARIABLES.contains(&name), "{name}");
        }
        // And each listed variable is one detection acts on: adding it to an environment
        // changes what is detected (Azure ML's client id is read when a token is requested).
        let outcome = |vars: &[(&str, &str)]| match Detection::from_env(&Environment::from_vars(
            vars.iter().copied(),
        )) {
            Ok(d) => format!("{:?} / {} / {:?}", d.source.kind(), d.evidence, d.fallback),
            Err(e) => e.to_string(),
        };
        let endpoint = "http://127.0.0.1:41000/msi/token";
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Vars, (&str, &str)); 7] = [
            (&[(IDENTITY_HEADER, "h")], (IDENTITY_ENDPOINT, endpoint)),
            (
                &[(IDENTITY_ENDPOINT, endpoint), (IMDS_ENDPOINT, endpoint)],
                (IDENTITY_HEADER, "h"),
            ),
            (
                &[
                    (
                        IDENTITY_ENDPOINT,
                        "https://127.0.0.1:2377/metadata/identity/oauth2/token",
                    ),
                    (IDENTITY_HEADER, "h"),
                ],
                (IDENTITY_SERVER_THUMBPRINT, "AB"),
            ),
            (&[(IDENTITY_ENDPOINT, endpoint)], (IMDS_ENDPOINT, endpoint)),
            (&[], (MSI_ENDPOINT, endpoint)),
            (&[(MSI_ENDPOINT, endpoint)], (MSI_SECRET, "s")),
            (
                &[],
                (AZURE_POD_IDENTITY_AUTHORITY_HOST, "http://127.0.0.1:8080"),
            ),
        ];
        for name in VARIABLES
            .iter()
            .filter(|n| **n != DEFAULT_IDENTITY_CLIENT_ID)
        {
            let (base, added) = cases
                .iter()
                .find(|(_, (n, _))| n == name)
                .unwrap_or_else(|| panic!("no case for {name}"));
            let with: Vec<_> = base.iter().copied().chain([*added]).collect();
            assert_ne!(outcome(base), outcome(&with), "{name} changes nothing");
        }
    }
}
