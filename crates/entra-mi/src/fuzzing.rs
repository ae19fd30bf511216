//! Thin wrappers around crate-private parsers, for the `cargo fuzz` targets in `fuzz/` and the
//! property tests in `tests/it/properties/`. Compiled only with the `fuzzing` feature; not part
//! of the supported API and exempt from semver.
//!
//! Each wrapper calls the same function the library calls, with no extra checks, so what the
//! fuzzers find is what production runs.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::error::{Error, Unavailable};
use crate::http::RawResponse;
use crate::managed_identity::arc;
use crate::response::{self, SentAt};
use crate::token::AccessToken;

/// The longest token lifetime the parser accepts.
pub const MAX_LIFETIME: Duration = response::MAX_LIFETIME;

/// The clocks around one token request: when it was sent and when its answer arrived, on the
/// wall clock and on the monotonic clock of the credential's time source.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    /// Wall clock when the request was sent.
    pub sent_wall: SystemTime,
    /// Monotonic clock when the request was sent.
    pub sent_monotonic: Duration,
    /// Wall clock when the answer arrived.
    pub received_wall: SystemTime,
    /// Monotonic clock when the answer arrived.
    pub received_monotonic: Duration,
}

/// A token the parser accepted, with the monotonic deadlines the cache schedules by.
#[derive(Debug)]
pub struct ParsedToken {
    /// The token as the credential returns it.
    pub token: AccessToken,
    /// When the token expires on the monotonic clock, if the parser set it.
    pub expires_at_monotonic: Option<Duration>,
    /// When the token should be refreshed on the monotonic clock, if the body said so.
    pub refresh_at_monotonic: Option<Duration>,
}

/// Parses a success body of a token endpoint as every managed-identity source and the Entra
/// token endpoint do (`response::parse_token`).
pub fn parse_token(
    content_type: Option<&str>,
    body: &[u8],
    clocks: Clocks,
) -> Result<ParsedToken, Unavailable> {
    let raw = RawResponse {
        status: 200,
        content_type: content_type.map(str::to_owned),
        retry_after: None,
        www_authenticate: None,
        body: bytes::Bytes::copy_from_slice(body),
    };
    let sent = SentAt {
        monotonic: clocks.sent_monotonic,
        wall: clocks.sent_wall,
    };
    let token = response::parse_token(&raw, sent, clocks.received_wall, clocks.received_monotonic)?;
    let deadlines = token.monotonic;
    Ok(ParsedToken {
        expires_at_monotonic: deadlines.map(|d| d.expires_at),
        refresh_at_monotonic: deadlines.and_then(|d| d.refresh_at),
        token,
    })
}

/// Reads a `Retry-After` value (delay seconds or an HTTP date) relative to `now`.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    response::retry_after(value, now)
}

/// The key-file path named by an Azure Arc `WWW-Authenticate: Basic realm=<path>` challenge.
pub fn arc_challenge_path(header: Option<&str>) -> Result<String, String> {
    arc::challenge_path(header)
}

/// Checks an Azure Arc challenge's key-file path against the agent's token directory
/// `key_dir` and reads the key, exactly as the Arc source does.
pub async fn arc_read_key(path: &str, key_dir: &Path) -> Result<String, Error> {
    arc::read_key(path, key_dir)
        .await
        .map(|key| key.expose().to_owned())
}

/// The largest Arc key file read, in bytes.
pub const ARC_MAX_KEY_FILE: u64 = arc::MAX_KEY_FILE;
