//! The fault matrix's Service Fabric faults.

use super::*;

fn sf_credential(emu: &Emulator, thumbprint: &str, time: TimeSource) -> ManagedIdentityCredential {
    let cred = mi(
        env(&[
            ("IDENTITY_ENDPOINT", &emu.service_fabric_endpoint()),
            ("IDENTITY_HEADER", &emu.identity_header()),
            ("IDENTITY_SERVER_THUMBPRINT", thumbprint),
        ]),
        time,
        5,
    );
    assert_eq!(cred.source_kind(), SourceKind::ServiceFabric);
    cred
}

pub(super) async fn sf_wrong_thumbprint() {
    let emu = Emulator::builder()
        .identity_header(HEADER_SECRET)
        .start()
        .await
        .unwrap();
    let mut wrong = emu.service_fabric_thumbprint().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = sf_credential(&emu, &wrong, time)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::ServiceFabric),
            Unavailable::TlsVerification { .. }
        ),
        "{err:?}"
    );
    assert_names(
        &err,
        &[
            "Service Fabric",
            "certificate verification failed",
            "not retried",
        ],
    );
    assert!(
        sleeps.sleeps().is_empty(),
        "a certificate that fails verification is not retried: {:?}",
        sleeps.sleeps()
    );
    assert_eq!(
        emu.requests(Endpoint::ServiceFabric),
        0,
        "no request got past the TLS handshake"
    );
}

pub(super) async fn sf_503_then_token() {
    let emu = Emulator::builder().start().await.unwrap();
    for _ in 0..2 {
        emu.push_fault(
            Endpoint::ServiceFabric,
            EmuFault::Status {
                status: 503,
                retry_after: None,
                body: None,
            },
        );
    }
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    sf_credential(&emu, &emu.service_fabric_thumbprint(), time)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 3);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2]);
}

pub(super) async fn sf_400() {
    let emu = Emulator::builder().start().await.unwrap();
    emu.push_fault(
        Endpoint::ServiceFabric,
        EmuFault::Status {
            status: 400,
            retry_after: None,
            body: None,
        },
    );
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, _) = clock.instant_time_source(0.5);
    let err = sf_credential(&emu, &emu.service_fabric_thumbprint(), time)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(refused(&err, SourceKind::ServiceFabric), 400);
    assert_names(&err, &["Service Fabric", "HTTP 400"]);
    assert_eq!(emu.requests(Endpoint::ServiceFabric), 1);
}
