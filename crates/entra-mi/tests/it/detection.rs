//! Source detection and configuration validation: the decisions-table order, every detected
//! source built as itself (never a silent fall-through), and bad environment values.

use entra_mi::credentials::ClientSecretCredential;
use entra_mi::managed_identity::{ManagedIdentitySource, SourceKind, detect_source};
use entra_mi::{Environment, Error, ManagedIdentityCredential, ManagedIdentityId};

/// Variables, the setting the error must name, and a phrase of its reason.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn detection_follows_the_decisions_table() {
    let cases: &[(&[(&str, &str)], SourceKind)] = &[
        (&[], SourceKind::Imds),
        (
            &[
                (
                    "IDENTITY_ENDPOINT",
                    "https://10.0.0.4:2377/metadata/identity/oauth2/token",
                ),
                ("IDENTITY_HEADER", "h"),
                (
                    "IDENTITY_SERVER_THUMBPRINT",
                    "0123456789abcdef0123456789ABCDEF01234567",
                ),
            ],
            SourceKind::ServiceFabric,
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
                ("IDENTITY_HEADER", "h"),
            ],
            SourceKind::AppService,
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token"),
                ("IDENTITY_HEADER", "h"),
                ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
            ],
            SourceKind::AppService,
        ),
        (
            &[
                (
                    "IDENTITY_ENDPOINT",
                    "http://127.0.0.1:40342/metadata/identity/oauth2/token",
                ),
                ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
            ],
            SourceKind::AzureArc,
        ),
        (
            &[
                ("MSI_ENDPOINT", "http://127.0.0.1:46808/"),
                ("MSI_SECRET", "s"),
            ],
            SourceKind::AzureMl,
        ),
        (
            &[("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")],
            SourceKind::CloudShell,
        ),
        (&[("IDENTITY_HEADER", "h")], SourceKind::Imds),
        (
            &[("IDENTITY_ENDPOINT", ""), ("IDENTITY_HEADER", "h")],
            SourceKind::Imds,
        ),
        (&[("MSI_SECRET", "s")], SourceKind::Imds),
    ];
    for (vars, expected) in cases {
        let detected = detect_source(&env(vars)).unwrap();
        assert_eq!(detected.kind(), *expected, "{vars:?}");
    }
}

#[test]
fn every_detected_source_is_built_and_never_falls_through() {
    for (vars, kind, endpoint) in [
        (
            vec![
                ("IDENTITY_ENDPOINT", "https://10.0.0.4:2377/t"),
                ("IDENTITY_HEADER", "h"),
                (
                    "IDENTITY_SERVER_THUMBPRINT",
                    "0123456789abcdef0123456789ABCDEF01234567",
                ),
            ],
            SourceKind::ServiceFabric,
            "https://10.0.0.4:2377/t",
        ),
        (
            vec![
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:40342/t"),
                ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
            ],
            SourceKind::AzureArc,
            "http://127.0.0.1:40342/t",
        ),
        (
            vec![
                ("MSI_ENDPOINT", "http://127.0.0.1:46808/"),
                ("MSI_SECRET", "super-secret-value"),
            ],
            SourceKind::AzureMl,
            "http://127.0.0.1:46808/",
        ),
        (
            vec![("MSI_ENDPOINT", "http://localhost:50342/oauth2/token")],
            SourceKind::CloudShell,
            "http://localhost:50342/oauth2/token",
        ),
    ] {
        let cred = ManagedIdentityCredential::builder()
            .environment(env(&vars))
            .arc_key_directory(std::env::temp_dir())
            .build()
            .unwrap();
        assert_eq!(cred.source_kind(), kind, "{vars:?}");
        assert_eq!(cred.endpoint(), endpoint);
        assert!(!format!("{cred:?}").contains("super-secret-value"));
    }
}

#[test]
fn bad_values_of_the_other_sources_name_the_variable() {
    let cases: &[Case] = &[
        (
            &[("MSI_ENDPOINT", "not a url")],
            "MSI_ENDPOINT",
            "not an absolute URL",
        ),
        (
            &[
                ("MSI_ENDPOINT", "http://203.0.113.9/msi"),
                ("MSI_SECRET", "s"),
            ],
            "MSI_ENDPOINT",
            "neither loopback nor link-local",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://203.0.113.9/t"),
                ("IMDS_ENDPOINT", "http://203.0.113.9"),
            ],
            "IDENTITY_ENDPOINT",
            "must be a loopback address",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "https://10.0.0.4:2377/t"),
                ("IDENTITY_HEADER", "h"),
                ("IDENTITY_SERVER_THUMBPRINT", "xyz"),
            ],
            "IDENTITY_SERVER_THUMBPRINT",
            "40 hexadecimal digits",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://10.0.0.4:2377/t"),
                ("IDENTITY_HEADER", "h"),
                (
                    "IDENTITY_SERVER_THUMBPRINT",
                    "0123456789abcdef0123456789ABCDEF01234567",
                ),
            ],
            "IDENTITY_ENDPOINT",
            "must be https",
        ),
    ];
    for (vars, variable, needle) in cases {
        let err = ManagedIdentityCredential::builder()
            .environment(env(vars))
            .build()
            .unwrap_err();
        match &err {
            Error::Configuration(family)
                if let entra_mi::error::ConfigurationError::Setting { setting, reason } =
                    family.as_ref() =>
            {
                assert_eq!(setting, variable, "{vars:?}");
                assert!(reason.contains(needle), "{vars:?}: {reason}");
            }
            other => panic!("{vars:?}: {other:?}"),
        }
    }
}

#[test]
fn bad_environment_values_name_the_variable() {
    let cases: &[Case] = &[
        (
            &[("IDENTITY_ENDPOINT", "not a url"), ("IDENTITY_HEADER", "h")],
            "IDENTITY_ENDPOINT",
            "not an absolute URL",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "ftp://127.0.0.1/x"),
                ("IDENTITY_HEADER", "h"),
            ],
            "IDENTITY_ENDPOINT",
            "http or https",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://127.0.0.1:1/x?y=1"),
                ("IDENTITY_HEADER", "h"),
            ],
            "IDENTITY_ENDPOINT",
            "without query",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://user:pw@127.0.0.1:1/x"),
                ("IDENTITY_HEADER", "h"),
            ],
            "IDENTITY_ENDPOINT",
            "credentials",
        ),
        (
            &[
                ("IDENTITY_ENDPOINT", "http://203.0.113.9/msi/token"),
                ("IDENTITY_HEADER", "h"),
            ],
            "IDENTITY_ENDPOINT",
            "neither loopback nor link-local",
        ),
        (
            &[("IDENTITY_ENDPOINT", "http://127.0.0.1:41000/msi/token")],
            "IDENTITY_ENDPOINT",
            "refusing to guess",
        ),
        (
            &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "169.254.169.254")],
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "not an absolute URL",
        ),
        (
            &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://h/?x=1")],
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "without query",
        ),
        (
            &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", "file:///etc/passwd")],
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "http or https",
        ),
    ];
    for (vars, variable, needle) in cases {
        let err = ManagedIdentityCredential::builder()
            .environment(env(vars))
            .build()
            .unwrap_err();
        match &err {
            Error::Configuration(family)
                if let entra_mi::error::ConfigurationError::Setting { setting, reason } =
                    family.as_ref() =>
            {
                assert_eq!(setting, variable, "{vars:?}");
                assert!(reason.contains(needle), "{vars:?}: {reason}");
            }
            other => panic!("{vars:?}: {other:?}"),
        }
    }
}

#[test]
fn managed_identity_ids_parse_from_text_and_a_bare_guid_is_refused() {
    const GUID: &str = "11111111-2222-3333-4444-555555555555";
    const RES: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app";
    for (text, want) in [
        ("system-assigned", ManagedIdentityId::SystemAssigned),
        (" System ", ManagedIdentityId::SystemAssigned),
        (
            &format!("client_id={GUID}"),
            ManagedIdentityId::ClientId(GUID.into()),
        ),
        (
            &format!("Client-Id = {GUID}"),
            ManagedIdentityId::ClientId(GUID.into()),
        ),
        (
            &format!("object_id={GUID}"),
            ManagedIdentityId::ObjectId(GUID.into()),
        ),
        (
            &format!("principal_id={GUID}"),
            ManagedIdentityId::ObjectId(GUID.into()),
        ),
        (RES, ManagedIdentityId::ResourceId(RES.into())),
        (
            &format!("resource_id={RES}"),
            ManagedIdentityId::ResourceId(RES.into()),
        ),
    ] {
        let id: ManagedIdentityId = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(id, want, "{text}");
        assert_eq!(
            id.to_string().parse::<ManagedIdentityId>().unwrap(),
            id,
            "{text}"
        );
    }
    for (text, needle) in [
        (GUID, "does not say which id"),
        ("", "expected system-assigned"),
        ("my-identity", "expected system-assigned"),
        (&format!("app_id={GUID}"), "unknown kind \"app_id\""),
        ("client_id=not-a-guid", "expected a GUID"),
        ("client_id=", "it is empty"),
        (
            "/subscriptions/s/resourceGroups/rg",
            "userAssignedIdentities",
        ),
    ] {
        let err = text.parse::<ManagedIdentityId>().unwrap_err();
        assert!(
            matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { reason, .. } if reason.contains(needle))),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn a_password_in_an_endpoint_url_is_never_quoted() {
    for (name, value, other) in [
        (
            "IDENTITY_ENDPOINT",
            "ftp://user:PW-CANARY@127.0.0.1/x",
            ("IDENTITY_HEADER", "h"),
        ),
        (
            "IDENTITY_ENDPOINT",
            "http://user:PW-CANARY@[::1/x",
            ("IDENTITY_HEADER", "h"),
        ),
        (
            "MSI_ENDPOINT",
            "gopher://PW-CANARY@host/x",
            ("MSI_SECRET", "s"),
        ),
        ("MSI_ENDPOINT", "gopher://PW-CANARY@host/x", ("X", "")),
        (
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            "ftp://u:PW-CANARY@h",
            ("X", ""),
        ),
    ] {
        let err = ManagedIdentityCredential::builder()
            .environment(env(&[(name, value), other]))
            .build()
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(name), "{value}: {shown}");
        assert!(!shown.contains("PW-CANARY"), "{value}: {shown}");
    }
    let err = ClientSecretCredential::builder(
        "contoso.onmicrosoft.com",
        "11111111-2222-3333-4444-555555555555",
        "s",
    )
    .authority_host("https://u:PW-CANARY@[bad")
    .build()
    .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("not an absolute URL"), "{shown}");
    assert!(!shown.contains("PW-CANARY"), "{shown}");
}

/// The Arc agent runs on the machine, and its second request carries a local key file's
/// content: an Arc endpoint that is not a loopback address is refused whatever its scheme, and
/// `allow_http_endpoint` does not relax it.
#[test]
fn an_arc_endpoint_must_be_loopback_whatever_its_scheme() {
    for endpoint in [
        "https://arc.example.com/metadata/identity/oauth2/token",
        "http://10.0.0.4:40342/metadata/identity/oauth2/token",
        "http://169.254.169.254/metadata/identity/oauth2/token",
        "https://[2001:db8::1]/token",
    ] {
        for allow in [false, true] {
            let err = ManagedIdentityCredential::builder()
                .environment(env(&[
                    ("IDENTITY_ENDPOINT", endpoint),
                    ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
                ]))
                .allow_http_endpoint(allow)
                .build()
                .unwrap_err();
            assert!(
                matches!(&err, Error::Configuration(family) if matches!(family.as_ref(), entra_mi::error::ConfigurationError::Setting { setting, reason } if setting == "IDENTITY_ENDPOINT" && reason.contains("loopback"))),
                "{endpoint}: {err}"
            );
            let err = ManagedIdentityCredential::builder()
                .source(ManagedIdentitySource::AzureArc {
                    endpoint: endpoint.parse().unwrap(),
                })
                .allow_http_endpoint(allow)
                .build()
                .unwrap_err();
            assert!(err.to_string().contains("loopback"), "{endpoint}: {err}");
        }
    }
    for endpoint in [
        "http://127.0.0.1:40342/metadata/identity/oauth2/token",
        "http://127.8.9.10:40342/t",
        "https://localhost:40342/t",
        "http://[::1]:40342/t",
    ] {
        ManagedIdentityCredential::builder()
            .environment(env(&[
                ("IDENTITY_ENDPOINT", endpoint),
                ("IMDS_ENDPOINT", "http://127.0.0.1:40342"),
            ]))
            .arc_key_directory(std::env::temp_dir())
            .build()
            .unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    }
}

#[test]
fn http_endpoints_on_loopback_and_link_local_are_accepted() {
    for endpoint in [
        "http://127.0.0.1:41000/msi/token",
        "http://localhost:42356/msi/token",
        "http://169.254.255.2:8081/msi/token",
        "http://[::1]:8081/msi/token",
        "https://appservice.example/msi/token",
    ] {
        let d = detect_source(&env(&[
            ("IDENTITY_ENDPOINT", endpoint),
            ("IDENTITY_HEADER", "h"),
        ]))
        .unwrap();
        assert!(
            matches!(d, ManagedIdentitySource::AppService { .. }),
            "{endpoint}"
        );
    }
    ManagedIdentityCredential::builder()
        .environment(env(&[
            ("IDENTITY_ENDPOINT", "http://203.0.113.9/msi/token"),
            ("IDENTITY_HEADER", "h"),
        ]))
        .allow_http_endpoint(true)
        .build()
        .unwrap();
}

#[test]
fn imds_host_override_is_joined_with_the_token_path() {
    for (host, expected) in [
        (
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/metadata/identity/oauth2/token",
        ),
        (
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/metadata/identity/oauth2/token",
        ),
    ] {
        let cred = ManagedIdentityCredential::builder()
            .environment(env(&[("AZURE_POD_IDENTITY_AUTHORITY_HOST", host)]))
            .build()
            .unwrap();
        assert_eq!(cred.endpoint(), expected);
    }
    let cred = ManagedIdentityCredential::builder()
        .environment(env(&[]))
        .build()
        .unwrap();
    assert_eq!(
        cred.endpoint(),
        "http://169.254.169.254/metadata/identity/oauth2/token"
    );
    assert!(!format!("{:?}", env(&[("IDENTITY_HEADER", "value-here")])).contains("value-here"));
}

#[test]
fn identity_ids_are_validated() {
    for (builder, needle) in [
        (ManagedIdentityCredential::builder().client_id(""), "empty"),
        (
            ManagedIdentityCredential::builder().client_id("my-app"),
            "GUID",
        ),
        (
            ManagedIdentityCredential::builder().object_id("1234 5678"),
            "whitespace",
        ),
        (
            ManagedIdentityCredential::builder().resource_id(
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            ),
            "userAssignedIdentities",
        ),
    ] {
        let err = builder.environment(env(&[])).build().unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn each_detected_source_names_its_api_version() {
    let url = |s: &str| -> url::Url { s.parse().unwrap() };
    for (detected, version) in [
        (
            ManagedIdentitySource::Imds {
                token_url: url("http://169.254.169.254/metadata/identity/oauth2/token"),
            },
            Some("2018-02-01"),
        ),
        (
            ManagedIdentitySource::AppService {
                endpoint: url("http://127.0.0.1:41000/msi/token"),
            },
            Some("2019-08-01"),
        ),
        (
            ManagedIdentitySource::AzureArc {
                endpoint: url("http://127.0.0.1:40342/metadata/identity/oauth2/token"),
            },
            Some("2020-06-01"),
        ),
        (
            ManagedIdentitySource::ServiceFabric {
                endpoint: url("https://10.0.0.4:2377/metadata/identity/oauth2/token"),
                thumbprint: [0; 20],
            },
            Some("2019-07-01-preview"),
        ),
        (
            ManagedIdentitySource::AzureMl {
                endpoint: url("http://127.0.0.1:8081/msi/auth"),
            },
            Some("2017-09-01"),
        ),
        (
            ManagedIdentitySource::CloudShell {
                endpoint: url("http://localhost:50342/oauth2/token"),
            },
            None,
        ),
    ] {
        assert_eq!(detected.api_version(), version, "{detected:?}");
    }
    if cfg!(target_os = "linux") {
        assert_eq!(
            ManagedIdentitySource::arc_key_directory(),
            Some(std::path::PathBuf::from("/var/opt/azcmagent/tokens"))
        );
    }
}
