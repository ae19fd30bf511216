//! The fault matrix's IMDS faults.

use super::*;

pub(super) async fn imds_gone_for_70_s() {
    // The endpoint answers 410 until 70 s of virtual time have passed, then a token. Time is
    // stepped one second at a time; the credential's sleeps complete only when it moves.
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(410, json!({"error": "gone"}))).await;
    let cred = mi(imds_env(&server), clock.time_source(0.5), 5);
    let start = clock.monotonic();
    let task = tokio::spawn(async move { cred.get_token(&graph()).await });
    let mut switched = false;
    for _ in 0..200 {
        assert!(
            eventually(5, || clock.pending_sleeps() > 0 || task.is_finished()).await,
            "the credential neither sleeps nor ends"
        );
        if task.is_finished() {
            break;
        }
        if !switched
            && clock.monotonic() - start + Duration::from_secs(1) >= Duration::from_secs(70)
        {
            server.set_fallback(token_reply(&clock, "tok-after-gone"));
            switched = true;
        }
        clock.advance(Duration::from_secs(1));
    }
    let token = task.await.unwrap().unwrap();
    assert_eq!(token.secret(), "tok-after-gone");
    let waited = clock.monotonic() - start;
    assert!(
        (Duration::from_secs(70)..=Duration::from_secs(100)).contains(&waited),
        "{waited:?}"
    );
    // Asked at 0, 1, 3, 7, 15, 31, 61 s (410 each time), then at 91 s: more than 5 retries.
    assert_eq!(server.count(), 8);
}

pub(super) async fn imds_429_with_retry_after() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, "tok")).await;
    server.push(Reply::json(429, json!({"error": "throttled"})).with_header("Retry-After", "7"));
    let (time, sleeps) = clock.instant_time_source(0.5);
    let token = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok");
    assert_eq!(server.count(), 2);
    assert_eq!(secs(&sleeps.sleeps()), [7], "Retry-After honoured");
}

pub(super) async fn imds_429_without_retry_after() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(429, json!({"error": "throttled"}))).await;
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::Imds),
            Unavailable::Status {
                status: 429,
                attempts: 6,
                ..
            }
        ),
        "{err:?}"
    );
    assert_names(&err, &["IMDS", "HTTP 429 after 6 attempt(s)", "throttled"]);
    assert_eq!(server.count(), 6);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2, 4, 8, 16], "exponential");
}

pub(super) async fn imds_5xx_sequence() {
    let clock = ManualClock::new();
    let server = RawServer::start(token_reply(&clock, "tok")).await;
    for status in [500, 502, 503, 504] {
        server.push(Reply::json(status, json!({"error": "server_error"})));
    }
    let (time, sleeps) = clock.instant_time_source(0.5);
    let token = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok");
    assert_eq!(server.count(), 5);
    assert_eq!(secs(&sleeps.sleeps()), [1, 2, 4, 8]);
}

async fn imds_refused_once(status: u16, body: serde_json::Value, needles: &[&str]) -> Error {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::json(status, body)).await;
    let (time, sleeps) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "{status} is not retried");
    assert!(sleeps.sleeps().is_empty());
    assert_eq!(err.status(), Some(status));
    assert_names(&err, needles);
    err
}

pub(super) async fn imds_400() {
    let err = imds_refused_once(
        400,
        json!({"error": "invalid_request", "error_description": "Identity not found"}),
        &["refused", "HTTP 400", "Identity not found"],
    )
    .await;
    assert_eq!(refused(&err, SourceKind::Imds), 400);
}

pub(super) async fn imds_401() {
    let err = imds_refused_once(
        401,
        json!({"error": "unauthorized", "error_description": "Required metadata header not specified"}),
        &["refused", "HTTP 401", "metadata header"],
    )
    .await;
    assert_eq!(refused(&err, SourceKind::Imds), 401);
}

pub(super) async fn imds_403() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::body(403, "text/plain", "forbidden")).await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "403 is not retried");
    assert_eq!(
        unavailable(&err, SourceKind::Imds),
        &Unavailable::UnexpectedStatus { status: 403 }
    );
    assert_names(&err, &["HTTP 403 without a recognisable error body"]);
}

pub(super) async fn imds_connection_refused() {
    let refused = support::RefusedPort::new();
    let addr = refused.addr;
    let clock = ManualClock::new();
    let (time, sleeps) = clock.instant_time_source(0.5);
    let cred = mi(
        env(&[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            &format!("http://{addr}"),
        )]),
        time,
        5,
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::Imds),
            Unavailable::Connect { .. }
        ),
        "{err:?}"
    );
    let addr = addr.to_string();
    assert_names(&err, &["connection failed", addr.as_str()]);
    assert_eq!(sleeps.sleeps().len(), 5, "transport failures are retried");
}

pub(super) async fn imds_hang() {
    let server = RawServer::start(Reply::Hang).await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let started = std::time::Instant::now();
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph().with_deadline(Duration::from_millis(300)))
        .await
        .unwrap_err();
    let last = past_deadline(&err, Duration::from_millis(300));
    assert_eq!(
        unavailable(last, SourceKind::Imds),
        &Unavailable::Timeout(Duration::from_millis(300)),
        "the caller's deadline bounds the attempt"
    );
    assert_names(&err, &["no answer within 300ms"]);
    // The server records the request when it has read it, which on a loaded machine can be
    // after the client gave up: wait (bounded) for that one request, then check there is no
    // second.
    for _ in 0..100 {
        if server.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.count(), 1, "no retry fits in the deadline");
    assert!(started.elapsed() < Duration::from_secs(15), "bounded");
}

pub(super) async fn imds_closed_mid_body() {
    let cut = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\nConnection: close\r\n\r\n{{\"access_token\":\"{CANARY}"
    );
    let server = RawServer::start(Reply::Raw(cut.into_bytes())).await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert!(
        matches!(
            unavailable(&err, SourceKind::Imds),
            Unavailable::Transport { .. }
        ),
        "{err:?}"
    );
    assert_names(&err, &["connection broke"]);
    assert_eq!(server.count(), 6, "retried like any transport failure");
}

/// One request to an IMDS that answers `reply`; the error reason must satisfy `check` and
/// its text name `needles`. Not retried.
async fn imds_bad_answer(
    reply: impl FnOnce(&ManualClock) -> Reply,
    check: fn(&Unavailable) -> bool,
    needles: &[&str],
) {
    let clock = ManualClock::new();
    let server = RawServer::start(reply(&clock)).await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    let reason = unavailable(&err, SourceKind::Imds);
    assert!(check(reason), "unexpected reason {reason:?}");
    assert_names(&err, needles);
    assert_eq!(server.count(), 1, "a bad answer is not retried");
}

pub(super) async fn imds_truncated_json() {
    imds_bad_answer(
        |_| {
            Reply::body(
                200,
                "application/json",
                format!("{{\"access_token\":\"{CANARY}\",\"expires_in\":\"36"),
            )
        },
        |u| matches!(u, Unavailable::NotJson { status: 200, what } if what.contains("truncated")),
        &["not a JSON object", "truncated JSON"],
    )
    .await;
}

pub(super) async fn imds_one_gib_body() {
    let server = Streamer::start(GIB).await;
    let clock = ManualClock::new();
    let (time, _) = clock.instant_time_source(0.5);
    let cred = mi(
        env(&[(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            &format!("http://{}", server.addr),
        )]),
        time,
        0,
    );
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::Imds),
        &Unavailable::BodyTooLarge { limit: CAP }
    );
    assert_names(&err, &["larger than 65536 bytes"]);
    assert!(
        eventually(10, || server.hung_up.load(Ordering::SeqCst)).await,
        "the client hung up"
    );
    let sent = server.sent.load(Ordering::SeqCst);
    assert!(
        sent < 64 << 20,
        "the client stopped reading at the cap; only socket buffers were filled: {sent} bytes"
    );
}

pub(super) async fn imds_json_as_text_plain() {
    let clock = ManualClock::new();
    let server = RawServer::start(Reply::body(
        200,
        "text/plain; charset=utf-8",
        imds_body("tok-plain", unix(&clock), 3600).to_string(),
    ))
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let token = mi(imds_env(&server), time, 0)
        .get_token(&graph())
        .await
        .unwrap();
    assert_eq!(token.secret(), "tok-plain");
}

pub(super) async fn imds_json_as_html() {
    imds_bad_answer(
        |c| {
            Reply::body(
                200,
                "text/html",
                imds_body(CANARY, unix(c), 3600).to_string(),
            )
        },
        |u| matches!(u, Unavailable::Html { status: 200 }),
        &["HTML page instead of a JSON token response"],
    )
    .await;
}

pub(super) async fn imds_missing_access_token() {
    imds_bad_answer(
        |c| {
            let mut body = imds_body("x", unix(c), 3600);
            body.as_object_mut().unwrap().remove("access_token");
            Reply::json(200, body)
        },
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("`access_token` is missing")),
        &["invalid token response", "`access_token` is missing"],
    )
    .await;
}

pub(super) async fn imds_expires_on_past() {
    imds_bad_answer(
        |c| {
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": (unix(c) - 60).to_string()}),
            )
        },
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("already-expired token")),
        &["the endpoint returned an already-expired token"],
    )
    .await;
}

pub(super) async fn imds_expires_on_zero() {
    imds_bad_answer(
        |_| Reply::json(200, json!({"access_token": CANARY, "expires_on": "0"})),
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("before 2001")),
        &["`expires_on` is 0", "there is no `expires_in`"],
    )
    .await;
}

pub(super) async fn imds_expires_on_far_future() {
    imds_bad_answer(
        |c| {
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": unix(c) + 100 * 365 * 86_400}),
            )
        },
        |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("longer than")),
        &["longer than", "mis-stated"],
    )
    .await;
}

pub(super) async fn imds_non_utf8() {
    imds_bad_answer(
        |_| {
            Reply::body(
                200,
                "application/json",
                b"{\"access_token\":\"\xff\xfe\xfd\"}".to_vec(),
            )
        },
        |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("UTF-8")),
        &["bytes that are not UTF-8"],
    )
    .await;
}

pub(super) async fn imds_redirect() {
    let clock = ManualClock::new();
    let target = RawServer::start(token_reply(&clock, CANARY)).await;
    let server = RawServer::start(
        Reply::body(302, "text/plain", "").with_header("Location", &target.url("/steal")),
    )
    .await;
    let (time, _) = clock.instant_time_source(0.5);
    let err = mi(imds_env(&server), time, 5)
        .get_token(&graph())
        .await
        .unwrap_err();
    assert_eq!(
        unavailable(&err, SourceKind::Imds),
        &Unavailable::Redirect { status: 302 }
    );
    assert_names(&err, &["HTTP 302 redirect", "not followed"]);
    assert_eq!(server.count(), 1);
    assert_eq!(target.count(), 0, "the redirect was not followed");
}
