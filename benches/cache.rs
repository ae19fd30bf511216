//! The cost of getting an `Authorization` header from the cache, against two baselines
//! measured in the same run:
//!
//! * **floor** — cloning a prebuilt `HeaderValue` (what any cache must at least do);
//! * **common design** — `RwLock<HashMap<String, String>>` plus building `Bearer …` per call.
//!
//! After the criterion run it prints each path's mean as a ratio to both baselines.
//! Run: `cargo bench --bench cache`.

mod support;
use support::mean_ns;

use std::collections::HashMap;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group};
use entra_mi::{AccessToken, Audience, Error, TokenCredential, TokenProvider, TokenRequest};
use http::HeaderValue;

/// A credential that returns a long-lived token at once, so the benches measure the cache.
#[derive(Debug)]
struct FixedToken;

#[async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        let token = format!("eyJ0eXAiOiJKV1QifQ.{}.c2lnbmF0dXJl", "x".repeat(1200));
        let _ = request;
        Ok(AccessToken::new(
            token,
            SystemTime::now() + Duration::from_secs(86_400),
        ))
    }
    fn name(&self) -> &str {
        "fixed"
    }
}

/// Polls a future once; the cache's hit path is ready at once.
fn poll_once<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit must be ready at once"),
    }
}

struct Fixture {
    _rt: tokio::runtime::Runtime,
    provider: TokenProvider,
    audience: Audience,
    floor: HeaderValue,
    common: RwLock<HashMap<String, String>>,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = TokenProvider::new(FixedToken);
    let audience = Audience::microsoft_graph();
    let floor = rt.block_on(provider.header(&audience)).unwrap();
    let token = rt.block_on(provider.token(&audience)).unwrap();
    let mut map = HashMap::new();
    map.insert(audience.resource().to_owned(), token.secret().to_owned());
    for i in 0..8 {
        map.insert(format!("https://api{i}.example.com"), "other".into());
    }
    Fixture {
        _rt: rt,
        provider,
        audience,
        floor,
        common: RwLock::new(map),
    }
}

fn common_design(map: &RwLock<HashMap<String, String>>, resource: &str) -> HeaderValue {
    let guard = map.read().unwrap();
    let token = guard.get(resource).unwrap();
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    v.set_sensitive(true);
    v
}

fn single_thread(c: &mut Criterion) {
    let f = fixture();
    let handle = f.provider.handle(&f.audience);
    let mut g = c.benchmark_group("hit");
    g.bench_function("floor_clone_headervalue", |b| {
        b.iter(|| black_box(&f.floor).clone())
    });
    g.bench_function("handle_try_header", |b| {
        b.iter(|| black_box(&handle).try_header())
    });
    g.bench_function("handle_header_async", |b| {
        b.iter(|| poll_once(black_box(&handle).header()))
    });
    g.bench_function("provider_header_by_audience", |b| {
        b.iter(|| poll_once(f.provider.header(black_box(&f.audience))))
    });
    g.bench_function("common_rwlock_hashmap_format", |b| {
        b.iter(|| common_design(&f.common, black_box(f.audience.resource())))
    });
    g.finish();
}

/// Two threads hammering the same audience; time per operation per thread.
fn run_two<F: Fn() + Sync>(iters: u64, op: F) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.into_iter().max().unwrap()
}

fn two_threads(c: &mut Criterion) {
    let f = Arc::new(fixture());
    let handle = f.provider.handle(&f.audience);
    let mut g = c.benchmark_group("contended_2_threads");
    g.bench_function("floor_clone_headervalue", |b| {
        b.iter_custom(|n| run_two(n, || drop(black_box(black_box(&f.floor).clone()))))
    });
    g.bench_function("handle_try_header", |b| {
        b.iter_custom(|n| run_two(n, || drop(black_box(black_box(&handle).try_header()))))
    });
    g.bench_function("common_rwlock_hashmap_format", |b| {
        b.iter_custom(|n| {
            run_two(n, || {
                drop(black_box(common_design(&f.common, f.audience.resource())))
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = single_thread, two_threads
}

fn print_ratios() {
    println!("\nratios (mean time; lower is faster):");
    for group in ["hit", "contended_2_threads"] {
        let (Some(floor), Some(common)) = (
            mean_ns(group, "floor_clone_headervalue"),
            mean_ns(group, "common_rwlock_hashmap_format"),
        ) else {
            continue;
        };
        println!("  {group}: floor {floor:.2} ns, common design {common:.2} ns");
        for id in [
            "handle_try_header",
            "handle_header_async",
            "provider_header_by_audience",
        ] {
            if let Some(t) = mean_ns(group, id) {
                println!(
                    "    {id:<30} {t:>8.2} ns = {:.2}x the floor, {:.1}x faster than the common design",
                    t / floor,
                    common / t
                );
            }
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    if std::env::args().any(|a| a == "--bench") {
        print_ratios();
    }
}
