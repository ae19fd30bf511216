//! Fleet simulation: 10,000 replicas start together, each with its own `TokenProvider` (the
//! real cache code) on one virtual clock, and each makes one request per virtual second.
//! Without jitter they would all refresh in the same second; the cache's early jitter spreads
//! them. Prints the refresh-time histogram and the peak refresh rate per second, both ways.
//!
//! Run: `cargo run --release --example fleet` (virtual time: it takes seconds, not hours).
//! With `-- --csv <file>` it also writes the refreshes of every second of the window, both
//! ways, as CSV (`second,without_jitter,with_jitter`, seconds since the replicas started),
//! which `cargo run -p entra-mi-charts -- fleet <file> <svg>` draws.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use entra_mi::time::TimeSource;
use entra_mi::time::{Clock, FixedJitter, Jitter, ManualClock, RandomJitter};
use entra_mi::{AccessToken, Audience, Error, TokenCredential, TokenProvider, TokenRequest};

const REPLICAS: usize = 10_000;
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Nothing can be due before half-life minus the largest jitter (5 min): the simulation jumps
/// to a minute before that, then walks second by second for this many seconds.
const WINDOW_START: Duration = Duration::from_secs(12 * 3600 - 6 * 60);
const WINDOW_SECONDS: u64 = 7 * 60;

/// A token endpoint on the virtual clock that records when each refresh reached it.
#[derive(Debug)]
struct Endpoint {
    clock: ManualClock,
    start: SystemTime,
    calls: Mutex<BTreeMap<u64, u64>>,
}

#[async_trait]
impl TokenCredential for Endpoint {
    async fn get_token(&self, _: &TokenRequest) -> Result<AccessToken, Error> {
        let now = self.clock.system_now();
        let second = now.duration_since(self.start).unwrap_or_default().as_secs();
        *self.calls.lock().unwrap().entry(second).or_default() += 1;
        Ok(AccessToken::new(format!("token-{second}"), now + LIFETIME))
    }
    fn name(&self) -> &str {
        "simulated-imds"
    }
}

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn simulate(jitter: Arc<dyn Jitter>) -> BTreeMap<u64, u64> {
    let clock = ManualClock::new();
    let endpoint = Arc::new(Endpoint {
        clock: clock.clone(),
        start: clock.system_now(),
        calls: Mutex::new(BTreeMap::new()),
    });
    let time = TimeSource::new(Arc::new(clock.clone()), Arc::new(clock.clone()), jitter);
    let audience = Audience::microsoft_graph();
    let mut handles = Vec::with_capacity(REPLICAS);
    let mut providers = Vec::with_capacity(REPLICAS);
    for _ in 0..REPLICAS {
        let provider = TokenProvider::builder_shared(endpoint.clone())
            .time_source(time.clone())
            .build();
        let handle = provider.handle(&audience);
        handle.header().await.expect("first fetch");
        handles.push(handle);
        providers.push(provider);
    }
    let started = |p: &[TokenProvider]| p.iter().map(|p| p.stats().fetches).sum::<u64>();
    let received = |e: &Endpoint| e.calls.lock().unwrap().values().sum::<u64>();
    let baseline = started(&providers) - received(&endpoint);
    endpoint.calls.lock().unwrap().clear();
    // Jump to the window, then walk second by second, every replica making one request per
    // second.
    clock.advance(WINDOW_START);
    for _ in 0..WINDOW_SECONDS {
        clock.advance(Duration::from_secs(1));
        for h in &handles {
            let _ = h.cached_header().expect("never expired");
        }
        // Let every refresh started this second reach the endpoint before time moves on.
        let expected = started(&providers) - baseline;
        for _ in 0..100_000 {
            if received(&endpoint) >= expected {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    endpoint.calls.lock().unwrap().clone()
}

fn report(name: &str, calls: &BTreeMap<u64, u64>) {
    let total: u64 = calls.values().sum();
    let (first, last) = (
        calls.keys().next().copied().unwrap_or(0),
        calls.keys().last().copied().unwrap_or(0),
    );
    let (peak_at, peak) = calls
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(s, n)| (*s, *n))
        .unwrap_or((0, 0));
    println!(
        "{name}: {total} refreshes between t={} and t={}; peak {peak} per second (at t={})",
        hms(first),
        hms(last),
        hms(peak_at)
    );
    let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
    for (s, n) in calls {
        *buckets.entry(s / 30 * 30).or_default() += n;
    }
    for (b, n) in buckets {
        let bar = "#".repeat(((n as f64 / REPLICAS as f64) * 200.0).ceil() as usize);
        println!("  {}  {n:>6}  {bar}", hms(b));
    }
}

/// Writes the refreshes per second of the window, both ways, as CSV.
fn write_csv(
    path: &str,
    without: &BTreeMap<u64, u64>,
    with: &BTreeMap<u64, u64>,
) -> std::io::Result<()> {
    let mut csv = String::from("second,without_jitter,with_jitter\n");
    let first = WINDOW_START.as_secs() + 1;
    for second in first..first + WINDOW_SECONDS {
        let count = |c: &BTreeMap<u64, u64>| c.get(&second).copied().unwrap_or(0);
        csv.push_str(&format!("{second},{},{}\n", count(without), count(with)));
    }
    std::fs::write(path, csv)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let csv = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--csv" => Some(path.clone()),
        _ => {
            eprintln!("usage: fleet [--csv <file>]");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("{REPLICAS} replicas, {} h tokens, all started at t=00:00:00, one request per replica per second\n", LIFETIME.as_secs() / 3600);
        let without = simulate(Arc::new(FixedJitter(0.0))).await;
        report("without jitter", &without);
        println!();
        let with = simulate(Arc::new(RandomJitter)).await;
        report("with the cache's jitter (up to 5 min early)", &with);
        let peak = |c: &BTreeMap<u64, u64>| c.values().copied().max().unwrap_or(0);
        println!("\npeak refresh rate: {} /s without jitter, {} /s with it ({}x lower)", peak(&without), peak(&with), peak(&without) / peak(&with).max(1));
        if let Some(path) = csv {
            write_csv(&path, &without, &with).expect("write the CSV file");
            println!("refreshes per second written to {path}");
        }
    });
}
