//! The fault matrix's Azure ML (2017-09-01 protocol) faults.

use super::*;

pub(super) async fn azure_ml_wrong_secret() {
    let emu = Emulator::builder().start().await.unwrap();
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[
            ("MSI_ENDPOINT", &emu.msi_endpoint()),
            ("MSI_SECRET", HEADER_SECRET),
        ]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert_eq!(refused(&err, SourceKind::AzureMl), 401);
    assert_names(&err, &["Azure ML", "HTTP 401"]);
    assert_eq!(emu.requests(Endpoint::AzureMl), 1, "401 is not retried");
}

pub(super) async fn azure_ml_date_in_the_past() {
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": CANARY, "expires_on": "01/01/2020 12:00:00 AM +00:00", "resource": "https://graph.microsoft.com", "token_type": "Bearer"}),
    ))
    .await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[
            ("MSI_ENDPOINT", &server.url("/MSI/auth")),
            ("MSI_SECRET", HEADER_SECRET),
        ]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::AzureMl),
            Unavailable::InvalidResponse { problem } if problem.contains("already-expired token")
        ),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}
