//! The fault matrix's App Service faults.

use super::*;

fn app_service_token(clock: &ManualClock, token: &str) -> Reply {
    Reply::json(
        200,
        json!({"access_token": token, "expires_on": (unix(clock) + 3600).to_string(), "resource": "https://graph.microsoft.com", "token_type": "Bearer"}),
    )
}

pub(super) async fn app_service_redirect() {
    let clock = ManualClock::new();
    let target = RawServer::start(app_service_token(&clock, CANARY)).await;
    let server = RawServer::start(
        Reply::body(307, "text/plain", "").with_header("Location", &target.url("/steal")),
    )
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::AppService),
        &Unavailable::Redirect { status: 307 }
    );
    assert_names(&err, &["App Service", "HTTP 307 redirect"]);
    assert_eq!(server.count(), 1);
    assert_eq!(
        target.count(),
        0,
        "the identity header never reached the target"
    );
}

pub(super) async fn app_service_5xx_sequence() {
    let clock = ManualClock::new();
    let server = RawServer::start(app_service_token(&clock, "tok")).await;
    for status in [500, 503, 504] {
        server.push(Reply::json(
            status,
            json!({"statusCode": status, "message": "busy"}),
        ));
    }
    let (time, sleeps) = clock.instant_time_source(0.5);
    let token = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok");
    assert_eq!(server.count(), 4);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2, 4]);
}

pub(super) async fn app_service_502() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(
        502,
        json!({"statusCode": 502, "message": "Bad gateway"}),
    ))
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::AppService),
            Unavailable::Status {
                status: 502,
                attempts: 1,
                detail: Some(_)
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &["HTTP 502 after 1 attempt(s)", "Bad gateway"]);
    assert_eq!(server.count(), 1, "App Service does not retry 502");
}

pub(super) async fn app_service_html() {
    let server = RawServer::start(Reply::body(
        200,
        "text/html; charset=utf-8",
        format!("<html><body>Sign in to the proxy {CANARY}</body></html>"),
    ))
    .await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(app_service_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::AppService),
        &Unavailable::Html { status: 200 }
    );
    assert_names(&err, &["HTML page"]);
}
