//! What [`DefaultCredential`](super::DefaultCredential) does with links whose cargo feature
//! is on or off. Each test holds in both configurations and checks the one it is built in
//! (`cargo test -p entra-mi --lib` and `cargo test -p entra-mi --lib --no-default-features`).

use super::ChainLink;
use super::chain::DefaultCredential;
use crate::env::Environment;
use crate::error::{ConfigurationError, Error};

fn build(vars: &[(&str, &str)]) -> Result<DefaultCredential, Error> {
    DefaultCredential::builder()
        .environment(Environment::from_vars(vars.iter().copied()))
        .build()
}

fn feature_disabled(result: Result<DefaultCredential, Error>) -> (String, &'static str, String) {
    let e = match result {
        Err(e) => e,
        Ok(chain) => panic!(
            "expected FeatureDisabled, got a chain of {:?}",
            chain.links()
        ),
    };
    let shown = e.to_string();
    match &e {
        Error::Configuration(family)
            if let ConfigurationError::FeatureDisabled {
                setting,
                credential,
                feature,
            } = family.as_ref() =>
        {
            (setting.clone(), credential, format!("{feature} / {shown}"))
        }
        other => panic!("expected FeatureDisabled, got {other:?}"),
    }
}

#[test]
fn the_default_chain_has_the_azure_cli_link_only_with_its_feature() {
    let chain = build(&[]).unwrap();
    let mut expected = vec![
        ChainLink::Environment,
        ChainLink::WorkloadIdentity,
        ChainLink::ManagedIdentity,
    ];
    if cfg!(feature = "azure-cli") {
        expected.push(ChainLink::AzureCli);
    }
    assert_eq!(chain.links(), expected);
    // `prod` never names the Azure CLI, so it builds the same in both configurations.
    let prod = build(&[("AZURE_TOKEN_CREDENTIALS", "prod")]).unwrap();
    assert_eq!(prod.links(), expected[..3]);
}

#[test]
fn naming_the_azure_cli_needs_its_feature() {
    for value in ["AzureCliCredential", "dev", "azureclicredential"] {
        let result = build(&[("AZURE_TOKEN_CREDENTIALS", value)]);
        if cfg!(feature = "azure-cli") {
            assert_eq!(result.unwrap().links(), [ChainLink::AzureCli], "{value}");
        } else {
            let (setting, credential, shown) = feature_disabled(result);
            assert_eq!(setting, "AZURE_TOKEN_CREDENTIALS", "{value}");
            assert_eq!(credential, "AzureCliCredential");
            assert_eq!(
                shown,
                "azure-cli / invalid configuration: AZURE_TOKEN_CREDENTIALS: AzureCliCredential \
                 needs entra-mi's `azure-cli` cargo feature, which this build does not enable"
            );
        }
    }
    let chosen = DefaultCredential::builder()
        .environment(Environment::from_vars::<_, &str, &str>([]))
        .links(&[ChainLink::ManagedIdentity, ChainLink::AzureCli])
        .build();
    if cfg!(feature = "azure-cli") {
        assert_eq!(
            chosen.unwrap().links(),
            [ChainLink::ManagedIdentity, ChainLink::AzureCli]
        );
    } else {
        let (setting, credential, _) = feature_disabled(chosen);
        assert_eq!(setting, "DefaultCredentialBuilder::links");
        assert_eq!(credential, "AzureCliCredential");
    }
}

#[test]
fn a_certificate_in_the_environment_needs_its_feature() {
    let dir = std::env::temp_dir().join("entra-mi-no-such-dir-for-feature-test");
    let path = dir.join("absent.pem");
    let path = path.to_str().unwrap();
    let vars = [
        ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
        ("AZURE_CLIENT_CERTIFICATE_PATH", path),
    ];
    let result = build(&vars);
    if cfg!(feature = "client-certificate") {
        // The credential is built, so the file is read: its absence is the error.
        let e = result.unwrap_err();
        assert!(
            !matches!(&e, Error::Configuration(family) if matches!(&**family, ConfigurationError::FeatureDisabled { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("absent.pem"), "{e}");
    } else {
        let (setting, credential, shown) = feature_disabled(result);
        assert_eq!(setting, "AZURE_CLIENT_CERTIFICATE_PATH");
        assert_eq!(credential, "ClientCertificateCredential");
        assert!(shown.contains("`client-certificate`"), "{shown}");
    }

    // A client secret comes first, and a certificate path alone configures nothing: both
    // build the same in either configuration.
    let with_secret = [&vars[..], &[("AZURE_CLIENT_SECRET", "not-a-real-secret")]].concat();
    assert!(build(&with_secret).is_ok());
    let path_only = build(&vars[2..]).unwrap();
    assert_eq!(path_only.links()[0], ChainLink::Environment);
}
