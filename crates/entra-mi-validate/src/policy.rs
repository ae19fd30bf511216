//! What a verified token must also carry to be let in: app roles, scopes, the token type and
//! the calling application.

use crate::claims::Claims;
use crate::error::{Check, ValidationError};

/// Requirements on a verified token's claims, checked after the token itself is valid. A
/// failure is a [`Check::is_policy`] error: `403 insufficient_scope`, not `401`.
///
/// Every requirement left out holds. The default policy requires nothing.
///
/// ```
/// use entra_mi_validate::Policy;
///
/// // App-only callers holding the app role `Orders.Read` (granted with
/// // `entra-mi perms grant --role Orders.Read`), from two known applications.
/// let policy = Policy::new()
///     .require_roles(["Orders.Read"])
///     .app_only()
///     .allowed_callers(["11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"]);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    all_roles: Vec<String>,
    any_role: Vec<String>,
    any_scope: Vec<String>,
    app_only: bool,
    callers: Vec<String>,
}

impl Policy {
    /// A policy that requires nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every one of `roles` must be in the token's `roles` claim (exact, case-sensitive).
    /// Calls add up.
    pub fn require_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.all_roles.extend(roles.into_iter().map(Into::into));
        self
    }

    /// At least one of `roles` must be in the token's `roles` claim. Calls add up (to one
    /// list of which one is enough).
    pub fn require_any_role<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.any_role.extend(roles.into_iter().map(Into::into));
        self
    }

    /// At least one of `scopes` must be in the token's `scp` claim (delegated tokens: a
    /// user signed in to the calling app). Calls add up.
    pub fn require_any_scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.any_scope.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Only app-only tokens (no user; see [`Claims::is_app_only`]).
    pub fn app_only(mut self) -> Self {
        self.app_only = true;
        self
    }

    /// The calling application (`azp`, or `appid` in v1 tokens; a managed identity's client
    /// id) must be one of `client_ids` (compared ignoring ASCII case). Calls add up.
    pub fn allowed_callers<I, S>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.callers.extend(client_ids.into_iter().map(Into::into));
        self
    }

    /// The roles all of which are required.
    pub fn required_roles(&self) -> &[String] {
        &self.all_roles
    }

    /// Checks `claims`; allocates nothing when they pass.
    pub fn check(&self, claims: &Claims) -> Result<(), ValidationError> {
        if let Some(missing) = self.all_roles.iter().find(|r| !claims.has_role(r)) {
            return Err(ValidationError::new(
                Check::Role,
                format!("the token does not hold the app role {missing:?}"),
            ));
        }
        if !self.any_role.is_empty() && !self.any_role.iter().any(|r| claims.has_role(r)) {
            return Err(ValidationError::new(
                Check::Role,
                format!("the token holds none of the app roles {:?}", self.any_role),
            ));
        }
        if !self.any_scope.is_empty()
            && !claims
                .scopes()
                .any(|s| self.any_scope.iter().any(|w| w == s))
        {
            return Err(ValidationError::new(
                Check::Scope,
                format!("the token holds none of the scopes {:?}", self.any_scope),
            ));
        }
        if self.app_only && !claims.is_app_only() {
            return Err(ValidationError::new(
                Check::TokenType,
                "an app-only token is required (idtyp \"app\"); this one acts for a user",
            ));
        }
        if !self.callers.is_empty() {
            let caller = claims.app_id();
            if !caller.is_some_and(|c| self.callers.iter().any(|a| a.eq_ignore_ascii_case(c))) {
                return Err(ValidationError::new(
                    Check::Caller,
                    match caller {
                        Some(c) => format!("the calling application {c:?} is not allowed"),
                        None => "the token names no calling application (azp/appid)".to_owned(),
                    },
                ));
            }
        }
        Ok(())
    }
}
