//! Where configuration is read from.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

/// The environment variables a credential reads.
///
/// [`Environment::process`] (the default) reads the process environment on every lookup, so a
/// value the platform rotates (App Service's `IDENTITY_HEADER`) is picked up. A map
/// environment ([`Environment::from_vars`]) is for tests and for configuration that does not
/// come from the process; it can be changed while in use with [`Environment::set`].
///
/// Values count only when set and non-empty. `Debug` shows variable names, never values.
#[derive(Clone, Default)]
pub struct Environment {
    vars: Option<Arc<RwLock<HashMap<String, String>>>>,
}

impl Environment {
    /// The process environment.
    pub fn process() -> Self {
        Self { vars: None }
    }

    /// A fixed set of variables; the process environment is not consulted.
    pub fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: Some(Arc::new(RwLock::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            ))),
        }
    }

    /// Sets a variable of a map environment (no effect on [`Environment::process`]; this crate
    /// never modifies the process environment).
    pub fn set(&self, name: &str, value: &str) {
        if let Some(vars) = &self.vars {
            vars.write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_owned(), value.to_owned());
        }
    }

    /// Removes a variable of a map environment.
    pub fn remove(&self, name: &str) {
        if let Some(vars) = &self.vars {
            vars.write().unwrap_or_else(|e| e.into_inner()).remove(name);
        }
    }

    /// The value of `name` when it is set, valid Unicode and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.vars {
            None => std::env::var(name).ok(),
            Some(vars) => vars
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        };
        value.filter(|v| !v.is_empty())
    }

    /// True when `name` has a non-empty value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.vars {
            None => f.write_str("Environment::process"),
            Some(vars) => {
                let vars = vars.read().unwrap_or_else(|e| e.into_inner());
                let mut names: Vec<_> = vars.keys().collect();
                names.sort();
                f.debug_struct("Environment")
                    .field("names", &names)
                    .finish()
            }
        }
    }
}

/// A URL as a message may quote it: without user info (`user:password@`), query or fragment.
/// A value that does not parse as a URL shows only its scheme when it has an `@` anywhere
/// (where the user info ends cannot be told), else up to its first `?` or `#`.
pub(crate) fn url_for_display(value: &str) -> String {
    let value = value.trim();
    if let Ok(mut url) = url::Url::parse(value) {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url.set_query(None);
        url.set_fragment(None);
        return url.to_string();
    }
    if value.contains('@') {
        return match value.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***"),
            None => "***".to_owned(),
        };
    }
    value
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_owned()
}
