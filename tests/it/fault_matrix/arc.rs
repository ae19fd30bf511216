//! The fault matrix's Azure Arc faults.

use super::*;

pub(super) async fn arc_no_challenge() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, CANARY)).await;
    let (time, _) = clock.instant_time_source(0.5);
    let cred = mi(
        env(&[
            ("IDENTITY_ENDPOINT", &server.url("/arc/token")),
            ("IMDS_ENDPOINT", &server.url("")),
        ]),
        time,
        5,
    );
    assert_eq!(cred.source_kind(), SourceKind::AzureArc);
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::AzureArc),
            Unavailable::InvalidResponse { problem } if problem.contains("`401` Basic challenge")
        ),
        "{err:?}"
    );
    assert_names(&err, &["Azure Arc", "challenge"]);
    assert_eq!(server.count(), 1);
}

pub(super) async fn arc_500_then_token() {
    let dir = TempDir::new("arc");
    let emu = Emulator::builder()
        .arc_key_directory(dir.path())
        .start()
        .await
        .unwrap();
    emu.push_fault(
        Endpoint::AzureArc,
        EmuFault::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    );
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ManagedIdentityCredential::builder()
        .environment(env(&[
            ("IDENTITY_ENDPOINT", &emu.arc_endpoint()),
            ("IMDS_ENDPOINT", &emu.base_url()),
        ]))
        .arc_key_directory(dir.path())
        .time_source(time)
        .build()
        .unwrap();
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(
        emu.requests(Endpoint::AzureArc),
        3,
        "500, then the challenge and its answer"
    );
    assert_eq!(secs(&sleeps.sleeps()), [1]);
}
