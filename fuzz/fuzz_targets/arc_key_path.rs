//! The Azure Arc challenge: the `Basic realm=<path>` parser and the key-file path check, on
//! arbitrary input, against a fixture tree in a temporary directory:
//!
//! ```text
//! <root>/tokens/            the agent's token directory
//!     good.key, other.key   keys (accepted)
//!     notes.txt, big.key, empty.key, dir.key/, sub/inner.key
//!     link-in.key -> good.key, link-out.key -> <root>/outside/secret.key,
//!     txt-link.key -> notes.txt, dir-link -> <root>/outside
//! <root>/outside/secret.key, <root>/tokensx/evil.key
//! ```
//!
//! The input is tried as a challenge header, and as a path: absolute as given, otherwise
//! relative to `<root>`.
//!
//! Asserts, beyond "never panics": a realm is a non-empty, unquoted slice of a `Basic`
//! challenge; an accepted path is absolute and ends in `.key`, resolves (after `..` and
//! symbolic links) to a `.key` file directly inside the token directory, and yields exactly
//! that file's trimmed content — which is always one of the two good keys, never the secret
//! outside, a text file, an empty or oversized file.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use entra_mi::__fuzz;
use libfuzzer_sys::fuzz_target;

const GOOD: &str = "good-key-0123456789abcdef";
const OTHER: &str = "other-key-fedcba9876543210";

struct Fixture {
    root: PathBuf,
    tokens: PathBuf,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("entra-mi-fuzz-arc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let tokens = root.join("tokens");
        let outside = root.join("outside");
        for d in [
            &tokens,
            &tokens.join("dir.key"),
            &tokens.join("sub"),
            &outside,
            &root.join("tokensx"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let write = |p: PathBuf, content: &str| std::fs::write(p, content).unwrap();
        write(tokens.join("good.key"), &format!("{GOOD}\n"));
        write(tokens.join("other.key"), OTHER);
        write(tokens.join("notes.txt"), "not-a-key");
        write(tokens.join("big.key"), &"k".repeat(5000));
        write(tokens.join("empty.key"), " \n");
        write(tokens.join("dir.key").join("inner.key"), "in-a-dir");
        write(tokens.join("sub").join("inner.key"), "in-a-subdirectory");
        write(outside.join("secret.key"), "outside-secret");
        write(root.join("tokensx").join("evil.key"), "look-alike");
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink("good.key", tokens.join("link-in.key")).unwrap();
            symlink(outside.join("secret.key"), tokens.join("link-out.key")).unwrap();
            symlink("notes.txt", tokens.join("txt-link.key")).unwrap();
            symlink(&outside, tokens.join("dir-link")).unwrap();
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Fixture { root, tokens, rt }
    })
}

fn check_realm(header: &str) {
    if let Ok(path) = __fuzz::arc_challenge_path(Some(header)) {
        assert!(!path.is_empty());
        assert!(!path.starts_with('"') && !path.ends_with('"'));
        assert!(header.contains(path.as_str()));
        let scheme = header.trim_start().get(..5).unwrap_or_default();
        assert!(scheme.eq_ignore_ascii_case("basic"));
        assert!(header.contains("realm="));
    }
}

fn check_path(path: &str) {
    let f = fixture();
    let result = f.rt.block_on(__fuzz::arc_read_key(path, &f.tokens));
    let Ok(key) = result else { return };
    let given = Path::new(path);
    assert!(given.is_absolute(), "accepted a relative path {path:?}");
    assert!(
        given.extension().is_some_and(|e| e == "key"),
        "accepted {path:?} without `.key`"
    );
    let real = std::fs::canonicalize(given).expect("an accepted path resolves");
    let dir = std::fs::canonicalize(&f.tokens).unwrap();
    assert_eq!(
        real.parent(),
        Some(dir.as_path()),
        "{path:?} escapes the directory"
    );
    assert!(real.extension().is_some_and(|e| e == "key"));
    let content = std::fs::read_to_string(&real).unwrap();
    assert_eq!(key, content.trim());
    assert!(
        key == GOOD || key == OTHER,
        "{path:?} yielded an unexpected key"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    check_realm(input);
    if input.contains('\0') || input.len() > 512 {
        return;
    }
    let f = fixture();
    if input.starts_with('/') {
        check_path(input);
    } else {
        check_path(&format!("{}/{input}", f.root.display()));
    }
    // The realm of a challenge naming the same path leads to the same check.
    if let Ok(realm) =
        __fuzz::arc_challenge_path(Some(&format!("Basic realm={}/{input}", f.root.display())))
    {
        check_path(&realm);
    }
});
