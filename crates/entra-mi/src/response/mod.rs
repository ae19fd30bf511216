//! Parsing token-endpoint answers: every shape of `expires_on` / `expires_in` the sources send,
//! error bodies reduced to their code and description, and `Retry-After`.
//!
//! Nothing here ever copies a value from the body into an error: problems name the field and
//! its JSON kind only.

mod body;
mod date;
mod expiry;
mod retry_after;
mod token;

pub(crate) use body::{ErrorBody, answered_for_another, error_body, json_object};
#[cfg(any(feature = "azure-cli", feature = "fuzzing"))]
pub(crate) use expiry::MAX_LIFETIME;
pub(crate) use expiry::SentAt;
pub(crate) use retry_after::retry_after;
pub(crate) use token::{parse_token, token_from_map};
