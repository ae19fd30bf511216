//! `entra-mi-tower` when a route's key and token version do not fit one word (a process that
//! has built over four billion routes): requests keep them apart, in the boxed state, and 401
//! recovery works the same on the warm and the cold path. Its own test binary, because the
//! switch applies to every route the process builds afterwards.

use entra_mi_test_support as support;

use bytes::Bytes;
use entra_mi::{Audience, Route, TokenProvider};
use entra_mi_emulator::{Emulator, Endpoint};
use entra_mi_tower::{BearerAuthLayer, CloneBody};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::downstream::{Downstream, Mode};
use support::emulator_credential;
use tower::{Layer, Service, ServiceExt};

const AUD: &str = "api://downstream-wide";

type HyperClient = Client<HttpConnector, Full<Bytes>>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn layer(provider: &TokenProvider, api: &Downstream) -> BearerAuthLayer {
    entra_mi::test_util::__route_keys_past_32_bits();
    BearerAuthLayer::builder(provider)
        .route(Route::new(&api.url("/"), Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap()
}

fn post(api: &Downstream, body: &'static [u8]) -> http::Request<Full<Bytes>> {
    http::Request::post(api.url("/orders"))
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

#[tokio::test]
async fn recovery_works_when_the_route_key_does_not_fit_a_sent_key() {
    let emu = Emulator::builder()
        .cache_tokens(false)
        .start()
        .await
        .unwrap();
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let layer = layer(&provider, &api);
    let route = api.route_in(layer.router());
    let mut svc = layer.clone().with_replay(CloneBody).layer(hyper_client());

    // Cold cache, rejected once: one refetch, one retry.
    api.set_mode(Mode::RevokeNext);
    let resp = svc.ready().await.unwrap().call(post(&api, b"1")).await;
    assert_eq!(resp.unwrap().status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), 2);
    let (_, version) = route.handle().header_with_version().await.unwrap();
    assert_eq!(
        route.sent_key(version),
        None,
        "the key must not fit one word here"
    );

    // Warm cache, rejected once: the same.
    api.set_mode(Mode::RevokeNext);
    let resp = svc.ready().await.unwrap().call(post(&api, b"2")).await;
    assert_eq!(resp.unwrap().status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), 3);
    let seen = api.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(&seen[3].body[..], b"2");

    // Without replay: the 401 comes back and the rejected token is dropped.
    let mut plain = layer.layer(hyper_client());
    api.set_mode(Mode::RevokeNext);
    let resp = plain.ready().await.unwrap().call(post(&api, b"3")).await;
    assert_eq!(resp.unwrap().status(), 401);
    assert_eq!(emu.requests(Endpoint::Imds), 3);
    let resp = plain.ready().await.unwrap().call(post(&api, b"4")).await;
    assert_eq!(resp.unwrap().status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), 4);
}
