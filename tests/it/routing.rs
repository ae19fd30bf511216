//! Routing security, on the wire: which requests get a token through each middleware.
//!
//! Every host name below is pinned to a loopback server on 127.0.0.1 (reqwest's `resolve`,
//! a fixed-address connector for hyper), so look-alike hosts reach a real server that records
//! what it got.

use entra_mi_test_support as support;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use entra_mi::{Audience, Route, TokenProvider, TokenRouter};
use entra_mi_emulator::Emulator;
use entra_mi_reqwest::BearerAuthMiddleware;
use entra_mi_tower::BearerAuthLayer;
use http::header::AUTHORIZATION;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{RawServer, Recorded, Reply, emulator_credential, jwt_claims};
use tower::{Service, ServiceExt};

const API: &str = "api://routed-api";
const ADMIN: &str = "api://routed-admin";

/// Hosts pinned to the first server.
const HOSTS: &[&str] = &[
    "localhost",
    "localhost.evil.example",
    "evillocalhost",
    "xn--localhost-xyz.example",
    "tls-only.test",
];

struct Setup {
    _emu: Emulator,
    provider: TokenProvider,
    server: RawServer,
    other: RawServer,
}

async fn setup() -> Setup {
    let emu = Emulator::builder().start().await.unwrap();
    let provider = TokenProvider::new(emulator_credential(&emu));
    let ok = Reply::body(200, "text/plain", "ok");
    Setup {
        server: RawServer::start(ok.clone()).await,
        other: RawServer::start(ok).await,
        provider,
        _emu: emu,
    }
}

fn routes(s: &Setup) -> Vec<Route> {
    let p = s.server.addr.port();
    vec![
        Route::new(
            &format!("http://localhost:{p}/api"),
            Audience::new(API).unwrap(),
        )
        .unwrap(),
        Route::new(
            &format!("http://localhost:{p}/api/admin/"),
            Audience::new(ADMIN).unwrap(),
        )
        .unwrap(),
        // An https route: plain http to the same host and port must not match it.
        Route::new(
            &format!("https://tls-only.test:{p}"),
            Audience::new(API).unwrap(),
        )
        .unwrap(),
    ]
}

/// (URL, expected audience of the token the server sees; `None` for no token).
fn cases(s: &Setup) -> Vec<(String, Option<&'static str>)> {
    let p = s.server.addr.port();
    let q = s.other.addr.port();
    vec![
        (format!("http://localhost:{p}/api"), Some(API)),
        (format!("http://localhost:{p}/api/"), Some(API)),
        (format!("http://localhost:{p}/api/orders?top=1"), Some(API)),
        (format!("http://LocalHost:{p}/api/orders"), Some(API)),
        (format!("http://localhost:{p}/api/admin"), Some(ADMIN)),
        (
            format!("http://localhost:{p}/api/admin/users/1"),
            Some(ADMIN),
        ),
        (format!("http://localhost:{p}/api/adminx"), Some(API)),
        (format!("http://localhost:{p}/apix"), None),
        (format!("http://localhost:{p}/ap"), None),
        (format!("http://localhost:{p}/"), None),
        (format!("http://localhost:{p}/API/orders"), None),
        (format!("http://localhost:{p}/api/../admin"), None),
        (format!("http://localhost:{p}/api/%2e%2e/admin"), None),
        (format!("http://localhost.evil.example:{p}/api"), None),
        (format!("http://evillocalhost:{p}/api"), None),
        (format!("http://xn--localhost-xyz.example:{p}/api"), None),
        (format!("http://localhost.:{p}/api"), None),
        (format!("http://user:secret@localhost:{p}/api"), None),
        (
            format!("http://localhost@localhost.evil.example:{p}/api"),
            None,
        ),
        (format!("http://127.0.0.1:{p}/api"), None),
        (format!("http://localhost:{q}/api"), None),
        (format!("http://tls-only.test:{p}/"), None),
    ]
}

fn bearer_audience(r: &Recorded) -> Option<String> {
    let token = r.header("authorization")?.strip_prefix("Bearer ")?;
    Some(jwt_claims(token)["aud"].as_str()?.to_owned())
}

/// The request the servers saw for one URL (the only one since the last check).
fn last(s: &Setup, before: (usize, usize)) -> Recorded {
    let a = s.server.requests();
    let b = s.other.requests();
    assert_eq!(
        a.len() + b.len(),
        before.0 + before.1 + 1,
        "exactly one request arrived"
    );
    if a.len() > before.0 {
        a.last()
    } else {
        b.last()
    }
    .unwrap()
    .clone()
}

#[tokio::test]
async fn reqwest_middleware_gives_tokens_only_to_routed_urls() {
    let s = setup().await;
    let auth = BearerAuthMiddleware::builder(&s.provider).allow_http_loopback(true);
    let auth = routes(&s)
        .into_iter()
        .fold(auth, |b, r| b.route(r))
        .build()
        .unwrap();
    let mut raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for h in HOSTS {
        raw = raw.resolve(h, s.server.addr);
    }
    raw = raw.resolve("localhost.", s.server.addr);
    let client = reqwest_middleware::ClientBuilder::new(raw.build().unwrap())
        .with(auth)
        .build();
    for (url, expected) in cases(&s) {
        let before = (s.server.count(), s.other.count());
        let resp = client.get(&url).send().await;
        let Ok(resp) = resp else {
            // reqwest refused to send it (the URL itself is unusable): no token leaked either.
            assert_eq!(expected, None, "{url}");
            continue;
        };
        assert_eq!(resp.status(), 200, "{url}");
        let got = last(&s, before);
        assert_eq!(bearer_audience(&got).as_deref(), expected, "{url}");
        if expected.is_none() {
            assert!(
                !got.header("authorization")
                    .is_some_and(|a| a.starts_with("Bearer")),
                "{url}"
            );
        }
    }
}

#[tokio::test]
async fn reqwest_middleware_leaves_existing_authorization_and_unrouted_requests_alone() {
    let s = setup().await;
    let auth = BearerAuthMiddleware::builder(&s.provider).allow_http_loopback(true);
    let auth = routes(&s)
        .into_iter()
        .fold(auth, |b, r| b.route(r))
        .build()
        .unwrap();
    let raw = reqwest::Client::builder()
        .resolve("localhost", s.server.addr)
        .build()
        .unwrap();
    let client = reqwest_middleware::ClientBuilder::new(raw.clone())
        .with(auth)
        .build();
    let p = s.server.addr.port();

    client
        .get(format!("http://localhost:{p}/api/x"))
        .header(AUTHORIZATION, "Basic dXNlcjpwdw==")
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.server.requests()[0].header("authorization"),
        Some("Basic dXNlcjpwdw==")
    );

    // The same unrouted request, with and without the middleware: byte-identical.
    let url = format!("http://localhost:{p}/unrouted?q=1");
    raw.post(&url)
        .header("x-custom", "1")
        .body("payload")
        .send()
        .await
        .unwrap();
    client
        .post(&url)
        .header("x-custom", "1")
        .body("payload")
        .send()
        .await
        .unwrap();
    let r = s.server.requests();
    let (a, b) = (&r[1], &r[2]);
    assert_eq!(
        (&a.method, &a.target, &a.headers, &a.body),
        (&b.method, &b.target, &b.headers, &b.body)
    );
}

/// A hyper connector whose every connection goes to one address, whatever the URI's host.
#[derive(Clone)]
struct Pinned(SocketAddr);

type Connecting =
    Pin<Box<dyn Future<Output = std::io::Result<TokioIo<tokio::net::TcpStream>>> + Send>>;

impl Service<http::Uri> for Pinned {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = Connecting;
    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: http::Uri) -> Connecting {
        let addr = self.0;
        Box::pin(async move { Ok(TokioIo::new(tokio::net::TcpStream::connect(addr).await?)) })
    }
}

fn pinned_client(addr: SocketAddr) -> Client<Pinned, Full<bytes::Bytes>> {
    Client::builder(TokioExecutor::new()).build(Pinned(addr))
}

#[tokio::test]
async fn tower_layer_gives_tokens_only_to_routed_uris() {
    let s = setup().await;
    let layer = BearerAuthLayer::builder(&s.provider).allow_http_loopback(true);
    let layer = routes(&s)
        .into_iter()
        .fold(layer, |b, r| b.route(r))
        .build()
        .unwrap();
    let p = s.server.addr.port();
    let mut cases = cases(&s);
    // URIs are not normalised: these spellings reach the server as they are.
    cases.push((format!("http://localhost:{p}/api/./orders"), None));
    cases.push((format!("http://localhost:{p}/api/%2E/orders"), None));
    cases.push((format!("HTTP://localhost:{p}/api/orders"), Some(API)));
    for (url, expected) in cases {
        let Ok(uri) = url.parse::<http::Uri>() else {
            assert_eq!(expected, None, "{url}");
            continue;
        };
        // Connect wherever the URI's port says: the fixed connector takes the right server.
        let target = if uri.port_u16() == Some(s.other.addr.port()) {
            s.other.addr
        } else {
            s.server.addr
        };
        let mut svc = tower::ServiceBuilder::new()
            .layer(layer.clone())
            .service(pinned_client(target));
        let before = (s.server.count(), s.other.count());
        let request = http::Request::get(uri).body(Full::default()).unwrap();
        let resp = svc.ready().await.unwrap().call(request).await;
        let Ok(resp) = resp else {
            assert_eq!(expected, None, "{url}: {:?}", resp.err());
            continue;
        };
        assert_eq!(resp.status(), 200, "{url}");
        let got = last(&s, before);
        assert_eq!(bearer_audience(&got).as_deref(), expected, "{url}");
    }
}

#[tokio::test]
async fn tower_layer_leaves_existing_authorization_alone() {
    let s = setup().await;
    let layer = BearerAuthLayer::builder(&s.provider).allow_http_loopback(true);
    let layer = routes(&s)
        .into_iter()
        .fold(layer, |b, r| b.route(r))
        .build()
        .unwrap();
    let mut svc = tower::ServiceBuilder::new()
        .layer(layer)
        .service(pinned_client(s.server.addr));
    let p = s.server.addr.port();
    let request = http::Request::get(format!("http://localhost:{p}/api/x"))
        .header(AUTHORIZATION, "Bearer caller-chosen")
        .body(Full::default())
        .unwrap();
    svc.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(
        s.server.requests()[0].header("authorization"),
        Some("Bearer caller-chosen")
    );
}

#[tokio::test]
async fn ipv6_loopback_and_the_http_opt_in() {
    let emu = Emulator::builder().start().await.unwrap();
    let provider = TokenProvider::new(emulator_credential(&emu));
    let aud = || Audience::new(API).unwrap();
    let v6 = Route::new("http://[::1]:8080/api", aud()).unwrap();
    // Refused without the opt-in, and for non-loopback hosts even with it.
    for (route, allow) in [
        (v6.clone(), false),
        (Route::new("http://localhost:8080", aud()).unwrap(), false),
        (Route::new("http://127.0.0.1:8080", aud()).unwrap(), false),
        (Route::new("http://example.com", aud()).unwrap(), true),
        (Route::new("http://[::2]:8080", aud()).unwrap(), true),
        (Route::new("http://10.0.0.1", aud()).unwrap(), true),
    ] {
        let err = TokenRouter::builder(&provider)
            .route(route.clone())
            .allow_http_loopback(allow)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                entra_mi::Error::Configuration(ref c)
                    if matches!(**c, entra_mi::error::ConfigurationError::Route { .. })
            ),
            "{route}: {err}"
        );
    }
    for bad in [
        "ftp://x.example",
        "https://u:p@x.example",
        "https://x.example/?a=1",
        "https://x.example/#f",
        "/relative",
        "https://u:PW-CANARY@[bad/x",
        "https://u:PW#CANARY@x.example/",
    ] {
        let err = Route::new(bad, aud()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(":p@"), "{shown}");
        assert!(!shown.contains("CANARY"), "{shown}");
    }
    let dup = TokenRouter::builder(&provider)
        .route(Route::microsoft_graph())
        .route(Route::new("https://graph.microsoft.com/", Audience::microsoft_graph()).unwrap())
        .build();
    assert!(dup.is_err());

    let router = TokenRouter::builder(&provider)
        .route(v6)
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let url = |s: &str| router.match_url(&s.parse().unwrap()).is_some();
    let uri = |s: &str| router.match_uri(&s.parse().unwrap()).is_some();
    assert!(url("http://[::1]:8080/api/x"));
    assert!(
        url("http://[0:0:0:0:0:0:0:1]:8080/api/x"),
        "the URL parser normalises IPv6"
    );
    assert!(uri("http://[::1]:8080/api/x"));
    assert!(
        !uri("http://[0:0:0:0:0:0:0:1]:8080/api/x"),
        "an unusual spelling is not matched"
    );
    assert!(!url("http://[::1]:8081/api/x"));
    assert!(!url("https://[::1]:8080/api/x"));
    assert!(!url("http://127.0.0.1:8080/api/x"));
    assert!(!uri("/api/x"), "origin-form URIs never match");
}

#[test]
fn convenience_routes() {
    let graph = Route::microsoft_graph();
    assert_eq!(
        graph.to_string(),
        "https://graph.microsoft.com:443 -> https://graph.microsoft.com"
    );
    assert_eq!(
        Route::azure_resource_manager().audience().resource(),
        "https://management.azure.com/"
    );
    let kv = Route::key_vault("https://my-vault.vault.azure.net/").unwrap();
    assert_eq!(
        (kv.host(), kv.audience().resource()),
        ("my-vault.vault.azure.net", "https://vault.azure.net")
    );
    let st = Route::storage("https://acct.blob.core.windows.net").unwrap();
    assert_eq!(st.audience().resource(), "https://storage.azure.com/");
    let api = Route::api(
        "11111111-2222-3333-4444-555555555555",
        "https://orders.example.com/v2/",
    )
    .unwrap();
    assert_eq!(
        api.audience().resource(),
        "api://11111111-2222-3333-4444-555555555555"
    );
    assert_eq!(api.path_prefix(), "/v2");
}

/// From 8 routes on, matching goes through a host index; every rule above must hold there too,
/// with the same answers as a small table.
#[tokio::test]
async fn large_tables_keep_every_rule() {
    let s = setup().await;
    let small = TokenRouter::builder(&s.provider)
        .routes(routes(&s))
        .allow_http_loopback(true)
        .build()
        .unwrap();
    let filler = (0..40).map(|i| {
        Route::new(
            &format!("https://api{i}.example.com/v{i}"),
            Audience::new(&format!("api://filler-{i}")).unwrap(),
        )
        .unwrap()
    });
    let large = TokenRouter::builder(&s.provider)
        .routes(filler.chain(routes(&s)))
        .route(Route::new("http://[::1]:8080/api", Audience::new(ADMIN).unwrap()).unwrap())
        .allow_http_loopback(true)
        .build()
        .unwrap();
    assert_eq!(large.routes().count(), 44);
    let aud = |r: Option<&entra_mi::middleware::BoundRoute>| r.map(|b| b.audience().to_string());
    for (url, expected) in cases(&s) {
        let parsed_url: url::Url = url.parse().unwrap();
        let want = expected.map(str::to_owned);
        assert_eq!(aud(small.match_url(&parsed_url)), want, "small, url {url}");
        assert_eq!(aud(large.match_url(&parsed_url)), want, "large, url {url}");
        if let Ok(uri) = url.parse::<http::Uri>() {
            assert_eq!(
                aud(small.match_uri(&uri)),
                aud(large.match_uri(&uri)),
                "uri {url}"
            );
        }
    }
    let uri = |u: &str| aud(large.match_uri(&u.parse().unwrap()));
    let url = |u: &str| aud(large.match_url(&u.parse().unwrap()));
    for i in [0, 7, 39] {
        let want = Some(format!("api://filler-{i}"));
        assert_eq!(uri(&format!("https://API{i}.Example.com/v{i}/x")), want);
        assert_eq!(url(&format!("https://api{i}.example.com:443/v{i}")), want);
        assert_eq!(uri(&format!("https://api{i}.example.com:443/v{i}")), want);
        assert_eq!(uri(&format!("https://api{i}.example.com/v{}", i + 1)), None);
        assert_eq!(uri(&format!("https://api{i}.example.com:8443/v{i}")), None);
        assert_eq!(uri(&format!("http://api{i}.example.com/v{i}")), None);
        assert_eq!(uri(&format!("https://api{i}.example.com.evil/v{i}")), None);
        assert_eq!(uri(&format!("https://x@api{i}.example.com/v{i}")), None);
    }
    assert_eq!(uri("https://api40.example.com/v40"), None);
    let admin = Some(ADMIN.to_owned());
    assert_eq!(uri("http://[::1]:8080/api/x"), admin);
    assert_eq!(url("http://[0:0:0:0:0:0:0:1]:8080/api/x"), admin);
    assert_eq!(uri("http://[::1]:8081/api/x"), None);
    assert_eq!(uri("http://[::2]:8080/api/x"), None);
}
