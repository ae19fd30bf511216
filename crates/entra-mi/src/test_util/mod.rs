//! Helpers for tests, benches and fuzz targets (feature `test-util`; not for production code).
//!
//! * A fixture route table ([`fixture_routes`], [`fixture_router`],
//!   [`small_fixture_router`]) covering what routing must tell apart: several services, nested
//!   prefixes on one host, the same host on another port, an internationalised host, an IPv6
//!   host and a plain-`http` loopback route.
//! * A manual clock, an instant timer and a fixed jitter ([`ManualClock`], [`InstantSleep`],
//!   [`FixedJitter`]), so tests step time instead of sleeping.
//! * A reference route matcher ([`reference_match`]): the routing rules written as plainly as
//!   possible and independently of [`TokenRouter`](crate::TokenRouter), to check the real
//!   matcher against.

mod routes;

pub use crate::time::{FixedJitter, InstantSleep, ManualClock};
pub use routes::{
    FIXTURE_HOSTS, fixture_router, fixture_routes, reference_is_dot_segment, reference_match,
    reference_prefix_matches, router_of, small_fixture_router,
};

#[doc(hidden)]
pub use crate::routing::__route_keys_past_32_bits;
