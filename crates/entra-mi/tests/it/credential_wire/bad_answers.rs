//! Bad answers, refusals and unreachable endpoints: typed errors without secrets.

use super::*;

/// What a bad success answer becomes: always `Unavailable`, with the reason typed.
#[tokio::test]
async fn bad_answers_get_typed_errors_without_secrets() {
    let now = now_unix();
    type Check = fn(&Unavailable) -> bool;
    let cases: Vec<(&str, Reply, Check)> = vec![
        (
            "HTML page",
            Reply::body(
                200,
                "text/html",
                format!("<html><body>proxy {CANARY}</body></html>"),
            ),
            |u| matches!(u, Unavailable::Html { status: 200 }),
        ),
        (
            "HTML without content type",
            Reply::body(
                200,
                "application/octet-stream",
                "  <!DOCTYPE html><p>hi</p>",
            ),
            |u| matches!(u, Unavailable::Html { .. }),
        ),
        (
            "plain text",
            Reply::body(200, "text/plain", format!("token={CANARY}")),
            |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("malformed")),
        ),
        (
            "truncated JSON",
            Reply::body(
                200,
                "application/json",
                format!("{{\"access_token\":\"{CANARY}\",\"expires_in\":\"36"),
            ),
            |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("truncated")),
        ),
        (
            "JSON array",
            Reply::json(200, json!([CANARY])),
            |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("array")),
        ),
        (
            "empty body",
            Reply::body(200, "application/json", ""),
            |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("empty")),
        ),
        (
            "non-UTF-8 bytes",
            Reply::body(200, "application/json", vec![b'{', 0xff, 0xfe, b'}']),
            |u| matches!(u, Unavailable::NotJson { what, .. } if what.contains("UTF-8")),
        ),
        (
            "missing access_token",
            Reply::json(200, json!({"expires_in": "3600"})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("`access_token` is missing")),
        ),
        (
            "access_token a number",
            Reply::json(200, json!({"access_token": 5, "expires_in": "3600"})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("is a number")),
        ),
        (
            "access_token with spaces",
            Reply::json(200, json!({"access_token": "a b", "expires_in": "3600"})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("HTTP header")),
        ),
        (
            "no expiry",
            Reply::json(200, json!({"access_token": CANARY})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("neither")),
        ),
        (
            "expires_on in the past",
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": (now - 10).to_string()}),
            ),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("already-expired token")),
        ),
        (
            "expires_in zero",
            Reply::json(200, json!({"access_token": CANARY, "expires_in": "0"})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("zero")),
        ),
        (
            "expires_in negative",
            Reply::json(200, json!({"access_token": CANARY, "expires_in": -5})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("negative")),
        ),
        (
            "expires_in mistyped",
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_in": {"s": CANARY}}),
            ),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("an object")),
        ),
        (
            "expires_in not digits",
            Reply::json(200, json!({"access_token": CANARY, "expires_in": CANARY})),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("not a whole number")),
        ),
        (
            "absurd lifetime",
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": (now + 10 * 365 * 86400).to_string()}),
            ),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("longer than")),
        ),
        (
            "expires_on garbage",
            Reply::json(
                200,
                json!({"access_token": CANARY, "expires_on": "next tuesday"}),
            ),
            |u| matches!(u, Unavailable::InvalidResponse { problem } if problem.contains("no known format")),
        ),
        (
            "body over the cap, streamed",
            Reply::Huge { total: 4 << 20 },
            |u| matches!(u, Unavailable::BodyTooLarge { limit: 65536 }),
        ),
        (
            "content-length over the cap",
            Reply::body(200, "application/json", vec![b' '; 70_000]),
            |u| matches!(u, Unavailable::BodyTooLarge { .. }),
        ),
        (
            "redirect",
            Reply::body(302, "text/plain", "").with_header("Location", "http://127.0.0.1:1/steal"),
            |u| matches!(u, Unavailable::Redirect { status: 302 }),
        ),
        ("connection closed", Reply::Close, |u| {
            matches!(
                u,
                Unavailable::Transport { .. } | Unavailable::Connect { .. }
            )
        }),
        (
            "garbage status line",
            Reply::Raw(b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
            |u| matches!(u, Unavailable::Transport { .. }),
        ),
        (
            "proxy's 502 page",
            Reply::body(502, "text/html", "<html>Bad Gateway</html>"),
            |u| {
                matches!(
                    u,
                    Unavailable::Status {
                        status: 502,
                        detail: None,
                        ..
                    }
                )
            },
        ),
        (
            "403 without error body",
            Reply::body(403, "text/plain", "forbidden"),
            |u| matches!(u, Unavailable::UnexpectedStatus { status: 403 }),
        ),
        (
            "Docker Desktop's 403",
            Reply::json(
                403,
                json!({"error": "forbidden", "error_description": "A socket operation was attempted to an unreachable network"}),
            ),
            |u| matches!(u, Unavailable::Status { status: 403, .. }),
        ),
    ];
    for (name, reply, check) in cases {
        let server = RawServer::start(reply).await;
        let err = imds(&server).get_token(&graph()).await.unwrap_err();
        assert_no_canary(&err);
        match &err {
            Error::Source(family)
                if let entra_mi::error::SourceError::Unavailable {
                    source_kind: SourceKind::Imds,
                    endpoint,
                    reason,
                } = family.as_ref() =>
            {
                assert!(check(reason), "{name}: unexpected reason {reason:?}");
                assert!(
                    endpoint.ends_with("/metadata/identity/oauth2/token"),
                    "{name}: {endpoint}"
                );
                assert!(
                    !endpoint.contains('?'),
                    "{name}: the endpoint in errors carries no query"
                );
            }
            other => panic!("{name}: expected Unavailable, got {other:?}"),
        }
        assert!(err.is_unavailable());
        if name == "redirect" {
            assert_eq!(server.count(), 1, "the redirect must not be followed");
        }
    }
}

#[tokio::test]
async fn refused_requests_carry_the_service_words_and_are_not_retried() {
    let server = RawServer::start(Reply::json(
        400,
        json!({"error": "invalid_request", "error_description": "Identity not found", "access_token": CANARY}),
    ))
    .await;
    let cred = ManagedIdentityCredential::builder()
        .environment(imds_env(&server))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert_no_canary(&err);
    match &err {
        Error::Source(family)
            if let entra_mi::error::SourceError::Refused { error, .. } = family.as_ref() =>
        {
            assert_eq!(error.status, 400);
            assert_eq!(error.code.as_deref(), Some("invalid_request"));
            assert!(error.is_identity_not_found());
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_unavailable());
    assert_eq!(server.count(), 1, "400 is not retried");
    assert!(err.to_string().contains("Identity not found"), "{err}");

    // App Service's error body shape.
    let server = RawServer::start(Reply::json(
        400,
        json!({"statusCode": 400, "message": "Unable to load the proper Managed Identity."}),
    ))
    .await;
    let cred = ManagedIdentityCredential::builder()
        .environment(app_service_env(&server, "x"))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("statusCode 400"), "{err}");
    assert!(err.to_string().contains("Unable to load"), "{err}");
}

#[tokio::test]
async fn unreachable_and_hanging_endpoints() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = Environment::from_vars([(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://127.0.0.1:{port}"),
    )]);
    let cred = ManagedIdentityCredential::builder()
        .environment(env)
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Unavailable {
            reason: Unavailable::Connect { .. },
            ..
        })),
        "{err:?}"
    );

    let server = RawServer::start(Reply::Hang).await;
    let cred = ManagedIdentityCredential::builder()
        .environment(imds_env(&server))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Source(family) if matches!(&**family, entra_mi::error::SourceError::Unavailable {
            reason: Unavailable::Timeout(_),
            ..
        })),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
