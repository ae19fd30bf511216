//! The official Azure SDK's bearer-token policy with `entra_mi_azure::TokenProviderCredential`
//! against the same policy with the official identity crate's `ManagedIdentityCredential`
//! (`azure_identity` 1.0), both on the emulator's App Service endpoint:
//!
//! * **get_token hit** — a warm `get_token` of each credential (24 h tokens);
//! * **policy per request, steady** — `BearerTokenAuthorizationPolicy::send` over a terminal
//!   policy that answers `200` at once, with 24 h tokens: the policy serves its own copy and
//!   calls neither credential;
//! * **policy per request, last 5 minutes** — the same with tokens that live 4 minutes, so
//!   every request falls inside the 5 minutes before expiry in which the policy asks its
//!   credential again on each request (the official credential's cache then refetches too,
//!   and the endpoint hands back a token that is still inside that window);
//!
//! each with the terminal policy alone as the floor. Ratios are printed after the run.
//!
//! The official credential reads `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` from the process
//! environment. So this binary starts the emulators, then runs itself once per scenario as a
//! child process with those variables set; entra-mi's credential reads the same environment.
//! Run: `cargo bench --bench azure`.

mod support;

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::Headers;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncRawResponse, ClientOptions, Context, Method, Request, StatusCode, Transport, Url,
};
use criterion::Criterion;
use entra_mi::managed_identity::SourceKind;
use entra_mi::{ManagedIdentityCredential, TokenProvider};
use entra_mi_azure::TokenProviderCredential;
use entra_mi_emulator::Emulator;
use support::{Batch, interleaved, mean_ns};

/// Tells a child process which scenario to run.
const SCENARIO: &str = "ENTRA_MI_BENCH_AZURE_SCENARIO";
const SCOPE: &str = "https://vault.azure.net/.default";
/// Every environment variable that selects a managed-identity source other than App Service.
const OTHER_SOURCES: [&str; 5] = [
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
];

fn main() {
    match std::env::var(SCENARIO).as_deref() {
        Ok("steady") => support::main(steady, report_steady),
        Ok("window") => support::main(window, report_window),
        Ok(other) => panic!("unknown {SCENARIO}={other}"),
        Err(_) => parent(),
    }
}

/// Starts the two emulators (24 h and 4 min tokens) and runs this binary once per scenario.
fn parent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let steady = rt.block_on(Emulator::builder().start()).expect("emulator");
    let window = rt
        .block_on(
            Emulator::builder()
                .token_lifetime(Duration::from_secs(240))
                .start(),
        )
        .expect("emulator");
    let exe = std::env::current_exe().expect("this binary");
    for (scenario, emulator) in [("steady", &steady), ("window", &window)] {
        let mut child = Command::new(&exe);
        child
            .args(std::env::args_os().skip(1))
            .env(SCENARIO, scenario)
            .env("IDENTITY_ENDPOINT", emulator.app_service_endpoint())
            .env("IDENTITY_HEADER", emulator.identity_header());
        for name in OTHER_SOURCES {
            child.env_remove(name);
        }
        let status = child.status().expect("child bench process");
        assert!(status.success(), "{scenario} scenario: {status}");
    }
    rt.block_on(async {
        steady.shutdown().await;
        window.shutdown().await;
    });
}

/// The two credentials, both built from this process's environment, and the runtime.
struct Setup {
    rt: tokio::runtime::Runtime,
    adapter: Arc<dyn TokenCredential>,
    official: Arc<dyn TokenCredential>,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mi =
        ManagedIdentityCredential::system_assigned().expect("App Service from the environment");
    assert_eq!(mi.source_kind(), SourceKind::AppService, "{mi:?}");
    let adapter: Arc<dyn TokenCredential> =
        Arc::new(TokenProviderCredential::new(TokenProvider::new(mi)));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let official: Arc<dyn TokenCredential> = azure_identity::ManagedIdentityCredential::new(Some(
        azure_identity::ManagedIdentityCredentialOptions {
            client_options: ClientOptions {
                transport: Some(Transport::new(Arc::new(http))),
                ..Default::default()
            },
            ..Default::default()
        },
    ))
    .expect("official credential");
    // Both answer, with the same audience, before anything is timed.
    for credential in [&adapter, &official] {
        let token = rt
            .block_on(credential.get_token(&[SCOPE], None))
            .expect("token");
        assert!(token.token.secret().starts_with("eyJ"));
    }
    Setup {
        rt,
        adapter,
        official,
    }
}

/// The end of the pipeline: `200` at once, no network.
#[derive(Debug)]
struct Answer200;

#[async_trait::async_trait]
impl Policy for Answer200 {
    async fn send(
        &self,
        _ctx: &Context,
        request: &mut Request,
        _next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        black_box(request);
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::Ok,
            Headers::new(),
            Vec::new(),
        ))
    }
}

/// Times `n` requests through `policy` (or the terminal policy alone).
fn run_policy(s: &Setup, policy: Option<&Arc<dyn Policy>>, n: u64) -> Duration {
    let url = Url::parse("https://bench.vault.azure.net/secrets/name?api-version=2025-07-01")
        .expect("URL");
    let terminal: Vec<Arc<dyn Policy>> = vec![Arc::new(Answer200)];
    let ctx = Context::new();
    s.rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let mut request = Request::new(url.clone(), Method::Get);
            let response = match policy {
                Some(p) => p.send(&ctx, &mut request, &terminal).await,
                None => terminal[0].send(&ctx, &mut request, &[]).await,
            };
            black_box(response.expect("200"));
        }
        start.elapsed()
    })
}

fn policy_group(c: &mut Criterion, s: &Setup, group: &str) {
    let bearer = |credential: &Arc<dyn TokenCredential>| -> Arc<dyn Policy> {
        Arc::new(BearerTokenAuthorizationPolicy::new(
            credential.clone(),
            [SCOPE],
        ))
    };
    let with_adapter = bearer(&s.adapter);
    let with_official = bearer(&s.official);
    let mut g = c.benchmark_group(group);
    g.bench_function("terminal_only", |b| {
        b.iter_custom(|n| run_policy(s, None, n))
    });
    g.bench_function("entra_mi_adapter", |b| {
        b.iter_custom(|n| run_policy(s, Some(&with_adapter), n))
    });
    g.bench_function("azure_identity_managed_identity", |b| {
        b.iter_custom(|n| run_policy(s, Some(&with_official), n))
    });
    g.finish();
}

fn get_token_group(c: &mut Criterion, s: &Setup) {
    let run = |credential: &Arc<dyn TokenCredential>, n: u64| {
        s.rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                black_box(credential.get_token(&[SCOPE], None).await.expect("token"));
            }
            start.elapsed()
        })
    };
    let mut g = c.benchmark_group("azure_get_token_hit");
    g.bench_function("entra_mi_adapter", |b| {
        b.iter_custom(|n| run(&s.adapter, n))
    });
    g.bench_function("azure_identity_managed_identity", |b| {
        b.iter_custom(|n| run(&s.official, n))
    });
    g.finish();
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

fn steady() {
    let s = setup();
    let mut c = criterion();
    get_token_group(&mut c, &s);
    policy_group(&mut c, &s, "azure_policy_steady");
}

fn window() {
    let s = setup();
    let mut c = criterion();
    policy_group(&mut c, &s, "azure_policy_last_5_minutes");
}

fn print_pair(group: &str, what: &str) {
    let (Some(ours), Some(official)) = (
        mean_ns(group, "entra_mi_adapter"),
        mean_ns(group, "azure_identity_managed_identity"),
    ) else {
        return;
    };
    let floor = mean_ns(group, "terminal_only");
    print!(
        "  {what}: adapter {ours:.0} ns, official ManagedIdentityCredential {official:.0} ns = {:.2}x the adapter",
        official / ours
    );
    match floor {
        Some(f) => println!(
            "; floor (terminal policy alone) {f:.0} ns, added by the policy: {:.0} ns vs {:.0} ns",
            ours - f,
            official - f
        ),
        None => println!(),
    }
}

fn report_steady() {
    print_pair("azure_get_token_hit", "get_token, warm");
    print_pair(
        "azure_policy_steady",
        "bearer policy per request, 24 h token",
    );
    interleaved_steady();
}

/// The steady pairs again in interleaved rounds (batches of 2,000 calls, the order rotated per
/// round), so that a slow stretch of this shared machine weighs on all candidates alike.
fn interleaved_steady() {
    let setup = setup();
    let s = &setup;
    let get_token = |credential: Arc<dyn TokenCredential>| -> Batch<'_> {
        Box::new(move |n| {
            let elapsed = s.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(credential.get_token(&[SCOPE], None).await.expect("token"));
                }
                start.elapsed()
            });
            elapsed.as_secs_f64() * 1e9 / f64::from(n)
        })
    };
    let policy = |credential: &Arc<dyn TokenCredential>| -> Batch<'_> {
        let policy: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
            credential.clone(),
            [SCOPE],
        ));
        Box::new(move |n| {
            run_policy(s, Some(&policy), u64::from(n)).as_secs_f64() * 1e9 / f64::from(n)
        })
    };
    let timings = interleaved(
        200,
        2_000,
        &mut [
            ("get_token_adapter", get_token(s.adapter.clone())),
            ("get_token_official", get_token(s.official.clone())),
            ("policy_adapter", policy(&s.adapter)),
            ("policy_official", policy(&s.official)),
        ],
    );
    for (what, ours, official) in [
        ("get_token, warm", &timings[0], &timings[1]),
        (
            "bearer policy per request, 24 h token",
            &timings[2],
            &timings[3],
        ),
    ] {
        let (q1, median, q3) = official.ratio_to(ours);
        println!(
            "  {what}, interleaved rounds: adapter median {:.0} ns, official {:.0} ns; official / adapter per round: median {median:.2}x (quartiles {q1:.2}x-{q3:.2}x)",
            ours.median_ns(),
            official.median_ns()
        );
    }
}

fn report_window() {
    print_pair(
        "azure_policy_last_5_minutes",
        "bearer policy per request, inside the last 5 minutes",
    );
}
