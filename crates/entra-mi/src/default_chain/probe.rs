//! The one IMDS probe of [`DefaultCredential`](super::DefaultCredential): whether anything
//! answers at the IMDS address before the managed-identity link is tried there.

use std::time::Duration;

use crate::http::HttpClient;
use crate::time::TimeSource;

/// How long a failed IMDS probe is remembered before the next call probes again.
const PROBE_NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// The one IMDS probe: its result (and when it was taken).
#[derive(Debug)]
pub(super) struct Probe {
    pub(super) url: String,
    pub(super) http: HttpClient,
    pub(super) timeout: Duration,
    pub(super) state: tokio::sync::Mutex<Option<(Result<(), String>, Duration)>>,
}

/// Why a probe let the chain go no further with its link.
pub(super) enum ProbeMiss {
    /// No IMDS here (the reason).
    Absent(String),
    /// The caller's deadline ended the probe before its own timeout: nothing is known, and
    /// nothing is remembered.
    OutOfTime,
}

impl Probe {
    /// Probes unless a result is known (a success forever; a failure for five minutes), for at
    /// most its timeout or `limit` (what is left of the caller's deadline), whichever is
    /// shorter. Concurrent callers wait for the same probe.
    pub(super) async fn check(
        &self,
        time: &TimeSource,
        limit: Option<Duration>,
    ) -> Result<(), ProbeMiss> {
        let mut state = self.state.lock().await;
        if let Some((result, at)) = state.as_ref()
            && (result.is_ok() || time.monotonic() - *at < PROBE_NEGATIVE_TTL)
        {
            return result.clone().map_err(ProbeMiss::Absent);
        }
        let timeout = limit.map_or(self.timeout, |l| l.min(self.timeout));
        // No `Metadata` header: a real IMDS answers 400 at once; any answer means it is there.
        let request = self.http.inner().get(&self.url);
        let result = match self.http.send(request, timeout).await {
            Ok(_) => Ok(()),
            Err(_) if timeout < self.timeout => return Err(ProbeMiss::OutOfTime),
            Err(e) => Err(format!(
                "IMDS did not answer a probe within {:?} ({e}): not on an Azure VM",
                self.timeout
            )),
        };
        tracing::debug!(ok = result.is_ok(), "IMDS probe");
        *state = Some((result.clone(), time.monotonic()));
        result.map_err(ProbeMiss::Absent)
    }
}
