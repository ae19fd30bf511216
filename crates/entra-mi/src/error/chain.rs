//! The chain family.

use std::fmt;

/// Every credential of a chain failed; one entry per link, in order.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", ChainDisplay(&self.attempts))]
#[non_exhaustive]
pub struct ChainError {
    /// One entry per link, in order.
    pub attempts: Vec<ChainAttempt>,
}

impl ChainError {
    pub(crate) fn new(attempts: Vec<ChainAttempt>) -> Self {
        Self { attempts }
    }
}

/// One link of a credential chain and why it did not produce a token.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ChainAttempt {
    /// The link's name (`environment`, `workload-identity`, `managed-identity`, `azure-cli`).
    pub credential: String,
    /// Why it failed: its error rendered on one line.
    pub reason: String,
    /// True when the link was not usable here (the chain moved on).
    pub unavailable: bool,
}

struct ChainDisplay<'a>(&'a [ChainAttempt]);

impl fmt::Display for ChainDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no credential of the chain could get a token:")?;
        for a in self.0 {
            let line: String = a
                .reason
                .chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect();
            write!(f, "\n  {}: {}", a.credential, line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn chain_errors_render_one_line_per_link() {
        let e = Error::from(ChainError::new(vec![
            ChainAttempt {
                credential: "a".into(),
                reason: "line one\r\nline two".into(),
                unavailable: true,
            },
            ChainAttempt {
                credential: "b".into(),
                reason: "x".into(),
                unavailable: false,
            },
        ]));
        assert_eq!(e.to_string().lines().count(), 3);
        assert!(!e.is_unavailable());
    }
}
