//! The cost of getting an `Authorization` header from the cache, against two baselines
//! measured in the same run:
//!
//! * **floor** — cloning a prebuilt `HeaderValue` (what any cache must at least do);
//! * **common design** — `RwLock<HashMap<String, String>>` plus building `Bearer …` per call.
//!
//! A third reference is a plain per-thread design: cloning a header held in a thread-local
//! `RefCell` (no version check, no clock, no counter). It is not the least such a design can
//! cost: its clone is moved to the caller right after it is written and pays the
//! store-forwarding wait that the cache's hit hides behind its clock read.
//!
//! After the criterion run it prints each path's mean as a ratio to both baselines, then
//! measures the single-thread paths again in interleaved rounds (batches of each, back to
//! back, order rotated every round) and prints the median of the per-round ratios: criterion
//! runs one function for seconds before the next, and on a shared machine a slow stretch can
//! land on one of them alone.
//! Run: `cargo bench --bench cache`.

mod support;
use support::{FixedToken, batch_of, common_design, interleaved, mean_ns, run_on};

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use entra_mi::{Audience, TokenProvider};
use http::HeaderValue;

/// Polls a future once; the cache's hit path is ready at once.
// Inlined, as `.await` in an async fn is: the output goes straight to the caller.
#[inline(always)]
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
    let provider = TokenProvider::new(FixedToken::default());
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

thread_local! {
    static HELD: RefCell<Option<HeaderValue>> = const { RefCell::new(None) };
}

/// A plain per-thread design: clone the header a thread-local holds.
#[inline(never)]
fn thread_local_clone() -> Option<HeaderValue> {
    HELD.try_with(|h| h.try_borrow().ok()?.clone())
        .ok()
        .flatten()
}

fn single_thread(c: &mut Criterion) {
    let f = fixture();
    let handle = f.provider.handle(&f.audience);
    let mut g = c.benchmark_group("hit");
    g.bench_function("floor_clone_headervalue", |b| {
        b.iter(|| black_box(&f.floor).clone())
    });
    g.bench_function("handle_cached_header", |b| {
        b.iter(|| black_box(&handle).cached_header())
    });
    HELD.with(|h| *h.borrow_mut() = Some(f.floor.clone()));
    g.bench_function("thread_local_clone_reference", |b| {
        b.iter(thread_local_clone)
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

fn two_threads(c: &mut Criterion) {
    let f = Arc::new(fixture());
    let handle = f.provider.handle(&f.audience);
    let mut g = c.benchmark_group("contended_2_threads");
    g.bench_function("floor_clone_headervalue", |b| {
        b.iter_custom(|n| run_on(2, n, &|| drop(black_box(black_box(&f.floor).clone()))))
    });
    g.bench_function("handle_cached_header", |b| {
        b.iter_custom(|n| {
            run_on(2, n, &|| {
                drop(black_box(black_box(&handle).cached_header()))
            })
        })
    });
    g.bench_function("common_rwlock_hashmap_format", |b| {
        b.iter_custom(|n| {
            run_on(2, n, &|| {
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
    for group in ["hit", "contended_2_threads"] {
        let (Some(floor), Some(common)) = (
            mean_ns(group, "floor_clone_headervalue"),
            mean_ns(group, "common_rwlock_hashmap_format"),
        ) else {
            continue;
        };
        println!("  {group}: floor {floor:.2} ns, common design {common:.2} ns");
        for id in [
            "handle_cached_header",
            "thread_local_clone_reference",
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

/// The single-thread hit against both baselines, in interleaved rounds.
fn interleaved_hit() {
    const ROUNDS: usize = 400;
    const BATCH: u32 = 5_000;
    let f = fixture();
    let handle = f.provider.handle(&f.audience);
    HELD.with(|h| *h.borrow_mut() = Some(f.floor.clone()));
    let timings = interleaved(
        ROUNDS,
        BATCH,
        &mut [
            (
                "floor_clone_headervalue",
                batch_of(|| black_box(&f.floor).clone()),
            ),
            (
                "handle_cached_header",
                batch_of(|| black_box(&handle).cached_header()),
            ),
            ("thread_local_clone_reference", batch_of(thread_local_clone)),
            (
                "handle_header_async",
                batch_of(|| poll_once(black_box(&handle).header())),
            ),
            (
                "common_rwlock_hashmap_format",
                batch_of(|| common_design(&f.common, black_box(f.audience.resource()))),
            ),
        ],
    );
    let (floor, common) = (&timings[0], &timings[4]);
    println!(
        "\ninterleaved, 1 thread, {ROUNDS} rounds of {BATCH} calls (median of per-round ratios, quartiles in brackets; fastest batch):"
    );
    for t in &timings[1..4] {
        let (q1, m, q3) = t.ratio_to(floor);
        let (c1, c, c3) = common.ratio_to(t);
        println!(
            "  {:<30} {:>6.1} ns = {m:.2}x the floor [{q1:.2}-{q3:.2}], {c:.1}x faster than the common design [{c1:.1}-{c3:.1}]; fastest batch {:.1} ns",
            t.name,
            t.median_ns(),
            t.best_ns()
        );
    }
    let (a1, a, a3) = timings[3].ratio_to(&timings[1]);
    println!(
        "  handle_header_async / handle_cached_header: {a:.2}x [{a1:.2}-{a3:.2}] (the awaited getter against the synchronous one, same rounds)"
    );
    println!(
        "  baselines: floor {:.1} ns (fastest {:.1}), common design {:.1} ns (fastest {:.1})",
        floor.median_ns(),
        floor.best_ns(),
        common.median_ns(),
        common.best_ns()
    );
}

fn main() {
    support::main(benches, || {
        print_ratios();
        interleaved_hit();
    });
}
