//! The retry rules, on virtual time.

use super::*;

fn imds_with_clock(
    server: &RawServer,
    clock: &ManualClock,
) -> (ManagedIdentityCredential, entra_mi::time::InstantSleep) {
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = ManagedIdentityCredential::builder()
        .environment(imds_env(server))
        .time_source(time)
        .build()
        .unwrap();
    (cred, sleeps)
}

fn body_for(clock: &ManualClock) -> serde_json::Value {
    let now = clock.system_now_unix();
    imds_body(CANARY, now, 3600)
}

trait UnixNow {
    fn system_now_unix(&self) -> u64;
}
impl UnixNow for ManualClock {
    fn system_now_unix(&self) -> u64 {
        use entra_mi::time::Clock;
        self.system_now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
}

#[tokio::test]
async fn imds_410_is_retried_for_at_least_70_seconds() {
    // IMDS says 410 for 75 s of (virtual) time, then answers.
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(410, json!({}))).await;
    let (cred, sleeps) = imds_with_clock(&server, &clock);
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(err.status(), Some(410));
    assert!(
        sleeps.total() >= Duration::from_secs(70),
        "retried for {:?}",
        sleeps.total()
    );
    assert!(
        sleeps.total() <= Duration::from_secs(100),
        "bounded by the deadline: {:?}",
        sleeps.total()
    );
    assert!(
        server.count() > 6,
        "more than the usual 5 retries: {}",
        server.count()
    );

    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(200, body_for(&clock))).await;
    for _ in 0..7 {
        server.push(Reply::json(410, json!({})));
    }
    let (cred, sleeps) = imds_with_clock(&server, &clock);
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(server.count(), 8);
    assert!(sleeps.total() >= Duration::from_secs(60));
}

#[tokio::test]
async fn retry_after_is_honoured_and_5xx_then_success() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(200, body_for(&clock))).await;
    server.push(Reply::json(429, json!({"error": "throttled"})).with_header("Retry-After", "7"));
    server.push(Reply::json(
        500,
        json!({"error": "unknown", "error_description": "boom"}),
    ));
    server.push(Reply::body(503, "text/plain", "busy"));
    let (cred, sleeps) = imds_with_clock(&server, &clock);
    cred.get_token(&graph()).await.unwrap();
    assert_eq!(server.count(), 4);
    let s = sleeps.sleeps();
    assert_eq!(s.len(), 3);
    assert!(
        s[0] >= Duration::from_secs(7),
        "Retry-After honoured: {s:?}"
    );
    assert!(
        s[1] >= Duration::from_millis(1600) && s[2] >= Duration::from_millis(3200),
        "exponential: {s:?}"
    );
}

#[tokio::test]
async fn retries_stop_at_the_caller_deadline_and_the_retry_budget() {
    // A retry deadline as long as can be is no overflow: retries then stop at their count.
    let server = RawServer::start(Reply::json(503, json!({"error": "busy"}))).await;
    let (time, _) = ManualClock::new().instant_time_source(0.5);
    let err = ManagedIdentityCredential::builder()
        .environment(imds_env(&server))
        .time_source(time)
        .retry(
            RetryOptions::default()
                .max_retries(2)
                .deadline(Duration::MAX),
        )
        .build()
        .unwrap()
        .get_token(&graph().with_deadline(Duration::MAX))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(server.count(), 3);

    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(503, json!({"error": "busy"}))).await;
    let (cred, sleeps) = imds_with_clock(&server, &clock);
    let err = cred
        .get_token(&graph().with_deadline(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        sleeps.total() < Duration::from_secs(5),
        "{:?}",
        sleeps.sleeps()
    );
    // The caller's deadline ended it: that is no "unavailable" (a chain stops), and the last
    // failure is kept.
    match &err {
        Error::Deadline(family)
            if let entra_mi::error::DeadlineError::Caller {
                deadline,
                last: Some(last),
                ..
            } = family.as_ref() =>
        {
            assert_eq!(*deadline, Duration::from_secs(5));
            assert!(
                matches!(last, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Unavailable {
                    reason: Unavailable::Status { status: 503, .. },
                    ..
                })),
                "{err}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_unavailable());
    assert!(err.to_string().contains("caller's deadline of 5s"), "{err}");

    // A Retry-After longer than the time left ends the retries at once.
    let server =
        RawServer::start(Reply::json(429, json!({})).with_header("Retry-After", "600")).await;
    let (cred, sleeps) = imds_with_clock(&server, &ManualClock::new());
    cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(sleeps.sleeps().is_empty());

    // An absurd Retry-After (as seconds or as a far date) is cut, not an overflow: the same.
    for absurd in ["18446744073709551615", "Fri, 31 Dec 9999 23:59:59 GMT"] {
        let server =
            RawServer::start(Reply::json(429, json!({})).with_header("Retry-After", absurd)).await;
        let (cred, sleeps) = imds_with_clock(&server, &ManualClock::new());
        let err = cred.get_token(&graph()).await.unwrap_err();
        assert!(err.to_string().contains("429"), "{absurd}: {err}");
        assert_eq!(server.count(), 1, "{absurd}");
        assert!(sleeps.sleeps().is_empty(), "{absurd}");
    }

    // Without a deadline: 1 attempt + 5 retries.
    let server = RawServer::start(Reply::json(500, json!({}))).await;
    let (cred, _) = imds_with_clock(&server, &ManualClock::new());
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(server.count(), 6);
    assert!(err.to_string().contains("after 6 attempt(s)"), "{err}");
}

#[tokio::test]
async fn app_service_retries_only_its_own_statuses() {
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    for (status, expected_attempts) in [(410u16, 1usize), (502, 1), (400, 1), (500, 6), (429, 6)] {
        let server = RawServer::start(Reply::json(
            status,
            json!({"statusCode": status, "message": "no"}),
        ))
        .await;
        let cred = ManagedIdentityCredential::builder()
            .environment(app_service_env(&server, "x"))
            .time_source(time.clone())
            .build()
            .unwrap();
        cred.get_token(&graph()).await.unwrap_err();
        assert_eq!(server.count(), expected_attempts, "status {status}");
    }
}
