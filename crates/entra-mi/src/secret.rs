//! Secrets held in memory (identity headers, client secrets, assertions, the Arc key, tokens):
//! overwritten with zeros when dropped, and never shown by `Debug`.

use std::fmt;

use zeroize::{ZeroizeOnDrop, Zeroizing};

/// A secret string: zeroized on drop, `<redacted>` in `Debug`.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(Zeroizing<String>);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

// `Zeroizing` clears the string's buffer when dropped.
impl ZeroizeOnDrop for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroized_on_drop<T: ZeroizeOnDrop>(_: &T) {}

    #[test]
    fn a_secret_is_redacted_and_zeroized_on_drop() {
        let s = Secret::new("canary-secret");
        zeroized_on_drop(&s);
        // The marker above is only a promise: the field itself is what clears the buffer.
        let _: &Zeroizing<String> = &s.0;
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(s.expose(), "canary-secret");
        // What `Zeroizing` does on drop, observed: the buffer is cleared in place.
        let mut z = Zeroizing::new(String::from("canary"));
        zeroize::Zeroize::zeroize(&mut *z);
        assert!(z.is_empty());
    }
}
