//! [`ValidateTokenLayer`].

use std::sync::Arc;

use tower_layer::Layer;

use super::service::ValidateToken;
use crate::policy::Policy;
use crate::validator::TokenValidator;

/// Wraps services in [`ValidateToken`]; see the [module documentation](crate::tower).
#[derive(Debug, Clone)]
pub struct ValidateTokenLayer {
    validator: TokenValidator,
    policy: Arc<Policy>,
}

impl ValidateTokenLayer {
    /// Validates with `validator` and its builder's policy.
    pub fn new(validator: TokenValidator) -> Self {
        let policy = Arc::new(validator.policy().clone());
        ValidateTokenLayer { validator, policy }
    }

    /// Validates with `validator` and `policy` (per-route policies).
    pub fn with_policy(validator: TokenValidator, policy: Policy) -> Self {
        ValidateTokenLayer {
            validator,
            policy: Arc::new(policy),
        }
    }
}

impl<S> Layer<S> for ValidateTokenLayer {
    type Service = ValidateToken<S>;

    fn layer(&self, inner: S) -> ValidateToken<S> {
        ValidateToken::new(inner, self.validator.clone(), self.policy.clone())
    }
}
