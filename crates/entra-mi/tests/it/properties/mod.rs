//! Property tests of the four input-facing pieces the fuzz targets in `fuzz/` cover, small
//! enough to run on every `cargo test` (a few seconds in a debug build):
//!
//! * the token-response parser: never panics on arbitrary bytes or JSON objects of mixed field
//!   types; whatever it accepts has a lifetime in `(0, MAX_LIFETIME]` on both clocks; exact
//!   accept/refuse boundaries for `expires_in` and `expires_on`; every date format round-trips;
//!   a refusal never quotes the token;
//! * the `WWW-Authenticate` parser: never panics; Bearer challenges it is given (random order,
//!   case, spacing, quoting, escapes, other schemes around them) read back exactly;
//! * the Arc realm parser and key-file check: realms round-trip; a path is accepted exactly when
//!   it resolves to a readable, non-empty `.key` file of at most 4096 bytes directly inside the
//!   token directory, and never yields another file's content;
//! * routing: a match always has the route's scheme, host and port and extends its prefix by
//!   whole segments; it agrees with a reference matcher; look-alike hosts, user info, other
//!   ports and schemes never match; `match_uri` is never more permissive than `match_url`.
//!
//! Uses the hidden `entra_mi::__fuzz` wrappers (feature `fuzzing`) for the crate-private
//! parsers, and the fixture route table and reference matcher of `entra_mi::test_util`
//! (feature `test-util`) that the `routing` fuzz target uses too.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use entra_mi::__fuzz::{self, Clocks, MAX_LIFETIME};
use entra_mi::middleware::BearerChallenge;
use entra_mi::test_util::{
    FIXTURE_HOSTS, fixture_router, reference_is_dot_segment, reference_match,
    reference_prefix_matches, small_fixture_router,
};
use entra_mi::{Route, TokenRouter};
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{Value, json};

mod arc;
mod routing;
mod token_response;
mod www_authenticate;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
