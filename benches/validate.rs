//! The receiving side's cost, each against a baseline measured in the same run:
//!
//! * **first sight** — `TokenValidator::validate` of a token it has not seen (keys warm: the
//!   RS256 verification, every claim check, remembering the token) against
//!   `jsonwebtoken::decode` alone (RS256, `aud`, `iss`, `exp`) of the same token
//!   (target ≤ 1.1×);
//! * **repeat** — the same token again: answered from memory (target ≥ 50× faster than first
//!   sight, and no allocation: counted before the criterion run with a counting allocator);
//! * **axum** — a whole request through a `Router` whose route has `ValidateTokenLayer`,
//!   against the same route without it, and against tower-http's
//!   `AsyncRequireAuthorizationLayer` driving the same validator (a boxed future per request).
//!
//! The token is a real managed-identity token from the embedded emulator (RSA-2048).
//! Run: `cargo bench --bench validate`.

mod support;
use support::mean_ns;

use std::alloc::System;
use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{BatchSize, Criterion};
use entra_mi_emulator::{ApiApp, Emulator, Identity};
use entra_mi_validate::{Claims, Policy, TokenValidator, ValidateTokenLayer};
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt as _;
use tower_http::auth::{AsyncAuthorizeRequest, AsyncRequireAuthorizationLayer};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ORDERS: &str = "api://orders";

struct Setup {
    rt: tokio::runtime::Runtime,
    _emulator: Emulator,
    validator: TokenValidator,
    policy: Policy,
    token: String,
    key: DecodingKey,
    validation: Validation,
    plain: Router,
    layered: Router,
    tower_http: Router,
}

static SETUP: OnceLock<Setup> = OnceLock::new();

/// Polls `f` once: validation with warm keys never waits.
fn poll_once<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("validation with warm keys must be ready at once"),
    }
}

async fn handler() -> &'static str {
    "ok"
}

async fn handler_with_claims(claims: Claims) -> &'static str {
    black_box(&claims);
    "ok"
}

/// The validator behind tower-http's authorization layer, as one would write it.
#[derive(Clone)]
struct EntraAuth {
    validator: TokenValidator,
    policy: Arc<Policy>,
}

impl<B: Send + 'static> AsyncAuthorizeRequest<B> for EntraAuth {
    type RequestBody = B;
    type ResponseBody = Body;
    type Future = Pin<Box<dyn Future<Output = Result<Request<B>, Response<Body>>> + Send>>;

    fn authorize(&mut self, mut req: Request<B>) -> Self::Future {
        let (validator, policy) = (self.validator.clone(), self.policy.clone());
        Box::pin(async move {
            let token = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|h| h.to_str().ok())
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::to_owned);
            let refused = || {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::UNAUTHORIZED;
                r
            };
            let Some(token) = token else {
                return Err(refused());
            };
            match validator.validate_with(&token, &policy).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    Ok(req)
                }
                Err(_) => Err(refused()),
            }
        })
    }
}

fn setup() -> &'static Setup {
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let caller = Identity::user_assigned("caller");
        let emulator = rt
            .block_on(
                Emulator::builder()
                    .identity(caller.clone())
                    .api(ApiApp::new("Orders", ORDERS, &["Orders.Read"]))
                    .roles(&caller.object_id, ORDERS, &["Orders.Read"])
                    .start(),
            )
            .unwrap();
        let token = rt.block_on(async {
            let url = format!(
                "{}?api-version=2018-02-01&resource={ORDERS}&client_id={}",
                emulator.imds_token_url(),
                caller.client_id
            );
            let body = reqwest::Client::new()
                .get(url)
                .header("Metadata", "true")
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        });
        let validator = TokenValidator::builder()
            .authority(emulator.authority_host())
            .tenant(emulator.tenant_id())
            .audience(ORDERS)
            .build()
            .unwrap();
        let policy = Policy::new().require_roles(["Orders.Read"]);
        // Warm keys: the first validation fetches them.
        rt.block_on(validator.validate_with(&token, &policy))
            .unwrap();
        let key =
            DecodingKey::from_jwk(&serde_json::from_value(emulator.public_key_jwk()).unwrap())
                .unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[ORDERS]);
        validation.set_issuer(&[emulator.issuer()]);
        validation.leeway = 300;
        let plain = Router::new().route("/orders", get(handler));
        let layered = Router::new().route(
            "/orders",
            get(handler_with_claims).route_layer(ValidateTokenLayer::with_policy(
                validator.clone(),
                policy.clone(),
            )),
        );
        let tower_http = Router::new().route(
            "/orders",
            get(handler_with_claims).route_layer(AsyncRequireAuthorizationLayer::new(EntraAuth {
                validator: validator.clone(),
                policy: Arc::new(policy.clone()),
            })),
        );
        Setup {
            rt,
            _emulator: emulator,
            validator,
            policy,
            token,
            key,
            validation,
            plain,
            layered,
            tower_http,
        }
    })
}

fn request(token: &str) -> Request<Body> {
    Request::get("/orders")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn through(s: &Setup, router: &Router) -> StatusCode {
    s.rt.block_on(router.clone().oneshot(request(&s.token)))
        .unwrap()
        .status()
}

/// Counts what a repeated validation allocates, before criterion runs.
fn count_repeat_allocations(s: &Setup) -> usize {
    for _ in 0..100 {
        drop(poll_once(s.validator.validate_with(&s.token, &s.policy)));
    }
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        let claims = poll_once(s.validator.validate_with(black_box(&s.token), &s.policy)).unwrap();
        black_box(claims);
    }
    let change = region.change();
    change.allocations + change.reallocations
}

fn benches() {
    let s = setup();
    let allocations = count_repeat_allocations(s);
    println!("allocations in 10,000 repeated validations: {allocations}");
    assert_eq!(allocations, 0, "the repeated-token path allocated");
    let mut c = Criterion::default().configure_from_args();

    let mut g = c.benchmark_group("validate");
    g.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&s.token), &s.key, &s.validation)
                .unwrap()
        })
    });
    g.bench_function("first_sight", |b| {
        b.iter_batched(
            || s.validator.forget_verified_tokens(),
            |()| poll_once(s.validator.validate_with(black_box(&s.token), &s.policy)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("repeat", |b| {
        b.iter(|| poll_once(s.validator.validate_with(black_box(&s.token), &s.policy)).unwrap())
    });
    g.finish();

    // Warm the cache for the request benches.
    poll_once(s.validator.validate_with(&s.token, &s.policy)).unwrap();
    let mut g = c.benchmark_group("axum");
    g.bench_function("no_layer", |b| b.iter(|| through(s, &s.plain)));
    g.bench_function("validate_token_layer", |b| {
        b.iter(|| assert_eq!(through(s, &s.layered), StatusCode::OK))
    });
    g.bench_function("tower_http_async_authorization", |b| {
        b.iter(|| assert_eq!(through(s, &s.tower_http), StatusCode::OK))
    });
    g.finish();
}

fn report() {
    let ratio = |a: (&str, &str), b: (&str, &str)| Some(mean_ns(a.0, a.1)? / mean_ns(b.0, b.1)?);
    if let Some(r) = ratio(
        ("validate", "first_sight"),
        ("validate", "jsonwebtoken_decode"),
    ) {
        println!("  first sight / jsonwebtoken::decode: {r:.2}x (target <= 1.1x)");
    }
    if let Some(r) = ratio(("validate", "first_sight"), ("validate", "repeat")) {
        println!("  first sight / repeat: {r:.0}x faster (target >= 50x)");
    }
    if let (Some(plain), Some(ours), Some(theirs)) = (
        mean_ns("axum", "no_layer"),
        mean_ns("axum", "validate_token_layer"),
        mean_ns("axum", "tower_http_async_authorization"),
    ) {
        println!(
            "  axum request: with ValidateTokenLayer {:.2}x the bare route (+{:.0} ns); tower-http AsyncRequireAuthorization {:.2}x (+{:.0} ns)",
            ours / plain,
            ours - plain,
            theirs / plain,
            theirs - plain
        );
    }
}

fn main() {
    support::main(benches, report);
}
