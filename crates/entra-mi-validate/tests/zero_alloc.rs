//! A token seen before is validated without allocating: counted with an instrumented global
//! allocator. A binary of its own holding a single test, so nothing else allocates while it
//! counts.

use std::alloc::System;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use entra_mi_emulator::Emulator;
use entra_mi_validate::{Policy, TokenValidator};
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn poll_once<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a remembered token must be answered at once"),
    }
}

#[test]
fn a_repeated_token_allocates_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let emu = rt.block_on(Emulator::builder().start()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = emu.sign_token(&json!({
        "aud": "api://orders", "iss": emu.issuer(), "tid": emu.tenant_id(),
        "iat": now, "nbf": now, "exp": now + 3600, "appid": "a", "oid": "o", "sub": "o",
        "idtyp": "app", "roles": ["Orders.Read", "Orders.Write"], "ver": "1.0",
    }));
    let validator = TokenValidator::builder()
        .authority(emu.base_url())
        .audience("api://orders")
        .tenant(emu.tenant_id())
        .build()
        .unwrap();
    let policy = Policy::new()
        .require_roles(["Orders.Write"])
        .require_any_role(["x", "Orders.Read"])
        .app_only()
        .allowed_callers(["A"]);
    rt.block_on(validator.validate_with(&token, &policy))
        .unwrap();
    // Outside `block_on` nothing else runs on this runtime: every allocation counted below is
    // the validator's.
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        let claims = poll_once(validator.validate_with(&token, &policy)).unwrap();
        assert!(claims.has_role("Orders.Read"));
        let claims = poll_once(validator.validate(&token)).unwrap();
        drop(claims);
        assert!(validator.validate_cached_with(&token, &policy).is_some());
    }
    let change = region.change();
    assert_eq!(
        (change.allocations, change.reallocations),
        (0, 0),
        "the repeated-token path allocated: {change:?}"
    );
    // The counter works: a first sight does allocate.
    validator.forget_verified_tokens();
    let region = Region::new(GLOBAL);
    poll_once(validator.validate_with(&token, &policy)).unwrap();
    assert!(region.change().allocations > 0);
    drop(rt);
}
