//! `entra-mi-tower` against real loopback servers, through a hyper client: 401 recovery,
//! readiness and back-pressure, `Buffer`, the cold-cache path, token rollover, and tracing
//! beside tower-http's sensitive-header layers.

use entra_mi_test_support as support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use entra_mi::{Audience, Route, TokenProvider};
use entra_mi_emulator::{Emulator, Endpoint, Fault};
use entra_mi_tower::{BearerAuthLayer, CloneBody};
use http::header::AUTHORIZATION;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::downstream::{Downstream, Mode};
use support::emulator_credential;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

const AUD: &str = "api://downstream-test";

type HyperClient = Client<HttpConnector, Full<Bytes>>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn emulator(cache_tokens: bool) -> Emulator {
    Emulator::builder()
        .cache_tokens(cache_tokens)
        .start()
        .await
        .unwrap()
}

fn layer(provider: &TokenProvider, api: &Downstream) -> BearerAuthLayer {
    BearerAuthLayer::builder(provider)
        .route(Route::new(&api.url("/"), Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap()
}

fn get(api: &Downstream, path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(api.url(path))
        .body(Full::default())
        .unwrap()
}

#[tokio::test]
async fn a_replayable_request_rejected_once_is_retried_once_with_a_new_token() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let mut svc = layer(&provider, &api)
        .with_replay(CloneBody)
        .layer(hyper_client());
    // First on a cold cache (the waiting path), then with the cached token (the hot path).
    for (n, body) in [b"{\"id\":7}", b"{\"id\":8}"].into_iter().enumerate() {
        api.set_mode(Mode::RevokeNext);
        let req = http::Request::post(api.url("/orders"))
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(emu.requests(Endpoint::Imds), 2 + n);
        let seen = api.seen();
        assert_eq!(seen.len(), 2 + 2 * n);
        assert_eq!(api.distinct_tokens(), 2 + n);
        assert_eq!(&seen[1 + 2 * n].body[..], body);
    }
}

#[tokio::test]
async fn always_401_gets_one_retry_only_and_no_replay_gets_none() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let mut replaying = layer(&provider, &api)
        .with_replay(CloneBody)
        .layer(hyper_client());
    api.set_mode(Mode::RejectAll);
    let resp = replaying
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/a"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(api.seen().len(), 2);

    // Without replay: the 401 comes back, and the rejected token is dropped so the next
    // request carries a new one.
    api.set_mode(Mode::Accept);
    let mut plain = layer(&provider, &api).layer(hyper_client());
    api.set_mode(Mode::RevokeNext);
    let fetches = emu.requests(Endpoint::Imds);
    let resp = plain
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/b"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(api.seen().len(), 3);
    assert_eq!(emu.requests(Endpoint::Imds), fetches);
    let resp = plain
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/c"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), fetches + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_for_one_token_cause_one_refetch() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let svc = layer(&provider, &api)
        .with_replay(CloneBody)
        .layer(hyper_client());
    let resp = svc.clone().oneshot(get(&api, "/warm")).await.unwrap();
    assert_eq!(resp.status(), 200);
    api.set_mode(Mode::RevokeNext);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let svc = svc.clone();
            let req = get(&api, &format!("/orders/{i}"));
            tokio::spawn(async move { svc.oneshot(req).await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(emu.requests(Endpoint::Imds), 2);
}

#[tokio::test]
async fn the_cold_path_calls_the_instance_that_was_polled_ready() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    // A concurrency limit of one: `call` on an instance that was not polled ready panics, and
    // a second `poll_ready` stays pending while the first call holds the permit.
    let mut svc =
        layer(&provider, &api).layer(tower::limit::ConcurrencyLimit::new(hyper_client(), 1));
    emu.push_fault(Endpoint::Imds, Fault::Delay(Duration::from_millis(300)));
    svc.ready().await.unwrap();
    let started = Instant::now();
    let in_flight = tokio::spawn(svc.call(get(&api, "/cold")));
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "call does not wait for the token"
    );
    // The permit went with the request: the instance left behind is not ready.
    let blocked = tokio::time::timeout(Duration::from_millis(100), svc.ready()).await;
    assert!(
        blocked.is_err(),
        "back-pressure: the clone must wait for the permit"
    );
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited for the token"
    );
    // Once the first call is done, the clone becomes ready; the cache is warm now (hot path).
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/warm"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), 1);
}

#[tokio::test]
async fn readiness_of_the_inner_service_is_passed_through() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let mut first =
        layer(&provider, &api).layer(tower::limit::ConcurrencyLimit::new(hyper_client(), 1));
    let mut second = first.clone();
    // Warm the cache, then hold the single permit with a slow-to-answer request.
    first
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/warm"))
        .await
        .unwrap();
    first.ready().await.unwrap();
    let pending = tokio::time::timeout(Duration::from_millis(100), second.ready()).await;
    assert!(
        pending.is_err(),
        "not ready while the other instance holds the permit"
    );
    let resp = first.call(get(&api, "/hot")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = tokio::time::timeout(Duration::from_secs(5), second.ready())
        .await
        .expect("ready once the permit is back")
        .unwrap()
        .call(get(&api, "/second"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_under_buffer_in_either_order_with_a_cold_cache() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    for buffer_outside in [true, false] {
        let provider = TokenProvider::new(emulator_credential(&emu));
        emu.push_fault(Endpoint::Imds, Fault::Delay(Duration::from_millis(100)));
        let svc = if buffer_outside {
            ServiceBuilder::new()
                .buffer(1)
                .layer(layer(&provider, &api))
                .service(hyper_client())
                .boxed_clone()
        } else {
            ServiceBuilder::new()
                .layer(layer(&provider, &api))
                .buffer(1)
                .service(hyper_client())
                .map_err(Into::into)
                .boxed_clone()
        };
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let svc = svc.clone();
                let req = get(&api, &format!("/buffered/{i}"));
                tokio::spawn(async move { svc.oneshot(req).await.unwrap().status() })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(
            provider.stats().fetches,
            1,
            "one fetch for all the cold callers"
        );
    }
}

#[tokio::test]
async fn a_token_failure_is_a_boxed_entra_mi_error() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let svc = layer(&provider, &api).layer(hyper_client());
    emu.push_fault(
        Endpoint::Imds,
        Fault::Status {
            status: 400,
            retry_after: None,
            body: Some(
                r#"{"error":"invalid_request","error_description":"Identity not found"}"#.into(),
            ),
        },
    );
    let err = svc.oneshot(get(&api, "/x")).await.unwrap_err();
    let e = err
        .downcast_ref::<entra_mi::Error>()
        .expect("an entra_mi::Error");
    assert_eq!(e.status(), Some(400));
    assert_eq!(api.seen().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_requests_succeed_while_the_token_rolls_over() {
    let emu = Emulator::builder()
        .cache_tokens(false)
        .token_lifetime(Duration::from_secs(12))
        .start()
        .await
        .unwrap();
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::builder(emulator_credential(&emu))
        .max_jitter(Duration::ZERO)
        .build();
    // No replay: every success is a token that was valid when it arrived.
    let svc = layer(&provider, &api).layer(hyper_client());
    let until = Instant::now() + Duration::from_secs(8);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let mut svc = svc.clone();
            let url = api.url(&format!("/orders/{i}"));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..200 {
                    if Instant::now() >= until {
                        break;
                    }
                    let req = http::Request::get(&url).body(Full::default()).unwrap();
                    let resp = svc.ready().await.unwrap().call(req).await.unwrap();
                    statuses.push(resp.status().as_u16());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                statuses
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        let statuses = t.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
        total += statuses.len();
    }
    assert!(total >= 64 * 10, "{total} requests");
    assert!(api.distinct_tokens() >= 2, "the token rolled over");
    assert_eq!(api.unauthorized(), 0);
}

#[tokio::test]
async fn traces_never_show_the_token_in_either_order() {
    use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
    use tower_http::trace::{DefaultMakeSpan, TraceLayer};

    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let canary = provider
        .token(&Audience::new(AUD).unwrap())
        .await
        .unwrap()
        .secret()
        .to_owned();
    let captured = support::Capture::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let trace =
        || TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new().include_headers(true));

    // The documented order: sensitive marking and tracing outside, the token added inside.
    let documented = ServiceBuilder::new()
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
        .layer(trace())
        .layer(layer(&provider, &api))
        .service(hyper_client());
    // The other order: tracing sees the header we add, which is marked sensitive.
    let inverted = ServiceBuilder::new()
        .layer(layer(&provider, &api))
        .layer(trace())
        .service(hyper_client());
    let resp = documented.oneshot(get(&api, "/documented")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = inverted.oneshot(get(&api, "/inverted")).await.unwrap();
    assert_eq!(resp.status(), 200);

    let logs = captured.text();
    assert!(logs.contains("/inverted"), "the trace was captured: {logs}");
    assert!(logs.contains(r#""authorization": Sensitive"#), "{logs}");
    assert!(!logs.contains(&canary));
    assert!(!logs.contains("Bearer ey"));
}

#[tokio::test]
async fn when_the_source_returns_the_rejected_token_again_there_is_no_retry() {
    // Like the real endpoints, the emulator hands out the same token until half its life.
    let emu = emulator(true).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let mut svc = layer(&provider, &api)
        .with_replay(CloneBody)
        .layer(hyper_client());
    api.set_mode(Mode::RevokeNext);
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/orders"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        emu.requests(Endpoint::Imds),
        2,
        "the token was dropped and fetched again"
    );
    assert_eq!(api.seen().len(), 1, "the same token cannot help: no retry");
    // A later rejection of the same token, which the source handed back, is not acted on
    // again before the back-off: no new request to the source (IMDS throttles per machine).
    api.set_mode(Mode::RevokeNext);
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/orders"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(emu.requests(Endpoint::Imds), 2);
    assert_eq!(api.seen().len(), 2);
}

#[tokio::test]
async fn with_recovery_off_a_401_is_returned_and_the_token_kept() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let layer = BearerAuthLayer::builder(&provider)
        .route(Route::new(&api.url("/"), Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .replay(CloneBody)
        .recover_unauthorized(false)
        .build()
        .unwrap();
    let mut svc = layer.layer(hyper_client());
    // Cold cache first: the waiting path must not recover either.
    api.set_mode(Mode::RevokeNext);
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/a"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(api.seen().len(), 1, "no retry");
    // The rejected token was not dropped: the next request carries it again (no new fetch).
    let resp = svc
        .ready()
        .await
        .unwrap()
        .call(get(&api, "/b"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(emu.requests(Endpoint::Imds), 1);
    assert_eq!(api.distinct_tokens(), 1);
    assert_eq!(provider.stats().invalidations, 0);
}

#[tokio::test]
async fn a_sent_key_names_the_route_and_the_token_version() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let layer = layer(&provider, &api);
    let route = api.route_in(layer.router());
    let (_, version) = route.handle().header_with_version().await.unwrap();
    let key = route.sent_key(version).expect("small numbers fit one word");
    assert_eq!(key.route_key(), route.key());
    assert_eq!(key.version(), version);
    assert!(key.route().unwrap().same_route(&route));
    drop((layer, route));
    assert!(key.route().is_none(), "a dropped route is not found again");
}
