//! How errors cross between entra-mi and `azure_core`, both ways.
//!
//! Into `azure_core`: a failed token fetch is [`ErrorKind::Credential`] — what the official
//! identity crate's credentials return, and a kind the official clients' retry policies do not
//! retry (they retry only `Io` and `Connection`): the entra-mi credential already retried
//! within its own budget, and a second budget on top would multiply the wait. A scope that
//! names no single audience is [`ErrorKind::DataConversion`]. The entra-mi error is the
//! `source()`, so callers can downcast to [`entra_mi::Error`] for its details
//! ([`status`](entra_mi::Error::status), [`is_unavailable`](entra_mi::Error::is_unavailable)).
//!
//! Into entra-mi: an `azure_core` credential's failure becomes an [`entra_mi::Error`] naming
//! the wrapped credential, with the foreign message cleaned of anything shaped like a token.

use std::time::Duration;

use azure_core::error::ErrorKind;

/// A failure of a token fetch (or of the scope the client asked for) as an `azure_core`
/// error, with `error` as its source. entra-mi's messages carry no secrets, so the message
/// repeats it with the credential's name in front.
pub(crate) fn to_azure(
    kind: ErrorKind,
    credential: &str,
    error: entra_mi::Error,
) -> azure_core::Error {
    let message = format!("entra-mi credential {credential}: {error}");
    azure_core::Error::with_error(kind, error, message)
}

/// Why a wrapped `azure_core` credential produced no token.
pub(crate) enum Failure {
    /// The credential returned this error.
    Azure(azure_core::Error),
    /// The request asks for something the `azure_core` 1.x credential trait cannot carry.
    Unsupported(&'static str),
    /// The credential returned a token whose `expires_on` has passed.
    AlreadyExpired,
    /// The caller's deadline passed first.
    Deadline(Duration),
}

/// The only place that builds [`entra_mi::Error`] variants: keep it small so a change of the
/// error enum touches one function.
pub(crate) fn to_entra(credential: &str, failure: Failure) -> entra_mi::Error {
    let message = match failure {
        Failure::Deadline(deadline) => {
            return entra_mi::Error::from(entra_mi::error::DeadlineError::Caller {
                credential: credential.to_owned(),
                deadline,
                last: None,
            });
        }
        Failure::Azure(e) => format!("{} error: {}", e.kind(), clean(&e.to_string())),
        Failure::Unsupported(what) => {
            format!("an azure_core 1.x credential cannot be asked for {what}")
        }
        Failure::AlreadyExpired => "the credential returned an already-expired token".to_owned(),
    };
    entra_mi::Error::from(entra_mi::error::CredentialError::Failed {
        credential: credential.to_owned(),
        message,
    })
}

/// The longest foreign message kept, in bytes.
const MAX_MESSAGE: usize = 1024;

/// A foreign error message made safe to keep: every word that looks like a JWT (three
/// base64url parts, the first starting `eyJ`) is replaced, line breaks become spaces, and the
/// text is cut at 1 KiB. Official credentials put response bodies in some messages.
pub(crate) fn clean(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    let mut rest = message;
    while let Some(start) = rest.find("eyJ") {
        out.push_str(&rest[..start]);
        let candidate = &rest[start..];
        let len = candidate
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(candidate.len());
        if candidate[..len].matches('.').count() >= 2 {
            out.push_str("<redacted token>");
        } else {
            out.push_str(&candidate[..len.max(3)]);
        }
        rest = &candidate[len.max(3)..];
    }
    out.push_str(rest);
    let mut out: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_jwts_and_controls_and_bounds_length() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl";
        let cleaned = clean(&format!(
            "The request failed: {{\"access_token\":\"{jwt}\"}}\nmore"
        ));
        assert!(!cleaned.contains("eyJhdWQ"), "{cleaned}");
        assert!(
            cleaned.contains("<redacted token>") && !cleaned.contains('\n'),
            "{cleaned}"
        );
        // Not a JWT: kept.
        assert_eq!(clean("eyJ alone and a.b.c"), "eyJ alone and a.b.c");
        assert_eq!(clean("ends with eyJ"), "ends with eyJ");
        let long = clean(&"é".repeat(2000));
        assert!(long.len() <= MAX_MESSAGE + '…'.len_utf8(), "{}", long.len());
    }

    #[test]
    fn entra_errors_name_the_credential() {
        let e = to_entra("azure-identity", Failure::Unsupported("claims"));
        assert!(e.to_string().contains("azure-identity") && e.to_string().contains("claims"));
        let d = to_entra("x", Failure::Deadline(Duration::from_secs(2)));
        assert!(d.to_string().contains("deadline"), "{d}");
    }
}
