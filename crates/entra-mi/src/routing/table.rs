//! The lookup table: a request URL or URI → the most specific route that serves it, without
//! allocating; small tables are scanned behind a one-byte filter, large ones indexed by host.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use super::bound::BoundRoute;
use super::matching::{host_of, matches, matches_authority};
use super::route::Route;
use crate::hash::{FxBuild, key_ignoring_ascii_case};

/// Tables of this many routes or more get a host index.
pub(crate) const INDEX_FROM: usize = 8;

/// The routing table: request URL → the [`TokenHandle`](crate::TokenHandle) of the route's
/// audience.
///
/// Built once (see [`TokenRouter::builder`]); cheap to clone. Matching does not allocate: it
/// compares the URL's scheme, host, port and path with each route, most specific first —
/// every route of a small table, or, from 8 routes on, only the routes of the URL's host
/// (found by a case-insensitive hash of the host), so the cost does not grow with the table.
/// A URL with user info (`https://user@graph.microsoft.com/`) never matches.
#[derive(Clone)]
pub struct TokenRouter {
    /// Most specific first.
    routes: Arc<[BoundRoute]>,
    /// For large tables: the indices into `routes` (in order) of each host's routes, by the
    /// host's case-insensitive key. Candidates are then compared in full, so two hosts with one
    /// key only cost time.
    by_host: Option<Arc<HostIndex>>,
    /// Per route (in order), what a small table compares first.
    quick: Arc<[Quick]>,
}

/// What a small table compares before looking at a route: the scheme and the first byte of the
/// host (lowercase, as routes store hosts). One contiguous array, so a route of another host
/// mostly costs a byte compare and no pointer chase. A route that matches always passes.
#[derive(Clone, Copy)]
struct Quick {
    https: bool,
    first: u8,
}

type HostIndex = HashMap<u64, Box<[u32]>, FxBuild>;

impl TokenRouter {
    /// The table of `bound` routes (already validated), ordered most specific first, with a
    /// host index when it has [`INDEX_FROM`] routes or more.
    pub(super) fn from_routes(mut bound: Vec<BoundRoute>) -> TokenRouter {
        // Most specific first: the first match is the longest prefix on that origin.
        bound.sort_by_key(|b| std::cmp::Reverse(b.inner.route.prefix.len()));
        let by_host = (bound.len() >= INDEX_FROM).then(|| {
            let mut index: HashMap<u64, Vec<u32>, FxBuild> = HashMap::default();
            for (i, b) in bound.iter().enumerate() {
                let i = u32::try_from(i).expect("fewer than 2^32 routes");
                index
                    .entry(key_ignoring_ascii_case(b.inner.route.host.as_bytes()))
                    .or_default()
                    .push(i);
            }
            Arc::new(index.into_iter().map(|(h, v)| (h, v.into())).collect())
        });
        let quick = bound
            .iter()
            .map(|b| Quick {
                https: b.inner.route.https,
                first: b.inner.route.host.as_bytes().first().copied().unwrap_or(0),
            })
            .collect();
        TokenRouter {
            routes: bound.into(),
            quick,
            by_host,
        }
    }

    /// The route for a parsed URL (what `reqwest` requests carry), if any.
    #[inline]
    pub fn match_url(&self, url: &url::Url) -> Option<&BoundRoute> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let path = url.path();
        self.first(
            https,
            host.as_bytes(),
            || host.as_bytes(),
            |r| matches(r, https, host, port, path),
        )
    }

    /// The route for a request URI (what `http::Request`s carry), if any. Only absolute URIs
    /// (`https://host/path`) can match; origin-form URIs (`/path`) never do, nor do paths with a
    /// raw backslash (which URL parsers read as `/`).
    #[inline]
    pub fn match_uri(&self, uri: &http::Uri) -> Option<&BoundRoute> {
        let scheme = uri.scheme_str()?;
        let https = if scheme.eq_ignore_ascii_case("https") {
            true
        } else if scheme.eq_ignore_ascii_case("http") {
            false
        } else {
            return None;
        };
        let authority = uri.authority()?.as_str();
        let path = uri.path();
        // A raw backslash is not valid in a URI path, but URL parsers (WHATWG, so browsers and
        // `url`) and some servers read it as `/`: `/api\admin` would reach the route of
        // `/api/admin` there while it matches `/api` here. Such a request gets no token.
        if path.contains('\\') {
            return None;
        }
        self.first(
            https,
            authority.as_bytes(),
            || host_of(authority),
            |r| matches_authority(r, https, authority, path),
        )
    }

    /// The first route, most specific first, among those that may serve `host`, that
    /// `matches`. `host` is only worked out for a table with an index; a small table first
    /// compares `https` and the first byte of `starts` (the URL's host, or its authority).
    #[inline(always)]
    fn first<'h>(
        &self,
        https: bool,
        starts: &[u8],
        host: impl FnOnce() -> &'h [u8],
        matches: impl Fn(&Route) -> bool,
    ) -> Option<&BoundRoute> {
        match &self.by_host {
            None => {
                let first = starts.first()?.to_ascii_lowercase();
                let i = self
                    .quick
                    .iter()
                    .zip(self.routes.iter())
                    .position(|(q, b)| {
                        q.https == https && q.first == first && matches(&b.inner.route)
                    })?;
                self.routes.get(i)
            }
            Some(index) => self.first_indexed(index, host(), &matches),
        }
    }

    /// [`first`](Self::first) through the host index; kept out of line so the small-table
    /// path stays small.
    #[inline(never)]
    fn first_indexed(
        &self,
        index: &HostIndex,
        host: &[u8],
        matches: &dyn Fn(&Route) -> bool,
    ) -> Option<&BoundRoute> {
        index
            .get(&key_ignoring_ascii_case(host))?
            .iter()
            .map(|&i| &self.routes[i as usize])
            .find(|b| matches(&b.inner.route))
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|b| &b.inner.route)
    }
}

impl fmt::Debug for TokenRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.routes()).finish()
    }
}
