//! The receiving side's cost, each against a baseline measured in the same run:
//!
//! * **first sight** — `TokenValidator::validate_with` of a token it does not remember (keys
//!   warm: the RS256 verification, every claim check, the policy, remembering the token)
//!   against `jsonwebtoken::decode` alone (RS256, `aud`, `iss`, `exp`) of the same tokens
//!   (target ≤ 1.1×). Two tokens take turns through a validator that remembers one token, so
//!   every call verifies, and remembers its token in place of the other: the steady state of
//!   a full cache;
//! * **repeat** — a remembered token again: answered from memory (target ≥ 50× faster than
//!   first sight, and no allocation: counted before the criterion runs with a counting
//!   allocator, and the bench stops if any);
//! * **axum** — a whole request through a `Router` whose route has `ValidateTokenLayer`,
//!   against the same route without it, and against tower-http's
//!   `AsyncRequireAuthorizationLayer` driving the same validator (a boxed future per request).
//!
//! The tokens are real managed-identity tokens from the embedded emulator (RSA-2048).
//! After criterion's runs (one benchmark for seconds, then the next) the bench prints the
//! ratios of their medians, then times all six again in interleaved rounds (a batch of each,
//! back to back, the order rotated every round) and prints the median of the per-round
//! ratios: a slow stretch of a shared machine then weighs on both sides of a ratio alike.
//! Run: `cargo bench --bench validate`.

mod support;
use support::{Batch, interleaved, mean_ns};

use std::alloc::System;
use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::Criterion;
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
    /// Remembers one token: the two `tokens` taking turns are each verified every time.
    first_sight: TokenValidator,
    policy: Policy,
    token: String,
    tokens: [String; 2],
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
                    .cache_tokens(false)
                    .start(),
            )
            .unwrap();
        let fetch = || {
            rt.block_on(async {
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
            })
        };
        let tokens = [fetch(), fetch()];
        assert_ne!(tokens[0], tokens[1], "the emulator minted one token twice");
        let token = tokens[0].clone();
        let validator = TokenValidator::builder()
            .authority(emulator.authority_host())
            .tenant(emulator.tenant_id())
            .audience(ORDERS)
            .build()
            .unwrap();
        let first_sight = TokenValidator::builder()
            .authority(emulator.authority_host())
            .tenant(emulator.tenant_id())
            .audience(ORDERS)
            .verified_cache_capacity(1)
            .build()
            .unwrap();
        let policy = Policy::new().require_roles(["Orders.Read"]);
        // Warm keys: the first validation fetches them.
        for v in [&validator, &first_sight] {
            for t in &tokens {
                rt.block_on(v.validate_with(t, &policy)).unwrap();
            }
        }
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
            first_sight,
            policy,
            token,
            tokens,
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

/// `jsonwebtoken::decode` of `token` (the baseline of first sight).
fn decode(s: &Setup, token: &str) -> jsonwebtoken::TokenData<serde_json::Value> {
    jsonwebtoken::decode::<serde_json::Value>(black_box(token), &s.key, &s.validation).unwrap()
}

/// First sight of `token`: the validator remembers one token, and the two take turns.
fn first_sight(s: &Setup, token: &str) -> Claims {
    poll_once(s.first_sight.validate_with(black_box(token), &s.policy)).unwrap()
}

/// `token`, remembered.
fn repeat(s: &Setup) -> Claims {
    poll_once(s.validator.validate_with(black_box(&s.token), &s.policy)).unwrap()
}

fn benches() {
    let s = setup();
    println!(
        "tokens: two managed-identity tokens of {} and {} bytes",
        s.tokens[0].len(),
        s.tokens[1].len()
    );
    let allocations = count_repeat_allocations(s);
    println!("allocations in 10,000 repeated validations: {allocations}");
    assert_eq!(allocations, 0, "the repeated-token path allocated");
    let mut c = Criterion::default().configure_from_args();

    let mut g = c.benchmark_group("validate");
    g.bench_function("jsonwebtoken_decode", |b| {
        let mut turn = 0;
        b.iter(|| {
            turn ^= 1;
            decode(s, &s.tokens[turn])
        })
    });
    g.bench_function("first_sight", |b| {
        let mut turn = 0;
        b.iter(|| {
            turn ^= 1;
            first_sight(s, &s.tokens[turn])
        })
    });
    g.bench_function("repeat", |b| b.iter(|| repeat(s)));
    g.finish();

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

/// The median time in nanoseconds criterion recorded for `group/id` in this run (`None`
/// when it did not run in this process, as for [`mean_ns`]).
fn median_ns(group: &str, id: &str) -> Option<f64> {
    mean_ns(group, id)?;
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_owned());
    let text =
        std::fs::read_to_string(format!("{dir}/criterion/{group}/{id}/new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn time(ns: f64) -> String {
    if ns >= 1000.0 {
        format!("{:.2} us", ns / 1000.0)
    } else {
        format!("{ns:.1} ns")
    }
}

/// The ratios of criterion's medians (and of its means, in brackets).
fn criterion_ratios() {
    let both = |group, id| Some((median_ns(group, id)?, mean_ns(group, id)?));
    println!("criterion, medians of this run (ratios of the means in brackets):");
    if let (Some(jwt), Some(first), Some(again)) = (
        both("validate", "jsonwebtoken_decode"),
        both("validate", "first_sight"),
        both("validate", "repeat"),
    ) {
        println!(
            "  jsonwebtoken::decode {}, first sight {}, repeat {}",
            time(jwt.0),
            time(first.0),
            time(again.0)
        );
        println!(
            "  first sight / jsonwebtoken::decode: {:.2}x [{:.2}x] (target <= 1.1x)",
            first.0 / jwt.0,
            first.1 / jwt.1
        );
        println!(
            "  repeat: {:.0}x [{:.0}x] faster than first sight (target >= 50x)",
            first.0 / again.0,
            first.1 / again.1
        );
    }
    if let (Some(plain), Some(ours), Some(theirs)) = (
        both("axum", "no_layer"),
        both("axum", "validate_token_layer"),
        both("axum", "tower_http_async_authorization"),
    ) {
        println!(
            "  axum request: bare route {}; with ValidateTokenLayer {} = {:.2}x [{:.2}x] (+{:.0} ns); with tower-http AsyncRequireAuthorization {} = {:.2}x [{:.2}x] (+{:.0} ns)",
            time(plain.0),
            time(ours.0),
            ours.0 / plain.0,
            ours.1 / plain.1,
            ours.0 - plain.0,
            time(theirs.0),
            theirs.0 / plain.0,
            theirs.1 / plain.1,
            theirs.0 - plain.0
        );
    }
}

/// A [`Batch`] that makes `k` calls of `op` per unit of the round's batch, so candidates that
/// differ a hundredfold in cost each take about the same time per round.
fn scaled<'a, R>(k: u32, mut op: impl FnMut() -> R + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let calls = n * k;
        let start = Instant::now();
        for _ in 0..calls {
            black_box(op());
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(calls)
    })
}

/// All six again, in interleaved rounds.
fn interleaved_rounds() {
    const ROUNDS: usize = 300;
    const UNIT: u32 = 20;
    let s = setup();
    let (mut t1, mut t2) = (0, 0);
    let timings = interleaved(
        ROUNDS,
        UNIT,
        &mut [
            (
                "jsonwebtoken::decode",
                scaled(2, || {
                    t1 ^= 1;
                    decode(s, &s.tokens[t1])
                }),
            ),
            (
                "first sight",
                scaled(2, || {
                    t2 ^= 1;
                    first_sight(s, &s.tokens[t2])
                }),
            ),
            ("repeat", scaled(200, || repeat(s))),
            ("axum, bare route", scaled(40, || through(s, &s.plain))),
            (
                "axum, ValidateTokenLayer",
                scaled(40, || assert_eq!(through(s, &s.layered), StatusCode::OK)),
            ),
            (
                "axum, tower-http AsyncRequireAuthorization",
                scaled(40, || assert_eq!(through(s, &s.tower_http), StatusCode::OK)),
            ),
        ],
    );
    println!(
        "\ninterleaved, {ROUNDS} rounds (median time per call; median of the per-round ratios, quartiles in brackets):"
    );
    for t in &timings {
        println!("  {:<44} {}", t.name, time(t.median_ns()));
    }
    let ratio = |a: usize, b: usize| {
        let (q1, m, q3) = timings[a].ratio_to(&timings[b]);
        format!("{m:.2}x [{q1:.2}-{q3:.2}]")
    };
    let faster = |a: usize, b: usize| {
        let (q1, m, q3) = timings[b].ratio_to(&timings[a]);
        format!("{m:.0}x [{q1:.0}-{q3:.0}]")
    };
    println!(
        "  first sight / jsonwebtoken::decode: {} (target <= 1.1x)",
        ratio(1, 0)
    );
    println!(
        "  repeat: {} faster than first sight (target >= 50x)",
        faster(2, 1)
    );
    println!(
        "  axum request with ValidateTokenLayer / bare route: {}",
        ratio(4, 3)
    );
    println!(
        "  axum request with tower-http AsyncRequireAuthorization / bare route: {}; / ValidateTokenLayer: {}",
        ratio(5, 3),
        ratio(5, 4)
    );
}

fn main() {
    support::main(benches, || {
        criterion_ratios();
        interleaved_rounds();
    });
}
