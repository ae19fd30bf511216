//! Injected faults and response shapes, as they look on the wire.

use crate::common;

use std::time::{Duration, Instant};

use common::{app_service, claims, client, get, imds, now, try_get};
use entra_mi_emulator::{Emulator, Endpoint, Fault, ResponseShape};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const ARM: &str = "https://management.azure.com/";

async fn emulator() -> Emulator {
    Emulator::builder().start().await.expect("emulator starts")
}

fn status(status: u16, retry_after: Option<&str>) -> Fault {
    Fault::Status {
        status,
        retry_after: retry_after.map(str::to_owned),
        body: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn status_faults_carry_retry_after_and_the_endpoints_error_body() {
    let em = emulator().await;
    em.push_fault(Endpoint::Imds, status(429, Some("3")));
    em.push_fault(Endpoint::Imds, status(410, None));
    em.push_fault(Endpoint::Imds, status(500, None));
    em.push_fault(
        Endpoint::AppService,
        status(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
    );

    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "3");
    assert!(r.content_type().starts_with("application/json"));
    assert!(r.json()["error"].is_string() && r.json()["error_description"].is_string());

    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::GONE);
    assert!(r.headers.get("retry-after").is_none());
    assert!(r.json()["error"].is_string());

    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["error"], "unknown");

    let r = app_service(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "Wed, 21 Oct 2015 07:28:00 GMT");
    assert_eq!(r.json()["statusCode"], 503);
    assert!(r.json()["message"].is_string());

    // The queues are empty again: normal answers.
    assert_eq!(imds(&em, ARM, "").await.status, StatusCode::OK);
    assert_eq!(app_service(&em, ARM, "").await.status, StatusCode::OK);
    assert_eq!(em.requests(Endpoint::Imds), 4);
    assert_eq!(em.requests(Endpoint::AppService), 2);
}

#[tokio::test]
async fn status_fault_with_a_custom_body() {
    let em = emulator().await;
    em.push_fault(
        Endpoint::Imds,
        Fault::Status {
            status: 403,
            retry_after: None,
            body: Some(r#"{"error":"unreachable","error_description":"A socket operation was attempted to an unreachable network"}"#.to_owned()),
        },
    );
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"], "unreachable");
}

#[tokio::test]
async fn faults_are_consumed_in_order_one_per_request_even_by_bad_requests() {
    let em = emulator().await;
    em.push_fault(Endpoint::Imds, status(500, None));
    em.push_fault(Endpoint::Imds, status(503, None));
    em.push_fault(Endpoint::Imds, status(404, None));
    // A probe without the Metadata header still takes the first fault.
    assert_eq!(
        get(&em.imds_token_url(), &[]).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        imds(&em, ARM, "").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Faults are per endpoint.
    assert_eq!(app_service(&em, ARM, "").await.status, StatusCode::OK);
    assert_eq!(imds(&em, ARM, "").await.status, StatusCode::NOT_FOUND);
    assert_eq!(imds(&em, ARM, "").await.status, StatusCode::OK);
    // Discovery endpoints take faults too, with Entra's error shape.
    em.push_fault(Endpoint::Jwks, status(503, Some("1")));
    let r = get(&em.jwks_url(), &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(get(&em.jwks_url(), &[]).await.status, StatusCode::OK);
    em.push_fault(Endpoint::OpenIdConfiguration, Fault::Html);
    assert!(
        get(&em.openid_configuration_url(), &[])
            .await
            .content_type()
            .starts_with("text/html")
    );
}

#[tokio::test]
async fn delay_then_a_normal_answer() {
    let em = emulator().await;
    em.push_fault(
        Endpoint::AppService,
        Fault::Delay(Duration::from_millis(400)),
    );
    let start = Instant::now();
    let r = app_service(&em, ARM, "").await;
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.token().is_empty());
}

#[tokio::test]
async fn hang_never_answers_but_the_server_keeps_serving_and_shuts_down() {
    let em = emulator().await;
    em.push_fault(Endpoint::Imds, Fault::Hang);
    let url = format!("{}?api-version=2018-02-01&resource=x", em.imds_token_url());
    let err = client()
        .get(&url)
        .header("Metadata", "true")
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(em.requests(Endpoint::Imds), 1);
    assert_eq!(imds(&em, ARM, "").await.status, StatusCode::OK);

    // A request hanging at shutdown does not hold it up; its connection is closed.
    em.push_fault(Endpoint::Imds, Fault::Hang);
    let hung = tokio::spawn({
        let url = url.clone();
        async move { client().get(&url).header("Metadata", "true").send().await }
    });
    let arrived = tokio::time::timeout(Duration::from_secs(10), async {
        while em.requests(Endpoint::Imds) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        arrived.is_ok(),
        "the hanging request never reached the emulator"
    );
    let start = Instant::now();
    em.shutdown().await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let res = hung.await.unwrap();
    assert!(res.is_err(), "the hung request got no response: {res:?}");
}

#[tokio::test]
async fn close_connection_drops_it_without_a_response() {
    let em = emulator().await;
    em.push_fault(Endpoint::AppService, Fault::CloseConnection);
    let err = try_get(
        &format!(
            "{}?api-version=2019-08-01&resource=x",
            em.app_service_endpoint()
        ),
        &[("X-IDENTITY-HEADER", &em.identity_header())],
    )
    .await
    .expect_err("no response");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    // Raw: the server reads the request and closes without writing a byte.
    em.push_fault(Endpoint::AppService, Fault::CloseConnection);
    let mut s = tokio::net::TcpStream::connect(em.addr()).await.unwrap();
    s.write_all(b"GET /msi/token HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("closed promptly")
        .unwrap_or(0);
    assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&buf));
    assert_eq!(app_service(&em, ARM, "").await.status, StatusCode::OK);
}

#[tokio::test]
async fn truncated_json_is_a_200_with_half_a_token_response() {
    let em = emulator().await;
    let full = imds(&em, ARM, "").await.body;
    em.push_fault(Endpoint::Imds, Fault::TruncatedJson);
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("application/json"));
    assert_eq!(r.body.len(), full.len() / 2);
    assert!(full.starts_with(&r.body), "cached token, same bytes");
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
}

#[tokio::test]
async fn html_pages() {
    let em = emulator().await;
    em.push_fault(Endpoint::Imds, Fault::Html);
    em.push_fault(Endpoint::Imds, Fault::HtmlError(502));
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("text/html"));
    assert!(r.body.contains("<html"));
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.content_type().starts_with("text/html"));
    assert!(r.body.contains("502 Bad Gateway"));
}

#[tokio::test]
async fn oversized_bodies_have_the_exact_size() {
    let em = emulator().await;
    let big = 5 * 1024 * 1024 + 3;
    em.push_fault(Endpoint::Imds, Fault::Oversized(big));
    em.push_fault(Endpoint::AppService, Fault::Oversized(10));
    let resp = client()
        .get(format!(
            "{}?api-version=2018-02-01&resource=x",
            em.imds_token_url()
        ))
        .header("Metadata", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(resp.content_length(), Some(big as u64));
    let body = resp.bytes().await.unwrap();
    assert_eq!(body.len(), big);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("complete JSON");
    assert_eq!(v["token_type"], "Bearer");
    let r = app_service(&em, ARM, "").await;
    assert_eq!(r.body.len(), 10);
    assert_eq!(r.body, "{\"access_t");
}

#[tokio::test]
async fn body_fault_is_verbatim() {
    let em = emulator().await;
    em.push_fault(
        Endpoint::Imds,
        Fault::Body {
            status: 200,
            content_type: "text/plain".to_owned(),
            body: b"not a token".to_vec(),
        },
    );
    em.push_fault(
        Endpoint::Imds,
        Fault::Body {
            status: 599,
            content_type: "application/json".to_owned(),
            body: br#"{"access_token":123}"#.to_vec(),
        },
    );
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type(), "text/plain");
    assert_eq!(r.body, "not a token");
    let r = imds(&em, ARM, "").await;
    assert_eq!(r.status.as_u16(), 599);
    assert_eq!(r.body, r#"{"access_token":123}"#);
}

// ---------------------------------------------------------------------------------------------
// Response shapes

fn exp_of(body: &serde_json::Value) -> u64 {
    claims(body["access_token"].as_str().unwrap())["exp"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn numeric_expiry() {
    let em = emulator().await;
    em.set_response_shape(Endpoint::Imds, ResponseShape::NumericExpiry);
    em.set_response_shape(Endpoint::AppService, ResponseShape::NumericExpiry);
    let b = imds(&em, ARM, "").await.json();
    assert_eq!(b["expires_on"].as_u64(), Some(exp_of(&b)));
    assert!(b["expires_in"].as_u64().is_some_and(|s| s > 86_000));
    let b = app_service(&em, ARM, "").await.json();
    assert_eq!(b["expires_on"].as_u64(), Some(exp_of(&b)));
    assert!(b.get("expires_in").is_none());
}

#[tokio::test]
async fn no_expires_in() {
    let em = emulator().await;
    em.set_response_shape(Endpoint::Imds, ResponseShape::NoExpiresIn);
    let b = imds(&em, ARM, "").await.json();
    assert!(b.get("expires_in").is_none());
    assert_eq!(b["expires_on"], exp_of(&b).to_string());
    assert_eq!(b["token_type"], "Bearer");
}

#[tokio::test]
async fn with_refresh_in() {
    let em = emulator().await;
    em.set_response_shape(Endpoint::Imds, ResponseShape::WithRefreshIn(3600));
    em.set_response_shape(Endpoint::AppService, ResponseShape::WithRefreshIn(120));
    let b = imds(&em, ARM, "").await.json();
    assert_eq!(b["refresh_in"], "3600");
    assert!(b["expires_in"].is_string());
    let b = app_service(&em, ARM, "").await.json();
    assert_eq!(b["refresh_in"], "120");
}

/// Parses `MM/DD/YYYY hh:mm:ss AM +00:00` back to epoch seconds.
fn parse_legacy_date(s: &str) -> u64 {
    let (date, rest) = s.split_once(' ').unwrap();
    let mut rest = rest.split(' ');
    let (time, half, zone) = (
        rest.next().unwrap(),
        rest.next().unwrap(),
        rest.next().unwrap(),
    );
    assert_eq!(zone, "+00:00");
    assert!(rest.next().is_none());
    let d: Vec<i64> = date.split('/').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    assert!(date.len() == 10 && time.len() == 8, "zero-padded: {s}");
    let (m, day, y) = (d[0], d[1], d[2]);
    let hour = match (t[0], half) {
        (12, "AM") => 0,
        (h, "AM") => h,
        (12, "PM") => 12,
        (h, "PM") => h + 12,
        _ => panic!("{s}"),
    };
    // days from civil (H. Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + t[1] * 60 + t[2]).unwrap()
}

#[tokio::test]
async fn expires_on_as_a_legacy_date() {
    let em = emulator().await;
    em.set_response_shape(Endpoint::AppService, ResponseShape::ExpiresOnDate);
    em.set_response_shape(Endpoint::Imds, ResponseShape::ExpiresOnDate);
    for b in [
        app_service(&em, ARM, "").await.json(),
        imds(&em, ARM, "").await.json(),
    ] {
        let s = b["expires_on"].as_str().unwrap();
        assert!(
            s.ends_with(" +00:00") && (s.contains(" AM ") || s.contains(" PM ")),
            "{s}"
        );
        assert_eq!(parse_legacy_date(s), exp_of(&b), "{s}");
        assert!(b.get("expires_in").is_none());
    }
}

#[tokio::test]
async fn expires_on_offset_skews_only_expires_on() {
    let em = emulator().await;
    em.set_response_shape(Endpoint::Imds, ResponseShape::ExpiresOnOffset(-600));
    em.set_response_shape(Endpoint::AppService, ResponseShape::ExpiresOnOffset(3600));
    let b = imds(&em, ARM, "").await.json();
    let exp = exp_of(&b);
    assert_eq!(b["expires_on"], (exp - 600).to_string());
    let expires_in: u64 = b["expires_in"].as_str().unwrap().parse().unwrap();
    assert!(
        expires_in.abs_diff(exp - now()) <= 1,
        "expires_in stays right"
    );
    let b = app_service(&em, ARM, "").await.json();
    assert_eq!(b["expires_on"], (exp_of(&b) + 3600).to_string());
}

#[tokio::test]
async fn shapes_are_per_endpoint_and_can_be_reset() {
    let em = emulator().await;
    em.set_response_shape(Endpoint::Imds, ResponseShape::NumericExpiry);
    assert!(app_service(&em, ARM, "").await.json()["expires_on"].is_string());
    assert!(imds(&em, ARM, "").await.json()["expires_on"].is_number());
    em.set_response_shape(Endpoint::Imds, ResponseShape::Standard);
    assert!(imds(&em, ARM, "").await.json()["expires_on"].is_string());
    // Shapes of non-token endpoints are ignored.
    em.set_response_shape(Endpoint::Jwks, ResponseShape::NumericExpiry);
    assert_eq!(get(&em.jwks_url(), &[]).await.status, StatusCode::OK);
}
