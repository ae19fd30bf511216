//! Whether a request can be sent again after a `401`.

use http::Request;

/// Makes a copy of a request to send again after a `401`, or says it cannot.
///
/// Called once per routed request, before it is sent (a body consumed by the first attempt is
/// gone afterwards).
pub trait ReplayRequest<B>: Clone {
    /// A copy of `request` (without the `Authorization` header this layer adds), or `None`
    /// when its body cannot be replayed.
    fn replay(&self, request: &Request<B>) -> Option<Request<B>>;
}

/// Never replays: a `401` a new token can fix is returned to the caller, and the rejected
/// token is dropped so the next request gets a new one. The default; works with any body.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReplay;

impl<B> ReplayRequest<B> for NoReplay {
    #[inline]
    fn replay(&self, _: &Request<B>) -> Option<Request<B>> {
        None
    }
}

/// Replays requests whose body type is `Clone` (`String`, `Bytes`, `Full<Bytes>`, `Empty`, …)
/// by cloning them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneBody;

impl<B: Clone> ReplayRequest<B> for CloneBody {
    #[inline]
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        Some(request.clone())
    }
}

impl<B, F> ReplayRequest<B> for F
where
    F: Fn(&Request<B>) -> Option<Request<B>> + Clone,
{
    fn replay(&self, request: &Request<B>) -> Option<Request<B>> {
        self(request)
    }
}
