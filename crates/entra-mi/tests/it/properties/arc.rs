//! Property tests of Azure Arc's challenge: the realm and the key-file path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::*;

const GOOD: &str = "good-key-0123456789abcdef";
const OTHER: &str = "other-key-fedcba9876543210";
const FOREIGN: &[&str] = &[
    "outside-secret",
    "not-a-key",
    "in-a-dir",
    "in-a-subdirectory",
    "look-alike",
];

struct ArcFixture {
    root: PathBuf,
    tokens: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Drop for ArcFixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `<root>/tokens` holds two keys and every kind of file the check must refuse. The fixture
/// lives while a test holds it and its directory goes with it, so nothing is left in the
/// temporary directory; each one made gets a name of its own (process id and a counter), so a
/// fixture being removed never takes a newer one's files with it.
fn arc_fixture() -> Arc<ArcFixture> {
    static CURRENT: Mutex<Weak<ArcFixture>> = Mutex::new(Weak::new());
    static MADE: AtomicUsize = AtomicUsize::new(0);
    let mut current = CURRENT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(fixture) = current.upgrade() {
        return fixture;
    }
    let fixture = Arc::new({
        let root = std::env::temp_dir().join(format!(
            "entra-mi-props-arc-{}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let tokens = root.join("tokens");
        let outside = root.join("outside");
        for d in [
            tokens.clone(),
            tokens.join("dir.key"),
            tokens.join("sub"),
            outside.clone(),
            root.join("tokensx"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let write = |p: PathBuf, content: &str| std::fs::write(p, content).unwrap();
        write(tokens.join("good.key"), &format!("{GOOD}\n"));
        write(tokens.join("other.key"), OTHER);
        write(tokens.join("notes.txt"), FOREIGN[1]);
        write(tokens.join("big.key"), &"k".repeat(5000));
        write(tokens.join("empty.key"), " \n");
        write(tokens.join("dir.key").join("inner.key"), FOREIGN[2]);
        write(tokens.join("sub").join("inner.key"), FOREIGN[3]);
        write(outside.join("secret.key"), FOREIGN[0]);
        write(root.join("tokensx").join("evil.key"), FOREIGN[4]);
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
        ArcFixture { root, tokens, rt }
    });
    *current = Arc::downgrade(&fixture);
    fixture
}

/// Independently of the library: should `path` be accepted, and with which key?
fn arc_oracle(path: &str, tokens: &Path) -> Option<String> {
    let given = Path::new(path);
    let is_key = |p: &Path| p.extension().is_some_and(|e| e == "key");
    if !given.is_absolute() || !is_key(given) {
        return None;
    }
    let real = std::fs::canonicalize(given).ok()?;
    let dir = std::fs::canonicalize(tokens).ok()?;
    if real.parent() != Some(dir.as_path()) || !is_key(&real) {
        return None;
    }
    let meta = std::fs::metadata(&real).ok()?;
    if !meta.is_file() || meta.len() > __fuzz::ARC_MAX_KEY_FILE {
        return None;
    }
    let text = std::fs::read_to_string(&real).ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| key.to_owned())
}

const SEGMENTS: &[&str] = &[
    "tokens",
    "tokens",
    "outside",
    "tokensx",
    "sub",
    "dir.key",
    "dir-link",
    "..",
    ".",
    "",
    "good.key",
    "good.key",
    "other.key",
    "link-in.key",
    "link-out.key",
    "txt-link.key",
    "secret.key",
    "notes.txt",
    "big.key",
    "empty.key",
    "inner.key",
    "evil.key",
    "missing.key",
    "good.KEY",
    "good.key.bak",
];

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arc_realm_parser_never_panics(header in "\\PC{0,64}") {
        if let Ok(path) = __fuzz::arc_challenge_path(Some(&header)) {
            prop_assert!(!path.is_empty());
            prop_assert!(header.contains(path.as_str()));
            prop_assert!(header.trim_start().get(..5).is_some_and(|s| s.eq_ignore_ascii_case("basic")));
        }
    }

    #[test]
    fn arc_realm_round_trips(
        path in "/[a-zA-Z0-9._/-]{1,40}|C:\\\\[a-zA-Z0-9._\\\\ -]{0,30}[a-z]",
        scheme in "(Basic|basic|BASIC)",
        gap in "[ \t]{1,3}",
        quoted: bool,
        outer in "[ \t]{0,2}",
    ) {
        let realm = if quoted { format!("\"{path}\"") } else { path.clone() };
        let header = format!("{outer}{scheme}{gap}realm={realm}{outer}");
        prop_assert_eq!(__fuzz::arc_challenge_path(Some(&header)), Ok(path));
    }

    #[test]
    fn arc_key_path_is_accepted_exactly_inside_the_directory(
        picks in prop::collection::vec(0..SEGMENTS.len(), 1..6),
        trailing_slash: bool,
    ) {
        let f = arc_fixture();
        let rel: Vec<&str> = picks.iter().map(|&i| SEGMENTS[i]).collect();
        let mut path = format!("{}/{}", f.root.display(), rel.join("/"));
        if trailing_slash {
            path.push('/');
        }
        let result = f.rt.block_on(__fuzz::arc_read_key(&path, &f.tokens));
        let expected = arc_oracle(&path, &f.tokens);
        match &result {
            Ok(key) => {
                prop_assert!(key == GOOD || key == OTHER, "{path}");
                let real = std::fs::canonicalize(&path).unwrap();
                let dir = std::fs::canonicalize(&f.tokens).unwrap();
                prop_assert_eq!(real.parent(), Some(dir.as_path()));
            }
            Err(e) => {
                let message = format!("{e} {e:?}");
                for secret in [GOOD, OTHER].iter().chain(FOREIGN) {
                    prop_assert!(!message.contains(secret), "{message}");
                }
            }
        }
        prop_assert_eq!(result.ok(), expected, "{}", path);
    }

    #[test]
    fn arc_relative_paths_are_refused(rel in "[a-z./]{0,20}\\.key") {
        prop_assume!(!rel.starts_with('/'));
        let f = arc_fixture();
        prop_assert!(f.rt.block_on(__fuzz::arc_read_key(&rel, &f.tokens)).is_err());
    }
}

#[test]
fn arc_fixture_sanity() {
    // The property above only means something if both outcomes occur.
    let f = arc_fixture();
    let root = f.root.display();
    let read = |p: &str| f.rt.block_on(__fuzz::arc_read_key(p, &f.tokens));
    assert_eq!(read(&format!("{root}/tokens/good.key")).unwrap(), GOOD);
    assert_eq!(read(&format!("{root}/tokens/link-in.key")).unwrap(), GOOD);
    assert_eq!(
        read(&format!("{root}/tokens/sub/../other.key")).unwrap(),
        OTHER
    );
    for bad in [
        "tokens/link-out.key",
        "tokens/txt-link.key",
        "tokens/dir-link/secret.key",
        "tokens/../outside/secret.key",
        "tokensx/evil.key",
        "tokens/sub/inner.key",
        "tokens/notes.txt",
        "tokens/big.key",
        "tokens/empty.key",
        "tokens/dir.key",
    ] {
        assert!(read(&format!("{root}/{bad}")).is_err(), "{bad}");
    }
}
