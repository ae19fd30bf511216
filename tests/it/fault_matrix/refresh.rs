//! Refresh faults: a valid cached token is never lost.

use super::*;

/// How the refresh fails.
enum RefreshFault {
    /// The endpoint answers this.
    Reply(Reply),
    /// The endpoint is gone: its port refuses connections.
    Refused,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_faults_keep_the_cached_token() {
    let cases: Vec<(&str, RefreshFault)> = vec![
        (
            "500",
            RefreshFault::Reply(Reply::json(500, json!({"error": "x"}))),
        ),
        (
            "429 with Retry-After",
            RefreshFault::Reply(Reply::json(429, json!({})).with_header("Retry-After", "10")),
        ),
        (
            "403 refused",
            RefreshFault::Reply(Reply::json(
                403,
                json!({"error": "forbidden", "error_description": "no"}),
            )),
        ),
        ("hang", RefreshFault::Reply(Reply::Hang)),
        (
            "closed mid-body",
            RefreshFault::Reply(Reply::Raw(
                b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n{\"access_token\":\"x".to_vec(),
            )),
        ),
        (
            "truncated JSON",
            RefreshFault::Reply(Reply::body(200, "application/json", "{\"access_token\":\"")),
        ),
        (
            "HTML page",
            RefreshFault::Reply(Reply::body(200, "text/html", "<html></html>")),
        ),
        (
            "1 GiB body",
            RefreshFault::Reply(Reply::Huge { total: GIB }),
        ),
        (
            "302 redirect",
            RefreshFault::Reply(
                Reply::body(302, "text/plain", "").with_header("Location", "http://127.0.0.1:1/"),
            ),
        ),
        (
            "access_token missing",
            RefreshFault::Reply(Reply::json(200, json!({"expires_in": "3600"}))),
        ),
        (
            "expires_on in the past",
            RefreshFault::Reply(Reply::json(
                200,
                json!({"access_token": "new", "expires_on": "1000000000"}),
            )),
        ),
        (
            "non-UTF-8 bytes",
            RefreshFault::Reply(Reply::body(200, "application/json", vec![0xff, 0xfe])),
        ),
        ("connection refused", RefreshFault::Refused),
    ];
    let total = cases.len();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, fault)| {
            (
                name,
                tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(20),
                    refresh_case(fault),
                )),
            )
        })
        .collect();
    let mut failed = Vec::new();
    println!("refresh faults (a TokenProvider holding a valid token):");
    for (name, h) in handles {
        let outcome = match h.await {
            Ok(Ok(())) => "ok: old token served, failure counted".to_owned(),
            Ok(Err(_)) => "FAILED: still running after 20 s".to_owned(),
            Err(e) => format!("FAILED: {}", panic_text(e)),
        };
        println!("  {name:<24} {outcome}");
        if outcome.starts_with("FAILED") {
            failed.push(format!("{name}: {outcome}"));
        }
    }
    println!("{total} refresh faults, {} failed", failed.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

async fn refresh_case(fault: RefreshFault) {
    let clock = ManualClock::new();
    let fallback = match &fault {
        RefreshFault::Reply(r) => r.clone(),
        RefreshFault::Refused => Reply::Close,
    };
    let server = RawServer::start(fallback).await;
    let addr = server.addr;
    // A 10-minute token: fresh for 5 minutes, then stale (served, refreshed in the background)
    // until a minute before it expires.
    server.push(Reply::json(200, imds_body("tok-A", unix(&clock), 600)));
    let credential = ManagedIdentityCredential::builder()
        .environment(imds_env(&server))
        .time_source(clock.time_source(0.0))
        .retry(RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let provider = TokenProvider::builder(credential)
        .time_source(clock.time_source(0.0))
        .build();
    let h = provider.handle(&Audience::microsoft_graph());
    assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-A");
    let server = match fault {
        RefreshFault::Refused => {
            drop(server);
            // Bounded: the listener goes away with the server's task.
            let mut gone = false;
            for _ in 0..200 {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(gone, "the port still accepts connections");
            None
        }
        RefreshFault::Reply(_) => Some(server),
    };
    clock.advance(Duration::from_secs(301));
    assert_eq!(
        h.cached_header().unwrap().as_bytes(),
        b"Bearer tok-A",
        "stale, still served"
    );
    assert!(
        eventually(10, || provider.stats().failures == 1).await,
        "the failed refresh is counted: {:?}",
        provider.stats()
    );
    for _ in 0..3 {
        assert_eq!(h.cached_header().unwrap().as_bytes(), b"Bearer tok-A");
        assert_eq!(h.header().await.unwrap().as_bytes(), b"Bearer tok-A");
    }
    let stats = provider.stats();
    assert_eq!(stats.failures, 1, "{stats:?}");
    assert_eq!(stats.fetches, 2, "one refresh, then backoff: {stats:?}");
    assert!(stats.stale_hits >= 1, "{stats:?}");
    if let Some(server) = server {
        assert_eq!(server.count(), 2);
    }
}
