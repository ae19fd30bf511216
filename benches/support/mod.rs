//! Shared by the benches: a credential that answers at once, the baselines, a thread runner,
//! and reading criterion's results back to print ratios.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use entra_mi::{AccessToken, Error, TokenCredential, TokenRequest};
use http::HeaderValue;

/// The bench token: 1,232 bytes, 1,239 as a header — the size of a real managed-identity token
/// for Microsoft Graph.
pub(crate) fn token() -> String {
    format!("eyJ0eXAiOiJKV1QifQ.{}.c2lnbmF0dXJl", "x".repeat(1200))
}

/// A credential that returns a long-lived token at once (so the benches measure the cache
/// and the middlewares), counting its calls.
#[derive(Debug, Default)]
pub(crate) struct FixedToken(pub(crate) AtomicUsize);

#[async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(AccessToken::new(
            token(),
            SystemTime::now() + Duration::from_secs(86_400),
        ))
    }
    fn name(&self) -> &str {
        "fixed"
    }
}

/// The common design: a lock around a map of raw tokens, and `Bearer …` built per call.
pub(crate) fn common_design(map: &RwLock<HashMap<String, String>>, resource: &str) -> HeaderValue {
    let guard = map.read().unwrap();
    let token = guard.get(resource).unwrap();
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    v.set_sensitive(true);
    v
}

/// `threads` threads each run `op` `iters` times, started together; the slowest thread's
/// time (criterion divides by `iters`: time per call per thread).
pub(crate) fn run_on<F: Fn() + Sync>(threads: usize, iters: u64, op: &F) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
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
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

/// When this bench process started its criterion runs; set by [`main`].
static STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();

/// A bench binary's `main`: runs the criterion `benches`, then, when run by `cargo bench`
/// (not as a test), prints `report` (the ratios of what this run measured, from
/// [`mean_ns`], and any measures of its own).
pub(crate) fn main(benches: fn(), report: fn()) {
    STARTED.get_or_init(SystemTime::now);
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    if std::env::args().any(|a| a == "--bench") {
        println!(
            "\nratios of the criterion benchmarks this run measured (mean time; lower is faster):"
        );
        report();
    }
}

/// The mean time in nanoseconds criterion recorded for `group/id` in this run; `None` when
/// the benchmark did not run in this process (a filter left it out: criterion's file from an
/// earlier run is then still there, and its figure would be printed as if it were current).
pub(crate) fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").to_owned());
    let path = format!("{dir}/criterion/{group}/{id}/new/estimates.json");
    let written = std::fs::metadata(&path).ok()?.modified().ok()?;
    if written < *STARTED.get()? {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

/// A candidate of [`interleaved`]: runs its operation `n` times and returns the time per call
/// in nanoseconds. Made by [`batch_of`], so the loop is compiled around each operation.
pub(crate) type Batch<'a> = Box<dyn FnMut(u32) -> f64 + 'a>;

/// Wraps `op` into a [`Batch`]; each result goes through `black_box` and is dropped in the loop.
pub(crate) fn batch_of<'a, R>(mut op: impl FnMut() -> R + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(op());
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
    })
}

/// What [`interleaved`] measured of one candidate: its batch times, ns per call, one per
/// round.
pub(crate) struct Timing {
    pub(crate) name: &'static str,
    times: Vec<f64>,
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

impl Timing {
    /// The fastest batch.
    pub(crate) fn best_ns(&self) -> f64 {
        sorted(self.times.clone())[0]
    }

    /// The median batch.
    pub(crate) fn median_ns(&self) -> f64 {
        let v = sorted(self.times.clone());
        v[v.len() / 2]
    }

    /// Quartiles and median of this candidate's time over `base`'s in the same round:
    /// (q1, median, q3).
    pub(crate) fn ratio_to(&self, base: &Timing) -> (f64, f64, f64) {
        let v = sorted(
            self.times
                .iter()
                .zip(&base.times)
                .map(|(t, b)| t / b)
                .collect(),
        );
        (v[v.len() / 4], v[v.len() / 2], v[3 * v.len() / 4])
    }
}

/// Times the candidates in interleaved rounds: each round runs one batch of `batch` calls of
/// every candidate, in an order rotated from round to round, so that a slow stretch of a
/// shared machine weighs on all of them alike. 20 rounds of warm-up, then `rounds` counted.
/// Compare with [`Timing::ratio_to`]: the median of ratios of batches that ran microseconds
/// apart.
pub(crate) fn interleaved(
    rounds: usize,
    batch: u32,
    candidates: &mut [(&'static str, Batch<'_>)],
) -> Vec<Timing> {
    const WARM_UP: usize = 20;
    let k = candidates.len();
    let mut times = vec![Vec::with_capacity(rounds); k];
    for round in 0..WARM_UP + rounds {
        for j in 0..k {
            let i = (round + j) % k;
            let t = (candidates[i].1)(batch);
            if round >= WARM_UP {
                times[i].push(t);
            }
        }
    }
    candidates
        .iter()
        .zip(times)
        .map(|((name, _), times)| Timing { name, times })
        .collect()
}
