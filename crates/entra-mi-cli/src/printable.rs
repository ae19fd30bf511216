//! Text from outside the command (service error messages, Graph display names and role
//! values, claims decoded from tokens, configuration files) made safe for a terminal.
//!
//! A terminal acts on control characters: `ESC [ 31 m` colours what follows, `ESC ] …` sets
//! the window title or writes to the clipboard in some terminals, `\r` returns to the start of
//! the line so that what follows overwrites what came before, and the C1 character U+009B is
//! a one-byte `ESC [`. Bidirectional formatting characters (U+202E and friends) reorder what
//! is shown. Every such character is replaced with U+FFFD (�), in human and in JSON output
//! alike, so a service cannot make the command's output say something it does not.
//! [`text`] is the one rule; [`lines`] and [`json`] apply it to multi-line messages and to
//! JSON values.

use std::borrow::Cow;

use serde_json::Value;

/// What replaces a character that a terminal would act on.
pub(crate) const REPLACEMENT: char = '\u{FFFD}';

/// True for the characters [`text`] replaces: C0 controls (U+0000–U+001F, tab, carriage
/// return and line feed included), DEL and the C1 controls (U+007F–U+009F), the line and
/// paragraph separators (U+2028, U+2029), and the bidirectional formatting characters
/// (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every character a terminal would act on replaced by U+FFFD; borrowed when there
/// is none (the usual case).
pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if unsafe_char(c) { REPLACEMENT } else { c })
            .collect(),
    )
}

/// [`text`] for a message of several lines: line feeds are kept (the command's own messages
/// put each link of a credential chain on a line of its own); everything else is replaced.
pub(crate) fn lines(s: &str) -> String {
    s.split('\n').map(text).collect::<Vec<_>>().join("\n")
}

/// [`text`] applied to every string of `value`, object keys included.
pub(crate) fn json(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = text(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(json),
        Value::Object(map) => {
            if map.keys().any(|k| matches!(text(k), Cow::Owned(_))) {
                let entries = std::mem::take(map);
                for (k, v) in entries {
                    map.insert(text(&k).into_owned(), v);
                }
            }
            map.values_mut().for_each(json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as j;

    #[test]
    fn escape_sequences_and_carriage_returns_are_replaced() {
        assert_eq!(
            text("red \x1b[31mRED\x1b[0m\rover"),
            "red \u{FFFD}[31mRED\u{FFFD}[0m\u{FFFD}over"
        );
        // C1: U+009B is a one-character CSI; U+0085 is NEL.
        assert_eq!(text("a\u{9b}2Jb\u{85}c"), "a\u{FFFD}2Jb\u{FFFD}c");
        assert_eq!(
            text("tab\tnl\nnul\0del\x7f"),
            "tab\u{FFFD}nl\u{FFFD}nul\u{FFFD}del\u{FFFD}"
        );
        // Right-to-left override and isolates, line separator.
        assert_eq!(
            text("x\u{202E}y\u{2066}z\u{2028}"),
            "x\u{FFFD}y\u{FFFD}z\u{FFFD}"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for s in [
            "",
            "Microsoft Graph",
            "Überprüfung — 検証 🔑",
            "C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens",
        ] {
            assert!(matches!(text(s), Cow::Borrowed(b) if b == s), "{s}");
        }
    }

    #[test]
    fn lines_keeps_line_feeds_only() {
        assert_eq!(
            lines("no token:\n  imds: bad\r\x1b[2K\n  az: gone"),
            "no token:\n  imds: bad\u{FFFD}\u{FFFD}[2K\n  az: gone"
        );
    }

    #[test]
    fn json_cleans_every_string_and_key() {
        let mut v = j!({
            "aud": "api://x\x1b]0;title\x07",
            "roles": ["A\rB", 1, null, true],
            "nested": {"k\u{9b}": {"deep": "\u{202E}txt"}},
        });
        json(&mut v);
        assert_eq!(
            v,
            j!({
                "aud": "api://x\u{FFFD}]0;title\u{FFFD}",
                "roles": ["A\u{FFFD}B", 1, null, true],
                "nested": {"k\u{FFFD}": {"deep": "\u{FFFD}txt"}},
            })
        );
    }
}
