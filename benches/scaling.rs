//! How the hot path's cost grows with the number of routes (audiences) and of threads, and
//! what a cold cache costs 1,000 concurrent callers — each against a baseline in the same run.
//!
//! * **routes** — matching a request URI and taking its cached header (what both middlewares
//!   do per request) with 1, 10, 100 and 1,000 routes, each its own audience; the URI hits a
//!   route in the middle of the table. Baseline: the same with 1 route.
//! * **threads** — `TokenHandle::cached_header` on 1, 2, 4 and 8 threads at once (this machine
//!   has 2 cores), time per call per thread; baselines: cloning a prebuilt `HeaderValue` and
//!   the common design (`RwLock<HashMap<String, String>>` + `format!`) on as many threads.
//! * **cold** — 1,000 tasks ask an empty cache for a token at once (multi-thread runtime, 2
//!   workers); the time until all have it, against one task asking alone. The credential
//!   answers at once, so this is the cache's own cost of single flight: one fetch, 999 waiters
//!   woken.
//!
//! Run: `cargo bench --bench scaling`.

mod support;
use support::{FixedToken, common_design, mean_ns, run_on, token};

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group};
use entra_mi::test_util::reference_match;
use entra_mi::{Audience, Route, TokenProvider, TokenRouter};
use http::Uri;

const ROUTE_COUNTS: [usize; 4] = [1, 10, 100, 1000];
const THREAD_COUNTS: [usize; 4] = [1, 2, 4, 8];
const COLD_CALLERS: usize = 1000;

fn routes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _enter = rt.enter();
    let mut g = c.benchmark_group("routes");
    for n in ROUTE_COUNTS {
        let provider = TokenProvider::new(FixedToken::default());
        let router = TokenRouter::builder(&provider)
            .routes((0..n).map(|i| {
                Route::new(
                    &format!("https://api{i}.example.com/v1"),
                    Audience::new(&format!("api://bench-{i}")).unwrap(),
                )
                .unwrap()
            }))
            .build()
            .unwrap();
        // Warm every audience's slot.
        for route in router.routes() {
            rt.block_on(provider.header(route.audience())).unwrap();
        }
        let target = format!("https://api{}.example.com/v1/orders?top=5", n / 2);
        let uri: Uri = target.parse().unwrap();
        // The measured lookup finds the route the reference matcher picks.
        let expected = reference_match(router.routes(), &url::Url::parse(&target).unwrap());
        assert!(expected.is_some());
        assert_eq!(router.match_uri(&uri).map(|b| b.route()), expected);
        g.bench_with_input(BenchmarkId::new("match_and_header", n), &n, |b, _| {
            b.iter(|| {
                router
                    .match_uri(black_box(&uri))
                    .and_then(|r| r.handle().cached_header())
            })
        });
    }
    g.finish();
}

fn threads(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let provider = TokenProvider::new(FixedToken::default());
    let audience = Audience::microsoft_graph();
    let floor = rt.block_on(provider.header(&audience)).unwrap();
    let handle = provider.handle(&audience);
    let mut map = HashMap::new();
    map.insert(audience.resource().to_owned(), token());
    let common = RwLock::new(map);
    let mut g = c.benchmark_group("threads");
    for n in THREAD_COUNTS {
        g.bench_with_input(
            BenchmarkId::new("floor_clone_headervalue", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    run_on(n, iters, &|| drop(black_box(black_box(&floor).clone())))
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("handle_cached_header", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                run_on(n, iters, &|| {
                    drop(black_box(black_box(&handle).cached_header()))
                })
            })
        });
        g.bench_with_input(
            BenchmarkId::new("common_rwlock_hashmap_format", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    run_on(n, iters, &|| {
                        drop(black_box(common_design(&common, audience.resource())))
                    })
                })
            },
        );
    }
    g.finish();
}

/// `callers` tasks ask an empty cache at once; the time until every one has its header.
fn cold_round(rt: &tokio::runtime::Runtime, callers: usize) -> Duration {
    let credential = Arc::new(FixedToken::default());
    let provider = TokenProvider::builder_shared(credential.clone()).build();
    let handle = provider.handle(&Audience::microsoft_graph());
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let handle = handle.clone();
                tokio::spawn(async move { handle.header().await.map(drop) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        start.elapsed()
    });
    assert_eq!(credential.0.load(Ordering::Relaxed), 1, "single flight");
    elapsed
}

fn cold(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("cold");
    for callers in [1, COLD_CALLERS] {
        g.bench_with_input(BenchmarkId::new("callers", callers), &callers, |b, &n| {
            b.iter_custom(|iters| (0..iters).map(|_| cold_round(&rt, n)).sum())
        });
    }
    // What the 1,000 tasks cost without any cache: spawning them and awaiting a ready value.
    g.bench_function("spawn_only_1000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    rt.block_on(async {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..COLD_CALLERS)
                            .map(|_| tokio::spawn(async { black_box(1) }))
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                        start.elapsed()
                    })
                })
                .sum()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = routes, threads, cold
}

fn print_ratios() {
    if let Some(one) = mean_ns("routes", "match_and_header/1") {
        for n in ROUTE_COUNTS {
            if let Some(t) = mean_ns("routes", &format!("match_and_header/{n}")) {
                println!(
                    "  routes {n:>5}: match + header {t:>8.2} ns = {:.2}x the 1-route cost",
                    t / one
                );
            }
        }
    }
    for n in THREAD_COUNTS {
        let (Some(floor), Some(ours), Some(common)) = (
            mean_ns("threads", &format!("floor_clone_headervalue/{n}")),
            mean_ns("threads", &format!("handle_cached_header/{n}")),
            mean_ns("threads", &format!("common_rwlock_hashmap_format/{n}")),
        ) else {
            continue;
        };
        println!(
            "  threads {n}: cached_header {ours:>8.2} ns = {:.2}x the floor ({floor:.2} ns), {:.1}x faster than the common design ({common:.2} ns)",
            ours / floor,
            common / ours
        );
    }
    if let (Some(one), Some(many), Some(spawn)) = (
        mean_ns("cold", "callers/1"),
        mean_ns("cold", &format!("callers/{COLD_CALLERS}")),
        mean_ns("cold", "spawn_only_1000"),
    ) {
        println!(
            "  cold cache: 1 caller {:.1} us; {COLD_CALLERS} callers {:.1} us (1 fetch); spawning {COLD_CALLERS} tasks alone {:.1} us",
            one / 1e3,
            many / 1e3,
            spawn / 1e3
        );
        println!(
            "    single flight adds {:.2} us per caller over spawning the tasks",
            (many - spawn).max(0.0) / 1e3 / COLD_CALLERS as f64
        );
    }
}

fn main() {
    support::main(benches, print_ratios);
}
