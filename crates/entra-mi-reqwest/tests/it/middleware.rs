//! `entra-mi-reqwest` against real loopback servers: the emulator for tokens, a downstream
//! API that validates them (signature via JWKS, `aud`, `exp`), and a raw scripted server.

use entra_mi_test_support as support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use entra_mi::{
    AccessToken, Audience, ManagedIdentityCredential, Route, TokenCredential, TokenProvider,
    TokenRequest,
};
use entra_mi_emulator::{Emulator, Endpoint, Fault, GraphRejection};
use entra_mi_reqwest::BearerAuthMiddleware;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use support::downstream::{Downstream, Mode};
use support::{RawServer, Reply, emulator_credential};

const AUD: &str = "api://downstream-test";

async fn emulator(cache_tokens: bool) -> Emulator {
    Emulator::builder()
        .cache_tokens(cache_tokens)
        .start()
        .await
        .unwrap()
}

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
async fn a_token_rejected_once_is_refetched_once_and_the_request_retried_once() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
    api.set_mode(Mode::RevokeNext);
    let resp = client
        .post(api.url("/orders"))
        .body("{\"id\":7}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), 2, "one fetch, one refetch");
    assert_eq!(api.seen().len(), 2, "the request and one retry");
    assert_eq!(api.distinct_tokens(), 2);
    let seen = api.seen();
    assert_eq!(
        seen[1].body, seen[0].body,
        "the retry carries the same body"
    );
    assert_eq!(&seen[1].body[..], b"{\"id\":7}");
}

#[tokio::test]
async fn a_downstream_that_always_says_401_gets_one_retry_only() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
    api.set_mode(Mode::RejectAll);
    let resp = client.get(api.url("/orders")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(api.seen().len(), 2);
    assert_eq!(emu.requests(Endpoint::Imds), 2);
    // The next request starts over: one more attempt and one more retry, no loop.
    let resp = client.get(api.url("/orders")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(api.seen().len(), 4);
}

#[tokio::test]
async fn a_streaming_body_gets_the_401_back_and_the_token_is_dropped() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
    api.set_mode(Mode::RevokeNext);
    let body = reqwest::Body::wrap(http_body_util::Full::new(bytes::Bytes::from_static(
        b"streamed",
    )));
    let resp = client
        .post(api.url("/upload"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "no retry for a body that cannot be cloned"
    );
    assert_eq!(api.seen().len(), 1);
    assert_eq!(emu.requests(Endpoint::Imds), 1);
    // The rejected token was dropped: the next request fetches a new one and succeeds.
    let resp = client.get(api.url("/orders")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.requests(Endpoint::Imds), 2);
}

#[tokio::test]
async fn when_the_source_returns_the_rejected_token_again_there_is_no_retry() {
    // Like the real endpoints, the emulator hands out the same token until half its life.
    let emu = emulator(true).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
    api.set_mode(Mode::RevokeNext);
    let resp = client.get(api.url("/orders")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        emu.requests(Endpoint::Imds),
        2,
        "the token was dropped and fetched again"
    );
    assert_eq!(api.seen().len(), 1, "the same token cannot help: no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_for_one_token_cause_one_refetch() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
    assert_eq!(
        client.get(api.url("/warm")).send().await.unwrap().status(),
        200
    );
    api.set_mode(Mode::RevokeNext);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let client = client.clone();
            let url = api.url(&format!("/orders/{i}"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        emu.requests(Endpoint::Imds),
        2,
        "the warm-up fetch and one refetch"
    );
    assert_eq!(api.distinct_tokens(), 2);
}

/// A credential that records the claims it is asked for (the managed-identity endpoints
/// ignore claims, so this is how a test sees them arrive).
#[derive(Debug)]
struct RecordingClaims {
    inner: ManagedIdentityCredential,
    claims: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl TokenCredential for RecordingClaims {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, entra_mi::Error> {
        self.claims
            .lock()
            .unwrap()
            .push(request.claims().map(str::to_owned));
        self.inner.get_token(request).await
    }
    fn name(&self) -> &str {
        "recording"
    }
}

#[tokio::test]
async fn a_claims_challenge_fetches_a_token_with_the_claims_and_retries_once() {
    let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1604106651"}}}"#;
    for url_safe in [false, true] {
        let emu = emulator(false).await;
        let api = Downstream::start(&emu, AUD).await;
        let cred = Arc::new(RecordingClaims {
            inner: emulator_credential(&emu),
            claims: Mutex::new(Vec::new()),
        });
        let provider = TokenProvider::builder_shared(cred.clone()).build();
        let client = client(&provider, &api.url("/"));
        api.set_mode(Mode::ClaimsOnce {
            claims: claims.into(),
            url_safe,
        });
        let resp = client.get(api.url("/orders")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            *cred.claims.lock().unwrap(),
            vec![None, Some(claims.to_owned())]
        );
        assert_eq!(api.seen().len(), 2);
    }
}

#[tokio::test]
async fn a_cross_host_redirect_does_not_carry_the_token_and_its_401_is_ignored() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let other = RawServer::start(Reply::body(200, "text/plain", "elsewhere")).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
    let origin = RawServer::start(Reply::body(200, "text/plain", "ok")).await;
    // A route for `origin` that redirects to `other` (another port: another origin).
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&origin.url("/"), Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let redirecting = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    origin.push(Reply::body(302, "text/plain", "").with_header("Location", &other.url("/landing")));
    let resp = redirecting.get(origin.url("/start")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        origin.requests()[0]
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))
    );
    assert_eq!(
        other.requests()[0].header("authorization"),
        None,
        "reqwest strips it cross-origin"
    );

    // The redirect target answers 401 invalid_token: not the route's origin, so the cached
    // token is neither dropped nor refreshed.
    other.push(
        Reply::body(401, "text/plain", "")
            .with_header("WWW-Authenticate", r#"Bearer error="invalid_token""#),
    );
    origin.push(Reply::body(302, "text/plain", "").with_header("Location", &other.url("/landing")));
    let fetches = emu.requests(Endpoint::Imds);
    let resp = redirecting.get(origin.url("/start")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(emu.requests(Endpoint::Imds), fetches);
    assert_eq!(other.count(), 2, "no retry");
    drop(client);
}

#[tokio::test]
async fn token_errors_are_typed_and_carry_no_secret() {
    let emu = emulator(false).await;
    let api = Downstream::start(&emu, AUD).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let client = client(&provider, &api.url("/"));
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
    let err = client.get(api.url("/orders")).send().await.unwrap_err();
    let reqwest_middleware::Error::Middleware(e) = &err else {
        panic!("expected a middleware error: {err:?}");
    };
    let token_error = e
        .downcast_ref::<entra_mi::Error>()
        .expect("an entra_mi::Error");
    assert_eq!(token_error.status(), Some(400));
    assert!(!token_error.is_unavailable());
    assert_eq!(api.seen().len(), 0, "nothing was sent without a token");
}

#[tokio::test]
async fn the_authorization_header_is_sensitive_and_never_printed() {
    let emu = emulator(false).await;
    let provider = TokenProvider::new(emulator_credential(&emu));
    let canary = provider
        .token(&Audience::new(AUD).unwrap())
        .await
        .unwrap()
        .secret()
        .to_owned();
    // A middleware after ours sees the header we set.
    let seen: Arc<Mutex<Option<http::HeaderValue>>> = Arc::default();
    let spy = Spy(seen.clone());
    let raw = RawServer::start(Reply::body(200, "text/plain", "ok")).await;
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&raw.url("/"), Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let shown_mw = format!("{auth:?}");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .with(spy)
        .build();
    client.get(raw.url("/x")).send().await.unwrap();
    let header = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the spy saw the request");
    assert!(header.is_sensitive());
    assert!(header.as_bytes().ends_with(canary.as_bytes()));
    let shown = format!("{header:?} {shown_mw} {provider:?}");
    assert!(!shown.contains(&canary), "{shown}");
}

struct Spy(Arc<Mutex<Option<http::HeaderValue>>>);

#[async_trait]
impl reqwest_middleware::Middleware for Spy {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        *self.0.lock().unwrap() = req.headers().get(http::header::AUTHORIZATION).cloned();
        next.run(req, extensions).await
    }
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
    // No 401 recovery: every success is a token that was valid when it arrived.
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&api.url("/"), Audience::new(AUD).unwrap()).unwrap())
        .allow_http_loopback(true)
        .recover_unauthorized(false)
        .build()
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let until = Instant::now() + Duration::from_secs(8);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let client = client.clone();
            let url = api.url(&format!("/orders/{i}"));
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..200 {
                    if Instant::now() >= until {
                        break;
                    }
                    statuses.push(client.get(&url).send().await.unwrap().status().as_u16());
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
async fn lists_service_principals_from_the_emulated_graph_with_paging() {
    let emu = Emulator::builder()
        .identity(entra_mi_emulator::Identity::user_assigned("a"))
        .identity(entra_mi_emulator::Identity::user_assigned("b"))
        .start()
        .await
        .unwrap();
    let provider = TokenProvider::new(emulator_credential(&emu));
    let auth = BearerAuthMiddleware::builder(&provider)
        .route(Route::new(&emu.graph_url(), Audience::microsoft_graph()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    // Without the middleware Graph says 401 with a Bearer challenge and a Graph error body.
    let plain = reqwest::get(format!("{}/servicePrincipals", emu.graph_url()))
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);
    assert!(
        plain.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer ")
    );
    let body: serde_json::Value = serde_json::from_slice(&plain.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    let mut url = format!("{}/servicePrincipals?$top=2", emu.graph_url());
    let mut names = Vec::new();
    let mut pages = 0;
    for _ in 0..10 {
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let page: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        for sp in page["value"].as_array().unwrap() {
            // The resource APIs' service principals follow the managed identities.
            if sp["servicePrincipalType"] == "ManagedIdentity" {
                names.push(sp["displayName"].as_str().unwrap().to_owned());
            }
        }
        pages += 1;
        match page["@odata.nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(names, ["vm", "a", "b"]);
    assert!(pages >= 2, "followed the next links");

    // Graph revokes the token once: the middleware refetches and retries.
    emu.push_graph_rejection(GraphRejection::InvalidToken);
    let before = emu.graph_requests();
    let resp = client
        .get(format!("{}/servicePrincipals", emu.graph_url()))
        .send()
        .await
        .unwrap();
    // The emulator caches tokens like the real endpoint: the refetch returns the same token,
    // so no retry can help and the 401 comes back.
    assert_eq!(resp.status(), 401);
    assert_eq!(emu.graph_requests(), before + 1);
}
