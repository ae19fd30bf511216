//! The fault matrix's Cloud Shell faults.

use super::*;

pub(super) async fn cloud_shell_audience() {
    let server = RawServer::start(Reply::json(
        400,
        json!({"error": "invalid_request", "error_description": "AudienceNotSupported: Audience https://graph.microsoft.com is not a supported MSI token audience."}),
    ))
    .await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[("MSI_ENDPOINT", &server.url("/oauth2/token"))]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert_eq!(refused(&err, SourceKind::CloudShell), 400);
    assert_names(
        &err,
        &["Cloud Shell", "AudienceNotSupported", "az login --scope"],
    );
    assert_eq!(server.count(), 1);
}

pub(super) async fn cloud_shell_closed() {
    let server = RawServer::start(Reply::Close).await;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = mi(
        env(&[("MSI_ENDPOINT", &server.url("/oauth2/token"))]),
        time,
        5,
    )
    .get_token(&graph())
    .await
    .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::CloudShell),
            Unavailable::Transport { .. } | Unavailable::Connect { .. }
        ),
        "{err:?}"
    );
    assert_eq!(server.count(), 6);
    assert_eq!(sleeps.sleeps().len(), 5);
}
