//! The managed-identity credential on the wire, against a scripted loopback server: request
//! shapes, every response shape, every kind of bad answer, and the retry rules.

use entra_mi_test_support as support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use entra_mi::error::Unavailable;
use entra_mi::managed_identity::SourceKind;
use entra_mi::time::ManualClock;
use entra_mi::{
    Audience, Environment, Error, ManagedIdentityCredential, RetryOptions, TokenCredential,
    TokenProvider, TokenRequest,
};
use serde_json::json;
use support::{RawServer, Reply, imds_body};

const CANARY: &str = "eyJ0eXAiOiJKV1QifQ.CANARY-SECRET-TOKEN.c2ln";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn imds_env(server: &RawServer) -> Environment {
    Environment::from_vars([(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://{}/", server.addr),
    )])
}

fn app_service_env(server: &RawServer, secret: &str) -> Environment {
    Environment::from_vars([
        ("IDENTITY_ENDPOINT", server.url("/msi/token")),
        ("IDENTITY_HEADER", secret.to_string()),
    ])
}

fn imds(server: &RawServer) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(imds_env(server))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn imds_with(server: &RawServer, time: entra_mi::time::TimeSource) -> ManagedIdentityCredential {
    ManagedIdentityCredential::builder()
        .environment(imds_env(server))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .time_source(time)
        .build()
        .unwrap()
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

/// Asserts that nothing about `err` shows the canary token.
fn assert_no_canary(err: &Error) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("CANARY"), "secret leaked: {shown}");
}

#[tokio::test]
async fn imds_request_has_the_documented_shape() {
    let server = RawServer::start(Reply::json(200, imds_body(CANARY, now_unix(), 3600))).await;
    let cred = imds(&server);
    assert_eq!(cred.source_kind(), SourceKind::Imds);
    let arm = TokenRequest::new(Audience::new("https://management.azure.com/").unwrap());
    let token = cred.get_token(&arm).await.unwrap();
    assert_eq!(token.secret(), CANARY);
    assert_eq!(token.token_type(), "Bearer");
    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.path(), "/metadata/identity/oauth2/token");
    assert_eq!(req.query("api-version").as_deref(), Some("2018-02-01"));
    assert_eq!(
        req.query("resource").as_deref(),
        Some("https://management.azure.com/")
    );
    assert_eq!(req.header("Metadata"), Some("true"));
    for p in ["client_id", "object_id", "msi_res_id"] {
        assert_eq!(req.query(p), None, "{p} must be absent for system-assigned");
    }
}

#[tokio::test]
async fn user_assigned_ids_are_rendered_per_source() {
    let guid = "11111111-2222-3333-4444-555555555555";
    let rid = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
    let server = RawServer::start(Reply::json(200, imds_body(CANARY, now_unix(), 3600))).await;
    let cases = [
        (
            ManagedIdentityCredential::builder().client_id(guid),
            "client_id",
            "client_id",
            guid,
        ),
        (
            ManagedIdentityCredential::builder().object_id(guid),
            "object_id",
            "principal_id",
            guid,
        ),
        (
            ManagedIdentityCredential::builder().resource_id(rid),
            "msi_res_id",
            "mi_res_id",
            rid,
        ),
    ];
    for (builder, imds_param, app_param, value) in cases {
        let cred = builder
            .clone()
            .environment(imds_env(&server))
            .build()
            .unwrap();
        cred.get_token(&graph()).await.unwrap();
        let req = server.requests().pop().unwrap();
        assert_eq!(req.query(imds_param).as_deref(), Some(value));

        let cred = builder
            .environment(app_service_env(&server, "s3cret"))
            .build()
            .unwrap();
        assert_eq!(cred.source_kind(), SourceKind::AppService);
        cred.get_token(&graph()).await.unwrap();
        let req = server.requests().pop().unwrap();
        assert_eq!(req.query(app_param).as_deref(), Some(value));
        assert_eq!(req.query("api-version").as_deref(), Some("2019-08-01"));
        assert_eq!(req.header("X-IDENTITY-HEADER"), Some("s3cret"));
    }
}

#[tokio::test]
async fn app_service_reads_the_rotated_identity_header_per_request() {
    let server = RawServer::start(Reply::json(
        200,
        json!({"access_token": CANARY, "expires_on": (now_unix() + 3600).to_string(), "resource": "https://graph.microsoft.com", "token_type": "Bearer"}),
    ))
    .await;
    let env = app_service_env(&server, "first");
    let cred = ManagedIdentityCredential::builder()
        .environment(env.clone())
        .build()
        .unwrap();
    cred.get_token(&graph()).await.unwrap();
    env.set("IDENTITY_HEADER", "second");
    cred.get_token(&graph()).await.unwrap();
    let seen: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("X-IDENTITY-HEADER").unwrap().to_string())
        .collect();
    assert_eq!(seen, ["first", "second"]);
    env.remove("IDENTITY_HEADER");
    let err = cred.get_token(&graph()).await.unwrap_err();
    assert!(
        matches!(err, Error::Configuration(entra_mi::error::ConfigurationError::Setting { ref setting, .. }) if setting == "IDENTITY_HEADER"),
        "{err}"
    );
}

/// Every documented shape of a success body parses to the right expiry.
#[tokio::test]
async fn every_response_shape_is_accepted() {
    let now = now_unix();
    let date_in_an_hour = {
        // MM/DD/YYYY hh:mm:ss AM +00:00, one hour ahead (to the second).
        let t = now + 3600;
        let days = t / 86400;
        let secs = t % 86400;
        let (y, m, d) = civil_from_days(days as i64);
        let (h, min, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
        let (h12, ampm) = match h {
            0 => (12, "AM"),
            1..=11 => (h, "AM"),
            12 => (12, "PM"),
            _ => (h - 12, "PM"),
        };
        (
            format!("{m:02}/{d:02}/{y} {h12:02}:{min:02}:{s:02} {ampm} +00:00"),
            format!("{m}/{d}/{y} {h:02}:{min:02}:{s:02} +00:00"),
            format!("{y}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z"),
        )
    };
    let bodies = [
        ("IMDS strings", imds_body(CANARY, now, 3600)),
        (
            "numbers",
            json!({"access_token": CANARY, "expires_in": 3600, "expires_on": now + 3600}),
        ),
        (
            "expires_on string only",
            json!({"access_token": CANARY, "expires_on": (now + 3600).to_string()}),
        ),
        (
            "expires_on number only",
            json!({"access_token": CANARY, "expires_on": now + 3600}),
        ),
        (
            "legacy date with AM/PM",
            json!({"access_token": CANARY, "expires_on": date_in_an_hour.0}),
        ),
        (
            "legacy date 24h",
            json!({"access_token": CANARY, "expires_on": date_in_an_hour.1}),
        ),
        (
            "RFC 3339",
            json!({"access_token": CANARY, "expires_on": date_in_an_hour.2}),
        ),
        (
            "empty expires_in, epoch expires_on",
            json!({"access_token": CANARY, "expires_in": "", "expires_on": (now + 3600).to_string()}),
        ),
        (
            "token_type missing",
            json!({"access_token": CANARY, "expires_in": "3600"}),
        ),
    ];
    for (name, body) in bodies {
        let server = RawServer::start(Reply::json(200, body)).await;
        let token = imds(&server)
            .get_token(&graph())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let lifetime = token.expires_on_unix() as i64 - now_unix() as i64;
        assert!(
            (3590..=3601).contains(&lifetime),
            "{name}: lifetime {lifetime}"
        );
        assert_eq!(token.token_type(), "Bearer", "{name}");
    }
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Both expiry fields: the earlier deadline is kept, the server's `expires_on` is reported,
/// and `refresh_in` is honoured.
#[tokio::test]
async fn the_earlier_of_expires_in_and_expires_on_is_kept_and_refresh_in_honoured() {
    let now = now_unix();
    // The endpoint's clock is half an hour behind ours: its expires_on comes first.
    let body = json!({"access_token": CANARY, "expires_in": "3600", "expires_on": (now + 3600 - 1800).to_string(), "refresh_in": "1200"});
    let server = RawServer::start(Reply::json(200, body)).await;
    let token = imds(&server).get_token(&graph()).await.unwrap();
    assert_eq!(token.expires_on_unix(), now + 1800);
    let refresh = token
        .refresh_on()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((1195..=1201).contains(&(refresh - now as i64)));
    // Behind a provider, the earlier deadline is the one the cache schedules by.
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let provider = TokenProvider::builder(imds_with(&server, clock.time_source(0.0)))
        .time_source(clock.time_source(0.0))
        .build();
    let token = provider.token(&Audience::microsoft_graph()).await.unwrap();
    assert_eq!(token.expires_on_unix(), now + 1800);
    clock.advance(Duration::from_secs(1800 - 30));
    assert!(
        provider
            .cached_header(&Audience::microsoft_graph())
            .is_none(),
        "served past the earlier deadline"
    );
}

/// An `expires_on` already in the past is refused even when `expires_in` is present: the
/// token is never returned, cached or served.
#[tokio::test]
async fn an_already_expired_token_is_refused_even_with_expires_in() {
    let now = now_unix();
    // The endpoint's clock is two hours behind ours (or ours ahead): the token it hands out
    // expired an hour ago.
    let body = json!({"access_token": CANARY, "expires_in": "3600", "expires_on": (now + 3600 - 7200).to_string()});
    let server = RawServer::start(Reply::json(200, body)).await;
    let err = imds(&server).get_token(&graph()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            &err,
            Error::Source(entra_mi::error::SourceError::Unavailable {
                reason: Unavailable::InvalidResponse { .. },
                ..
            })
        ),
        "{err:?}"
    );
    assert!(text.contains("already-expired token"), "{text}");
    assert!(!text.contains(CANARY), "{text}");
    let provider = TokenProvider::new(imds(&server));
    assert!(provider.header(&Audience::microsoft_graph()).await.is_err());
    assert!(
        provider
            .cached_header(&Audience::microsoft_graph())
            .is_none()
    );
}

/// A bare `"86400"` in `expires_on` is no point in time and no documented lifetime: refused.
#[tokio::test]
async fn a_small_expires_on_without_an_agreeing_expires_in_is_refused() {
    let body = json!({"access_token": CANARY, "expires_on": "86400"});
    let server = RawServer::start(Reply::json(200, body)).await;
    let err = imds(&server).get_token(&graph()).await.unwrap_err();
    assert!(err.to_string().contains("before 2001"), "{err}");
}

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
            Error::Source(entra_mi::error::SourceError::Unavailable {
                source_kind: SourceKind::Imds,
                endpoint,
                reason,
            }) => {
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
        Error::Source(entra_mi::error::SourceError::Refused { error, .. }) => {
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
        matches!(
            err,
            Error::Source(entra_mi::error::SourceError::Unavailable {
                reason: Unavailable::Connect { .. },
                ..
            })
        ),
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
        matches!(
            err,
            Error::Source(entra_mi::error::SourceError::Unavailable {
                reason: Unavailable::Timeout(_),
                ..
            })
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

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
        Error::Deadline(entra_mi::error::DeadlineError::Caller {
            deadline,
            last: Some(last),
            ..
        }) => {
            assert_eq!(*deadline, Duration::from_secs(5));
            assert!(
                matches!(
                    **last,
                    Error::Source(entra_mi::error::SourceError::Unavailable {
                        reason: Unavailable::Status { status: 503, .. },
                        ..
                    })
                ),
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

#[tokio::test]
async fn managed_identity_refuses_other_tenants() {
    let server = RawServer::start(Reply::json(200, imds_body(CANARY, now_unix(), 3600))).await;
    let err = imds(&server)
        .get_token(&graph().with_tenant("contoso.onmicrosoft.com"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("home tenant"), "{err}");
    assert_eq!(server.count(), 0);
}

/// A token body for `resource`, with `extra` fields.
fn body_for_resource(resource: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"access_token": CANARY, "expires_in": "3599", "resource": resource, "token_type": "Bearer"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body
}

#[tokio::test]
async fn a_token_for_another_api_or_identity_is_refused() {
    const WANT: &str = "11111111-2222-3333-4444-555555555555";
    let with_client_id = |server: &RawServer| {
        ManagedIdentityCredential::builder()
            .environment(imds_env(server))
            .client_id(WANT)
            .retry(RetryOptions::default().max_retries(0))
            .build()
            .unwrap()
    };
    // Another API (the Cloud Shell bug, here from IMDS), or another identity than the client
    // id asked for: a typed error naming both, never the token.
    for (name, body, client_id) in [
        (
            "another API",
            body_for_resource("https://management.azure.com/", json!({})),
            false,
        ),
        (
            "another host spelled alike",
            body_for_resource("https://graph.microsoft.com.evil.example", json!({})),
            false,
        ),
        (
            "another identity",
            body_for_resource(
                "https://graph.microsoft.com",
                json!({"client_id": "99999999-2222-3333-4444-555555555555"}),
            ),
            true,
        ),
    ] {
        let server = RawServer::start(Reply::json(200, body)).await;
        let cred = if client_id {
            with_client_id(&server)
        } else {
            imds(&server)
        };
        let err = cred.get_token(&graph()).await.unwrap_err();
        assert_no_canary(&err);
        match &err {
            Error::Source(entra_mi::error::SourceError::Unavailable {
                reason: Unavailable::InvalidResponse { problem },
                ..
            }) => assert!(problem.contains("asked"), "{name}: {problem}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    // The same API or identity in another spelling is no mismatch; neither is an echo this
    // check cannot judge (an application-id GUID for a URL).
    for (name, body) in [
        (
            "trailing slash and case",
            body_for_resource("HTTPS://Graph.Microsoft.com/", json!({})),
        ),
        (
            "app id",
            body_for_resource("00000003-0000-0000-c000-000000000000", json!({})),
        ),
        (
            "client id in upper case",
            body_for_resource(
                "https://graph.microsoft.com",
                json!({"client_id": WANT.to_uppercase()}),
            ),
        ),
    ] {
        let server = RawServer::start(Reply::json(200, body)).await;
        let token = with_client_id(&server)
            .get_token(&graph())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(token.secret(), CANARY, "{name}");
    }
}
