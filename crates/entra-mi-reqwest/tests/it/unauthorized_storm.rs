//! A stream of `401 invalid_token` answers never becomes a stream of token requests: when the
//! managed-identity endpoint hands back the token an API just rejected (it caches tokens and
//! has no "force new"), the cache does not drop that token again before a back-off (30 s,
//! doubling to 5 min). A new token after a real rotation is still used at once.

use entra_mi_test_support as support;

use std::time::{Duration, SystemTime};

use entra_mi::time::ManualClock;
use entra_mi::{Audience, Route, TokenProvider};
use entra_mi_emulator::{Emulator, Endpoint};
use entra_mi_reqwest::BearerAuthMiddleware;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use support::downstream::{Downstream, Mode};
use support::emulator_credential;

const AUD: &str = "api://downstream-test";

fn client(provider: &TokenProvider, base: &str) -> ClientWithMiddleware {
    let auth = BearerAuthMiddleware::builder(provider)
        .route(Route::new(base, Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build()
}

#[tokio::test]
async fn fifty_401s_in_a_minute_cause_at_most_two_fetches_and_a_rotation_is_used_at_once() {
    // Like the real endpoints, the emulator hands out the same token until half its life.
    let emu = Emulator::builder().start().await.unwrap();
    let api = Downstream::start(&emu, AUD).await;
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let provider = TokenProvider::builder(emulator_credential(&emu))
        .time_source(clock.time_source(0.0))
        .build();
    let client = client(&provider, &api.url("/"));
    assert_eq!(
        client
            .get(api.url("/orders"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(emu.requests(Endpoint::Imds), 1);

    // The API starts rejecting every token (a wrong audience configured on its side, say):
    // 50 requests over 59 s of virtual time, each answered 401.
    api.set_mode(Mode::RejectAll);
    for _ in 0..50 {
        let resp = client.get(api.url("/orders")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        clock.advance(Duration::from_millis(1180));
    }
    let caused = emu.requests(Endpoint::Imds) - 1;
    println!("50 rejections over 59 s: {caused} token request(s) caused");
    assert!(
        caused <= 2,
        "50 rejections caused {caused} requests to the managed-identity endpoint"
    );
    assert!(caused >= 1, "the first rejection is acted on at once");

    // A real rotation: the endpoint now issues a new token, and the API accepts new tokens but
    // keeps refusing the old one. Once the back-off has passed, the next rejection fetches,
    // gets the new token and the request is retried with it at once.
    emu.set_token_lifetime(Duration::from_secs(86_399));
    api.set_mode(Mode::RevokeNext);
    clock.advance(Duration::from_secs(301));
    let before = emu.requests(Endpoint::Imds);
    let resp = client.get(api.url("/orders")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the new token was not used");
    assert_eq!(emu.requests(Endpoint::Imds), before + 1);

    // A rejection of that new token is acted on at once too: it is no re-served token, so no
    // back-off holds it.
    emu.set_token_lifetime(Duration::from_secs(86_399));
    api.set_mode(Mode::RevokeNext);
    let before = emu.requests(Endpoint::Imds);
    let resp = client.get(api.url("/orders")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), before + 1);
}

#[tokio::test]
async fn the_back_off_for_a_re_served_token_doubles_from_30_s_to_5_min() {
    let emu = Emulator::builder().start().await.unwrap();
    let api = Downstream::start(&emu, AUD).await;
    let clock = ManualClock::with_wall_time(SystemTime::now());
    let provider = TokenProvider::builder(emulator_credential(&emu))
        .time_source(clock.time_source(0.0))
        .build();
    let client = client(&provider, &api.url("/"));
    assert_eq!(
        client
            .get(api.url("/orders"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Every token is rejected, and the endpoint keeps handing back the same one: one request
    // a second for 1,100 s of virtual time, noting when each token request was caused.
    api.set_mode(Mode::RejectAll);
    let mut fetched_at = Vec::new();
    let mut fetches = emu.requests(Endpoint::Imds);
    for second in 0..1_100u64 {
        let resp = client.get(api.url("/orders")).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let now = emu.requests(Endpoint::Imds);
        if now > fetches {
            fetched_at.push(second);
            fetches = now;
        }
        clock.advance(Duration::from_secs(1));
    }
    let gaps: Vec<u64> = fetched_at.windows(2).map(|w| w[1] - w[0]).collect();
    println!("token requests at {fetched_at:?} s: gaps {gaps:?}");
    assert_eq!(
        fetched_at.first(),
        Some(&0),
        "the first rejection is acted on at once"
    );
    // 30 s, doubling, at most 5 min (a request a second: each gap is seen up to 1 s late).
    let expected = [30, 60, 120, 240, 300, 300];
    assert_eq!(gaps.len(), expected.len(), "gaps {gaps:?}");
    for (gap, want) in gaps.iter().zip(expected) {
        assert!(
            (want..=want + 1).contains(gap),
            "gaps {gaps:?}, want {expected:?}"
        );
    }
}
