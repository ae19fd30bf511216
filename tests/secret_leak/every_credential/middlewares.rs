//! Both middlewares end to end: success, 401 recovery, 401 returned, a claims challenge, and
//! no token at all; then the Arc key files and a token made up here.

use super::*;

pub(super) async fn run(w: &World, ev: &mut Evidence) {
    let World {
        arc_dir, no_retry, ..
    } = w;
    let emu_mw = Emulator::builder()
        .cache_tokens(false)
        .start()
        .await
        .unwrap();
    let api = Downstream::start(&emu_mw, AUD).await;
    let provider = TokenProvider::new(support::emulator_credential(&emu_mw));
    let route = || Route::new(&api.url("/"), Audience::new(AUD).unwrap()).unwrap();
    ev.both("route", &route());
    let router_builder = TokenRouter::builder(&provider)
        .route(route())
        .allow_http_loopback(true);
    ev.debug("router builder", &router_builder);
    let router = router_builder.build().unwrap();
    ev.debug("router", &router);
    let bound = router
        .match_url(&url::Url::parse(&api.url("/x")).unwrap())
        .unwrap();
    ev.debug("bound route", bound);
    let mw_builder = BearerAuthMiddleware::builder(&provider)
        .route(route())
        .allow_http_loopback(true);
    ev.debug("middleware builder", &mw_builder);
    let mw = mw_builder.build().unwrap();
    ev.debug("middleware", &mw);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(mw)
        .build();
    ev.debug("reqwest client", &client);
    let claims = Mode::ClaimsOnce {
        claims: r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#.into(),
        url_safe: true,
    };
    for (mode, expected) in [
        (Mode::Accept, 200),
        (Mode::RevokeNext, 200),
        (claims.clone(), 200),
        (Mode::RejectAll, 401),
    ] {
        api.set_mode(mode);
        let resp = client
            .post(api.url("/orders"))
            .body("{\"id\":1}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expected);
        ev.debug("reqwest response", &resp);
    }
    api.set_mode(Mode::Accept);

    let layer_builder = BearerAuthLayer::builder(&provider)
        .route(route())
        .allow_http_loopback(true);
    ev.debug("layer builder", &layer_builder);
    let layer = layer_builder.build().unwrap().with_replay(CloneBody);
    ev.debug("layer", &layer);
    let svc = layer.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    ev.debug("tower service", &svc);
    for (mode, expected) in [
        (Mode::Accept, 200),
        (Mode::RevokeNext, 200),
        (claims, 200),
        (Mode::RejectAll, 401),
    ] {
        api.set_mode(mode);
        let req = http::Request::post(api.url("/orders"))
            .body(Full::new(Bytes::from_static(b"{\"id\":2}")))
            .unwrap();
        let mut ready = svc.clone();
        let fut = tower::Service::call(ready.ready().await.unwrap(), req);
        ev.debug("tower future", &fut);
        let resp = fut.await.unwrap();
        assert_eq!(resp.status(), expected);
        ev.debug("tower response", &resp);
    }
    api.set_mode(Mode::Accept);
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static(
            r#"Bearer error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnt9fQ==""#,
        ),
    );
    ev.debug("challenge", &BearerChallenge::from_headers(&headers));
    ev.debug("provider", &provider);
    ev.debug("stats", &provider.stats());
    for s in api.seen() {
        if let Some(token) = s
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
        {
            ev.secret(token);
        }
    }
    assert!(api.distinct_tokens() >= 4, "401 recovery got new tokens");

    // No token to be had: the middlewares' errors.
    let failing = RawServer::start(Reply::json(400, error_body("invalid_request"))).await;
    let bad_provider = TokenProvider::new(
        ManagedIdentityCredential::builder()
            .environment(env(&[
                ("IDENTITY_ENDPOINT", &failing.url("/msi/token")),
                ("IDENTITY_HEADER", IDENTITY_HEADER),
            ]))
            .retry(no_retry.clone())
            .build()
            .unwrap(),
    );
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            BearerAuthMiddleware::builder(&bad_provider)
                .route(route())
                .allow_http_loopback(true)
                .build()
                .unwrap(),
        )
        .build();
    let err = client.get(api.url("/orders")).send().await.unwrap_err();
    ev.error("reqwest middleware error", &err);
    let svc = BearerAuthLayer::builder(&bad_provider)
        .route(route())
        .allow_http_loopback(true)
        .build()
        .unwrap()
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let err = svc
        .oneshot(
            http::Request::get(api.url("/orders"))
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    ev.error("tower layer error", &*err);
    ev.debug("failing provider", &bad_provider);

    // Key files the emulator wrote for Arc challenges.
    for entry in std::fs::read_dir(arc_dir.path()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "key") {
            ev.secret(std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    // A token made up here, every way it can be shown.
    let t = AccessToken::new(BODY_TOKEN, SystemTime::now() + Duration::from_secs(60));
    ev.token("made-up token", &t);
    ev.debug(
        "request with claims",
        &graph().with_claims(format!("{{\"x\":\"{BODY_TOKEN}\"}}")),
    );
}
