//! Choosing the credential from the command line, and knowing where its tokens will come
//! from before any is asked for.

use std::sync::Arc;

use clap::{Args, ValueEnum};
use entra_mi::credentials::{
    ChainLink, ClientCertificateCredential, ClientSecretCredential, WorkloadIdentityCredential,
    authority,
};
use entra_mi::managed_identity::{Detection, detect_source};
use entra_mi::{DefaultCredential, Environment, Error, ManagedIdentityId, TokenCredential};

use crate::Failure;
use crate::loopback::is_loopback;

/// The variable that moves the token-endpoint credentials to another cloud (or a local
/// authority).
const AZURE_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";

/// Which credential to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum CredentialKind {
    /// The default chain: environment → workload identity → managed identity → Azure CLI
    /// (`AZURE_TOKEN_CREDENTIALS` narrows it).
    Auto,
    /// The managed identity of this Azure resource.
    ManagedIdentity,
    /// Workload identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`).
    WorkloadIdentity,
    /// A client secret or certificate from `AZURE_*` variables.
    Environment,
    /// The signed-in Azure CLI (`az login`).
    AzureCli,
}

/// Which managed identity: at most one of the three ids; none = system-assigned.
#[derive(Args, Debug, Clone, Default)]
#[group(multiple = false)]
pub(crate) struct IdentityArgs {
    /// A user-assigned identity by client id.
    #[arg(long, value_name = "GUID", value_parser = parse_client_id)]
    pub(crate) client_id: Option<ManagedIdentityId>,
    /// A user-assigned identity by object (principal) id.
    #[arg(long, value_name = "GUID", value_parser = parse_object_id)]
    pub(crate) object_id: Option<ManagedIdentityId>,
    /// A user-assigned identity by ARM resource id.
    #[arg(long, value_name = "ID", value_parser = parse_resource_id)]
    pub(crate) resource_id: Option<ManagedIdentityId>,
}

/// `value` as the id `kind` (`client_id`, `object_id`, `resource_id`), checked by the
/// library's own rules (a GUID; an ARM id of a user-assigned identity).
fn parse_id(kind: &str, value: &str) -> Result<ManagedIdentityId, String> {
    format!("{kind}={value}")
        .parse::<ManagedIdentityId>()
        .map_err(|e| match &e {
            Error::Configuration(family)
                if let entra_mi::error::ConfigurationError::Setting { reason, .. } = &**family =>
            {
                reason.clone()
            }
            _ => e.to_string(),
        })
}

fn parse_client_id(value: &str) -> Result<ManagedIdentityId, String> {
    parse_id("client_id", value)
}

fn parse_object_id(value: &str) -> Result<ManagedIdentityId, String> {
    parse_id("object_id", value)
}

fn parse_resource_id(value: &str) -> Result<ManagedIdentityId, String> {
    parse_id("resource_id", value)
}

impl IdentityArgs {
    pub(crate) fn id(&self) -> ManagedIdentityId {
        self.client_id
            .as_ref()
            .or(self.object_id.as_ref())
            .or(self.resource_id.as_ref())
            .cloned()
            .unwrap_or(ManagedIdentityId::SystemAssigned)
    }
}

/// A user-assigned selector with a credential that is no managed identity: wrong whatever the
/// environment, so a usage error.
pub(crate) fn check_selector(kind: CredentialKind, identity: &IdentityArgs) -> Result<(), String> {
    let other = matches!(
        kind,
        CredentialKind::WorkloadIdentity | CredentialKind::Environment | CredentialKind::AzureCli
    );
    if other && identity.id() != ManagedIdentityId::SystemAssigned {
        let name = kind
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default();
        return Err(format!(
            "--client-id/--object-id/--resource-id select a managed identity; they do not apply to --credential {name}"
        ));
    }
    Ok(())
}

/// A credential chosen on the command line.
pub(crate) struct Chosen {
    chain: DefaultCredential,
    env: Environment,
    id: ManagedIdentityId,
}

/// The credential for `kind` (a one-link chain unless `auto`), validated up front.
///
/// With a user-assigned selector and `auto`, the chain is narrowed to its managed-identity
/// link: the selector means that identity, so neither an earlier link (a client secret, a
/// workload identity) nor the Azure CLI after a failed IMDS probe may answer in its place.
/// When another link would answer first, the selector cannot be honoured here: a failure.
pub(crate) fn build(
    kind: CredentialKind,
    identity: &IdentityArgs,
    env: &Environment,
) -> Result<Chosen, Failure> {
    let id = identity.id();
    let links: &[ChainLink] = match kind {
        CredentialKind::Auto => &[],
        CredentialKind::ManagedIdentity => &[ChainLink::ManagedIdentity],
        CredentialKind::WorkloadIdentity => &[ChainLink::WorkloadIdentity],
        CredentialKind::Environment => &[ChainLink::Environment],
        CredentialKind::AzureCli => &[ChainLink::AzureCli],
    };
    let chosen = Chosen {
        chain: chain(env, &id, links)?,
        env: env.clone(),
        id,
    };
    if kind != CredentialKind::Auto || chosen.id == ManagedIdentityId::SystemAssigned {
        return Ok(chosen);
    }
    if !chosen.chain.links().contains(&ChainLink::ManagedIdentity) {
        return Err(Failure::new(
            "--client-id/--object-id/--resource-id select a managed identity, but AZURE_TOKEN_CREDENTIALS leaves no managed identity in the chain; pass --credential managed-identity",
        ));
    }
    match chosen.serving_link() {
        Some(link) if link != ChainLink::ManagedIdentity => Err(Failure::new(format!(
            "--client-id/--object-id/--resource-id select a managed identity, but the {link} credential comes before it in the chain and would answer instead (it gets its tokens {}); pass --credential managed-identity, or unset the {link} credential's variables",
            chosen.origin(link).description
        ))),
        // The managed identity answers (it is always configured, so there is an answer).
        _ => chosen.narrowed_to(ChainLink::ManagedIdentity),
    }
}

fn chain(
    env: &Environment,
    id: &ManagedIdentityId,
    links: &[ChainLink],
) -> Result<DefaultCredential, Failure> {
    let mut builder = DefaultCredential::builder()
        .environment(env.clone())
        .managed_identity(id.clone());
    if !links.is_empty() {
        builder = builder.links(links);
    }
    Ok(builder.build()?)
}

/// Where a link gets its tokens.
struct Origin {
    /// True when every endpoint it would ask is on loopback.
    loopback: bool,
    /// What it would ask, for messages (hosts only, never a secret).
    description: String,
}

impl Chosen {
    pub(crate) fn credential(&self) -> Arc<dyn TokenCredential> {
        Arc::new(self.chain.clone())
    }

    /// Where the last token came from: the chain link, and for a managed identity its source
    /// (`managed-identity/imds`).
    pub(crate) fn source(&self) -> String {
        match self.chain.selected() {
            Some(ChainLink::ManagedIdentity) => match detect_source(&self.env) {
                Ok(d) => format!("managed-identity/{}", d.kind().as_str()),
                Err(_) => "managed-identity".to_owned(),
            },
            Some(link) => link.as_str().to_owned(),
            None => "none".to_owned(),
        }
    }

    /// The link that will answer: the first one that is configured (a configured link that
    /// fails stops the chain; the one exception, a managed identity behind an IMDS probe that
    /// finds nothing, is why callers narrow the chain to this link). `None` when no link is
    /// configured, and no token can come at all.
    fn serving_link(&self) -> Option<ChainLink> {
        self.chain
            .links()
            .into_iter()
            .find(|link| configured(*link, &self.env))
    }

    /// The same credential with only `link`.
    fn narrowed_to(self, link: ChainLink) -> Result<Chosen, Failure> {
        Ok(Chosen {
            chain: chain(&self.env, &self.id, &[link])?,
            env: self.env,
            id: self.id,
        })
    }

    /// Where `link` would get its tokens.
    fn origin(&self, link: ChainLink) -> Origin {
        let env = &self.env;
        match link {
            ChainLink::Environment | ChainLink::WorkloadIdentity => {
                let host = env
                    .get(AZURE_AUTHORITY_HOST)
                    .unwrap_or_else(|| authority::AZURE_PUBLIC_CLOUD.to_owned());
                match url::Url::parse(host.trim()) {
                    Ok(url) => Origin {
                        loopback: is_loopback(&url),
                        description: format!(
                            "from the authority {}",
                            url.host_str().unwrap_or("(no host)")
                        ),
                    },
                    Err(_) => Origin {
                        loopback: false,
                        description: format!("from the authority in {AZURE_AUTHORITY_HOST}"),
                    },
                }
            }
            ChainLink::ManagedIdentity => match Detection::from_env(env) {
                Ok(detection) => {
                    // The detected endpoint and, on App Service, the 2017-09-01 one the
                    // credential may switch to.
                    let endpoints: Vec<&url::Url> = std::iter::once(detection.source.endpoint())
                        .chain(detection.fallback.as_ref())
                        .collect();
                    Origin {
                        loopback: endpoints.iter().all(|u| is_loopback(u)),
                        description: format!(
                            "from the {} managed-identity endpoint at {}",
                            detection.source.kind(),
                            endpoints
                                .iter()
                                .map(|u| host_port(u))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    }
                }
                Err(_) => Origin {
                    loopback: false,
                    description: "from a managed-identity source the environment does not configure correctly".into(),
                },
            },
            ChainLink::AzureCli => Origin {
                loopback: false,
                description: "from the Azure CLI (`az`), which signs in to Microsoft Entra ID"
                    .into(),
            },
            other => Origin {
                loopback: false,
                description: format!("from the {other} credential"),
            },
        }
    }

    /// The credential for a Microsoft Graph on loopback: the chain narrowed to the link that
    /// will answer, when that link's token endpoint is on loopback too (the emulator serves
    /// both). A loopback Graph may be any local program, and the token is one for the real
    /// Microsoft Graph audience: it goes there only when it came from a local token source.
    /// Refused before any token is asked for.
    pub(crate) fn for_loopback_graph(self, graph: &str) -> Result<Chosen, Failure> {
        let Some(link) = self.serving_link() else {
            // No link is configured: no token will be obtained, let alone sent.
            return Ok(self);
        };
        let origin = self.origin(link);
        if origin.loopback {
            return self.narrowed_to(link);
        }
        Err(Failure::new(format!(
            "the Graph URL {graph} is on loopback, so it may be any local program: a Microsoft Graph token is sent there only when it comes from a token source on loopback too (such as `entra-mi emulator`), and this one would come {}; point the credential at the emulator or use Microsoft Graph's https URL",
            origin.description
        )))
    }
}

/// Whether `link` is configured in `env` (the chain skips the links that are not).
fn configured(link: ChainLink, env: &Environment) -> bool {
    fn absent<T>(built: Result<T, Error>) -> bool {
        built.err().is_some_and(|e| e.is_unavailable())
    }
    match link {
        ChainLink::Environment => {
            !(absent(ClientSecretCredential::from_environment(env))
                && absent(ClientCertificateCredential::from_environment(env)))
        }
        ChainLink::WorkloadIdentity => !absent(WorkloadIdentityCredential::from_environment(env)),
        _ => true,
    }
}

/// `host:port` of `url` (never its path or query).
fn host_port(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("(no host)");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "11111111-2222-3333-4444-555555555555";

    fn chosen(kind: CredentialKind, vars: &[(&str, &str)]) -> Result<Chosen, Failure> {
        build(
            kind,
            &IdentityArgs::default(),
            &Environment::from_vars(vars.iter().copied()),
        )
    }

    fn refused(kind: CredentialKind, vars: &[(&str, &str)]) -> String {
        match chosen(kind, vars)
            .unwrap()
            .for_loopback_graph("http://127.0.0.1:1")
        {
            Ok(_) => panic!("a loopback Graph was allowed with {vars:?}"),
            Err(f) => f.message,
        }
    }

    fn allowed(kind: CredentialKind, vars: &[(&str, &str)]) -> Vec<ChainLink> {
        match chosen(kind, vars)
            .unwrap()
            .for_loopback_graph("http://127.0.0.1:1")
        {
            Ok(c) => c.chain.links(),
            Err(f) => panic!("refused with {vars:?}: {}", f.message),
        }
    }

    const SECRET: [(&str, &str); 3] = [
        ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
        ("AZURE_CLIENT_ID", GUID),
        ("AZURE_CLIENT_SECRET", "not-shown"),
    ];

    #[test]
    fn a_client_secret_counts_by_its_authority_host() {
        let message = refused(CredentialKind::Auto, &SECRET);
        assert!(
            message.contains("from the authority login.microsoftonline.com"),
            "{message}"
        );
        assert!(!message.contains("not-shown"));
        let mut local = SECRET.to_vec();
        local.push(("AZURE_AUTHORITY_HOST", "https://localhost:8443"));
        assert_eq!(
            allowed(CredentialKind::Environment, &local),
            [ChainLink::Environment]
        );
        // It comes first in the chain, so it decides even with an emulator's IMDS configured.
        let mut both = SECRET.to_vec();
        both.push(("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1"));
        refused(CredentialKind::Auto, &both);
    }

    #[test]
    fn a_workload_identity_counts_by_its_authority_host() {
        let wi = [
            ("AZURE_TENANT_ID", "contoso.onmicrosoft.com"),
            ("AZURE_CLIENT_ID", GUID),
            ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ];
        refused(CredentialKind::WorkloadIdentity, &wi);
        let mut local = wi.to_vec();
        local.push(("AZURE_AUTHORITY_HOST", "https://[::1]:8443"));
        assert_eq!(
            allowed(CredentialKind::Auto, &local),
            [ChainLink::WorkloadIdentity]
        );
    }

    #[test]
    fn a_managed_identity_counts_by_its_endpoints() {
        let imds = [("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1")];
        // The chain is narrowed, so a failed IMDS probe cannot hand over to the Azure CLI.
        assert_eq!(
            allowed(CredentialKind::Auto, &imds),
            [ChainLink::ManagedIdentity]
        );
        let message = refused(CredentialKind::ManagedIdentity, &[]);
        assert!(message.contains("169.254.169.254:80"), "{message}");
        let message = refused(
            CredentialKind::Auto,
            &[
                ("IDENTITY_ENDPOINT", "http://169.254.129.2:8081/msi/token"),
                ("IDENTITY_HEADER", "not-shown"),
            ],
        );
        assert!(message.contains("App Service"), "{message}");
        assert!(!message.contains("not-shown"));
        // App Service falls back to MSI_ENDPOINT: both must be local.
        let app_service = [
            ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token"),
            ("IDENTITY_HEADER", "h"),
            ("MSI_ENDPOINT", "http://169.254.129.2:8081/msi/token"),
            ("MSI_SECRET", "s"),
        ];
        refused(CredentialKind::ManagedIdentity, &app_service);
        allowed(CredentialKind::ManagedIdentity, &app_service[..2]);
        allowed(
            CredentialKind::ManagedIdentity,
            &[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")],
        );
    }

    #[test]
    fn the_azure_cli_never_counts() {
        let message = refused(CredentialKind::AzureCli, &[]);
        assert!(message.contains("Azure CLI"), "{message}");
        // `dev` leaves only the Azure CLI in the chain.
        refused(
            CredentialKind::Auto,
            &[
                ("AZURE_TOKEN_CREDENTIALS", "dev"),
                ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1"),
            ],
        );
    }

    #[test]
    fn a_selector_narrows_the_chain_to_the_managed_identity() {
        let selector = IdentityArgs {
            client_id: Some(parse_client_id(GUID).unwrap()),
            ..IdentityArgs::default()
        };
        let imds =
            Environment::from_vars([("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1")]);
        let c = build(CredentialKind::Auto, &selector, &imds).unwrap();
        assert_eq!(c.chain.links(), [ChainLink::ManagedIdentity]);
        let with_secret = Environment::from_vars(SECRET);
        let message = match build(CredentialKind::Auto, &selector, &with_secret) {
            Ok(_) => panic!("the selector was ignored"),
            Err(f) => f.message,
        };
        assert!(
            message.contains("environment credential comes before it"),
            "{message}"
        );
        let dev = Environment::from_vars([("AZURE_TOKEN_CREDENTIALS", "dev")]);
        assert!(build(CredentialKind::Auto, &selector, &dev).is_err());
        // Without a selector, `auto` stays the whole chain.
        let c = build(CredentialKind::Auto, &IdentityArgs::default(), &imds).unwrap();
        assert_eq!(c.chain.links().len(), 4);
    }

    #[test]
    fn malformed_ids_are_refused_with_the_libraries_reason() {
        assert!(parse_client_id("not-a-guid").unwrap_err().contains("GUID"));
        assert!(parse_object_id("").is_err());
        assert!(parse_resource_id("/subscriptions/x/resourceGroups/rg").is_err());
        assert_eq!(
            parse_object_id(GUID).unwrap(),
            ManagedIdentityId::ObjectId(GUID.into())
        );
    }
}
