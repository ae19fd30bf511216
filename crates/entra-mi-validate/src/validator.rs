//! [`TokenValidator`]: the checks, in order, and the verified-token cache in front of them.

use std::fmt;
use std::sync::Arc;

use crate::cache::{Lookup, VerifiedCache};
use crate::claims::Claims;
use crate::clock::Clock;
use crate::error::{Check, ValidationError, shown};
use crate::issuer;
use crate::jwt;
use crate::keys::{KeySet, KeyStore};
use crate::policy::Policy;

/// Validates Entra access tokens for one API; see the [crate documentation](crate).
///
/// Cheap to clone: clones share the keys and the verified-token cache.
#[derive(Clone)]
pub struct TokenValidator {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) authority: String,
    pub(crate) audiences: Vec<String>,
    /// `None`: any tenant.
    pub(crate) tenants: Option<Vec<String>>,
    pub(crate) skew: i64,
    pub(crate) policy: Policy,
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) cache: Arc<VerifiedCache>,
    pub(crate) clock: Clock,
}

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenValidator")
            .field("authority", &self.inner.authority)
            .field("audiences", &self.inner.audiences)
            .field("tenants", &self.inner.tenants)
            .field("clock_skew_secs", &self.inner.skew)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        TokenValidator {
            inner: Arc::new(inner),
        }
    }

    /// Validates `token` (the text after `Bearer `) with the builder's policy.
    ///
    /// The first validation fetches the keys. A token verified before and not expired costs
    /// a lookup: no allocation, no RSA, no await.
    pub async fn validate(&self, token: &str) -> Result<Claims, ValidationError> {
        self.validate_with(token, &self.inner.policy).await
    }

    /// Validates `token` with `policy` instead of the builder's (per-route policies).
    pub async fn validate_with(
        &self,
        token: &str,
        policy: &Policy,
    ) -> Result<Claims, ValidationError> {
        if let Some(result) = self.validate_cached_with(token, policy) {
            return result;
        }
        // The verification's state (the key fetch's futures included) is over a kilobyte;
        // boxed, this future stays a few words, so a remembered token does not copy it.
        let claims = Box::pin(self.verify(token)).await?;
        policy.check(&claims)?;
        Ok(claims)
    }

    /// The answer for a token verified before, if it was: `Some` with the claims (or the
    /// error: expired, or refused by `policy`), `None` for a token not seen yet (or
    /// forgotten), which [`validate_with`](TokenValidator::validate_with) must verify.
    /// Synchronous and allocation-free on success.
    pub fn validate_cached_with(
        &self,
        token: &str,
        policy: &Policy,
    ) -> Option<Result<Claims, ValidationError>> {
        self.inner.keys.maybe_refresh();
        let now = self.inner.clock.unix_secs();
        match self.inner.cache.get(token, now) {
            Lookup::Hit(claims) => Some(policy.check(&claims).map(|()| claims)),
            Lookup::Expired(expired_from) => Some(Err(expired(
                expired_from.saturating_sub(self.inner.skew),
                now,
                self.inner.skew,
            ))),
            Lookup::Miss => None,
        }
    }

    /// The policy given to the builder (used by [`validate`](TokenValidator::validate)).
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// How many verified tokens are remembered.
    pub fn verified_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// Forgets every verified token: each is verified again on its next use.
    pub fn forget_verified_tokens(&self) {
        self.inner.cache.clear();
    }

    /// Fetches the discovery documents and keys now (instead of on the first validation, and
    /// even while a failed first fetch's error stands), or again if they were fetched before.
    /// A failure ([`Check::Discovery`](crate::Check::Discovery)) keeps the keys in hand.
    pub async fn refresh_keys(&self) -> Result<(), ValidationError> {
        if self.inner.keys.current().is_none() {
            return self.inner.keys.get(true).await.map(drop);
        }
        self.inner.keys.refresh().await
    }

    /// The signature checks and the claims every token must pass; remembers the token.
    async fn verify(&self, token: &str) -> Result<Claims, ValidationError> {
        let parsed = jwt::parse(token)?;
        jwt::check_alg(parsed.alg.as_deref())?;
        let Some(kid) = parsed.kid.as_deref() else {
            return Err(ValidationError::new(
                Check::Key,
                "the header names no key (`kid`)",
            ));
        };
        let mut keys = self.inner.keys.get(false).await?;
        if keys.find(kid).is_none() {
            keys = self.inner.keys.refetch_for(kid, &keys).await?;
        }
        let Some(key) = keys.find(kid) else {
            return Err(ValidationError::new(
                Check::Key,
                format!(
                    "no key of the authority's key set has kid {} (the key set is fetched again at most once per re-fetch interval)",
                    shown(kid)
                ),
            ));
        };
        let claims = parsed.claims;
        if let Some(key_issuer) = &key.issuer
            && !issuer::key_allows(key_issuer, claims.issuer(), claims.tenant_id())
        {
            return Err(ValidationError::new(
                Check::Key,
                format!(
                    "key {} may only verify tokens of issuer {key_issuer:?}, not of this token's tenant",
                    shown(kid)
                ),
            ));
        }
        if key
            .public
            .verify_sig(parsed.signing_input, &parsed.signature)
            .is_err()
        {
            return Err(ValidationError::new(
                Check::Signature,
                format!(
                    "the RS256 signature does not verify with key {}",
                    shown(kid)
                ),
            ));
        }
        let now = self.inner.clock.unix_secs();
        let exp = self.check_claims(&claims, &keys, now)?;
        self.inner.cache.insert(
            token,
            &claims,
            exp.saturating_add(self.inner.skew),
            kid,
            now,
        );
        Ok(claims)
    }

    /// Tenant, issuer, audience and lifetime of a verified token; returns `exp`.
    fn check_claims(
        &self,
        claims: &Claims,
        keys: &KeySet,
        now: i64,
    ) -> Result<i64, ValidationError> {
        let inner = &self.inner;
        let Some(tid) = claims.tenant_id() else {
            return Err(ValidationError::new(
                Check::Tenant,
                "the token has no `tid` claim",
            ));
        };
        if let Some(tenants) = &inner.tenants
            && !tenants.iter().any(|t| t.eq_ignore_ascii_case(tid))
        {
            return Err(ValidationError::new(
                Check::Tenant,
                format!("tenant {tid:?} is not an accepted tenant"),
            ));
        }
        let Some(iss) = claims.issuer() else {
            return Err(ValidationError::new(
                Check::Issuer,
                "the token has no `iss` claim",
            ));
        };
        if !keys.issuers.iter().any(|t| issuer::matches(t, iss, tid)) {
            return Err(ValidationError::new(
                Check::Issuer,
                format!(
                    "issuer {iss:?} is not one the authority's discovery documents name for tenant {tid:?}"
                ),
            ));
        }
        if !issuer::tenant_of(iss).is_some_and(|t| t.eq_ignore_ascii_case(tid)) {
            return Err(ValidationError::new(
                Check::Issuer,
                format!("issuer {iss:?} is not of the token's tenant {tid:?}"),
            ));
        }
        match claims.audience() {
            Some(aud) if inner.audiences.iter().any(|a| a == aud) => {}
            Some(aud) => {
                return Err(ValidationError::new(
                    Check::Audience,
                    format!("audience {aud:?} is not an accepted audience"),
                ));
            }
            None => {
                return Err(ValidationError::new(
                    Check::Audience,
                    "the token has no `aud` claim",
                ));
            }
        }
        let Some(exp) = claims.expires_at_unix() else {
            return Err(ValidationError::new(
                Check::Expired,
                "the token has no `exp` claim (an expiry is required)",
            ));
        };
        if exp.saturating_add(inner.skew) <= now {
            return Err(expired(exp, now, inner.skew));
        }
        if let Some(nbf) = claims.not_before_unix()
            && nbf.saturating_sub(inner.skew) > now
        {
            return Err(ValidationError::new(
                Check::NotYetValid,
                format!(
                    "the token is valid from {nbf} (Unix time), {} s from now, beyond the clock skew of {} s",
                    nbf.saturating_sub(now),
                    inner.skew
                ),
            ));
        }
        Ok(exp)
    }
}

fn expired(exp: i64, now: i64, skew: i64) -> ValidationError {
    ValidationError::new(
        Check::Expired,
        format!(
            "the token expired at {exp} (Unix time), {} s ago, beyond the clock skew of {skew} s",
            now.saturating_sub(exp)
        ),
    )
}
