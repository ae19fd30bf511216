//! The per-audience hot path allocates nothing: counted with an instrumented global allocator.
//!
//! This file holds a single test so no other test allocates while it counts.

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use entra_mi::{Audience, Environment, ManagedIdentityCredential, TokenProvider};
use entra_mi_emulator::Emulator;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn poll_once<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit must be ready at once"),
    }
}

#[test]
fn cache_hits_do_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(Emulator::builder().start()).unwrap();
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emu.imds_host(),
        )]))
        .build()
        .unwrap();
    let provider = TokenProvider::new(credential);
    let graph = Audience::microsoft_graph();
    let handle = provider.handle(&graph);
    let warm = rt.block_on(handle.header()).unwrap();
    // Steady state: after its first hits a thread serves its own copy of the header, made
    // once (one allocation per thread per token).
    for _ in 0..100 {
        drop(handle.cached_header());
    }
    // Outside `block_on` nothing else runs on this runtime: every allocation counted below is
    // the hot path's.
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        let h = handle.cached_header().expect("cached");
        assert_eq!(h.len(), warm.len());
        let h = poll_once(handle.header()).unwrap();
        assert!(h.is_sensitive());
        let h = provider.cached_header(&graph).expect("cached");
        drop(h);
        let h = poll_once(provider.header(&graph)).unwrap();
        drop(h);
    }
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "the hot path allocated: {change:?}"
    );
    assert_eq!(provider.stats().hits, 40_100);
    // The counter works: a cold handle does allocate.
    let region = Region::new(GLOBAL);
    let _other = provider.handle(&Audience::key_vault());
    assert!(region.change().allocations > 0);
    drop(rt);
}
