//! What `entra-mi doctor` reports about this machine besides the credential: proxy variables,
//! the Azure Arc key directory, the workload-identity token file. Only names, metadata and
//! ages are read, never a secret.

use std::path::Path;
use std::time::{Duration, SystemTime};

use entra_mi::Environment;
use serde_json::{Value, json};

/// The proxy variables HTTP clients honour (both spellings: they differ outside Windows).
const PROXY_VARIABLES: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A workload-identity token file not rewritten for this long has most likely expired: the
/// kubelet rewrites a projected service-account token at 80% of its lifetime, and at least
/// every 24 hours.
const FEDERATED_TOKEN_FILE_STALE: Duration = Duration::from_secs(24 * 60 * 60);

/// The proxy variables that are set (names only, each name once: on Windows, where variable
/// names are case-insensitive, both spellings read the same variable).
pub(super) fn proxy_variables(env: &Environment) -> Vec<&'static str> {
    let mut set: Vec<&'static str> = Vec::new();
    for name in PROXY_VARIABLES {
        if env.has(name) && !set.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            set.push(name);
        }
    }
    set
}

/// What the Arc agent's users need to know.
pub(super) const ARC_PERMISSION_HINT: &str = if cfg!(windows) {
    "Azure Arc: the process must run as an Administrator or in the \"Hybrid Agent Extension Applications\" group to read the agent's key files"
} else {
    "Azure Arc: the process's user must be in the `himds` group to read the agent's key files (`sudo usermod -aG himds <user>`, then log in again)"
};

/// The group name of `gid` from `/etc/group`, if it is there.
#[cfg(unix)]
fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == gid).then(|| name.to_owned())
    })
}

/// Permissions of the Arc key directory and whether this user can list it. Only metadata
/// and file names are read, never a key file.
pub(super) fn arc_key_directory_report(dir: &Path) -> Value {
    let shown = dir.display().to_string();
    let mut out = json!({ "path": shown });
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) => {
            let missing = e.kind() == std::io::ErrorKind::NotFound;
            out["exists"] = if missing { json!(false) } else { Value::Null };
            out["summary"] = json!(if missing {
                format!("{shown} does not exist (is the Connected Machine agent installed?)")
            } else {
                format!("{shown} cannot be examined ({})", e.kind())
            });
            return out;
        }
    };
    out["exists"] = json!(true);
    let mut parts: Vec<String> = Vec::new();
    if !meta.is_dir() {
        parts.push("not a directory".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        out["mode"] = json!(format!("{mode:04o}"));
        out["uid"] = json!(meta.uid());
        out["gid"] = json!(meta.gid());
        let group = group_name(meta.gid());
        parts.push(format!(
            "mode {mode:04o}, owner uid {}, group {}",
            meta.uid(),
            match &group {
                Some(name) => format!("{name} (gid {})", meta.gid()),
                None => format!("gid {}", meta.gid()),
            }
        ));
        out["group"] = json!(group);
    }
    match std::fs::read_dir(dir) {
        Ok(_) => {
            out["readable"] = json!(true);
            parts.push("this user can read it".into());
        }
        Err(e) => {
            out["readable"] = json!(false);
            parts.push(format!("this user cannot read it ({})", e.kind()));
        }
    }
    out["summary"] = json!(format!("{shown}: {}", parts.join("; ")));
    out
}

/// A duration as people read it: `42 s`, `17 min`, `5 h 3 min`, `3 d 4 h`.
pub(super) fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7_200 => format!("{} min", s / 60),
        7_200..172_800 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// How long ago the workload-identity token file was written (by its modification time; the
/// file itself is not read).
pub(super) fn federated_token_file_report(path: &Path, now: SystemTime) -> Value {
    const WHAT: &str = "the file AZURE_FEDERATED_TOKEN_FILE names";
    let problem = |why: String| json!({ "error": why, "summary": format!("{WHAT} {why}") });
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return problem("does not exist".into());
        }
        Err(e) => return problem(format!("cannot be examined ({})", e.kind())),
    };
    if !meta.is_file() {
        return problem("is not a regular file".into());
    }
    let modified = match meta.modified() {
        Ok(t) => t,
        Err(e) => return problem(format!("has no modification time ({})", e.kind())),
    };
    match now.duration_since(modified) {
        Ok(age) => json!({
            "age_s": age.as_secs(),
            "stale": age > FEDERATED_TOKEN_FILE_STALE,
            "summary": format!("{WHAT} was modified {} ago", human_age(age)),
        }),
        Err(_) => json!({
            "age_s": 0,
            "stale": false,
            "summary": format!("{WHAT} was modified in the future (is the clock right?)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(Duration::from_secs(42)), "42 s");
        assert_eq!(human_age(Duration::from_secs(17 * 60 + 5)), "17 min");
        assert_eq!(human_age(Duration::from_secs(5 * 3600 + 180)), "5 h 3 min");
        assert_eq!(
            human_age(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3 d 4 h"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("entra-mi-doctor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_federated_token_file_age_and_staleness() {
        let dir = scratch("wi");
        let file = dir.join("token");
        std::fs::write(&file, "not shown").unwrap();
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        let fresh = federated_token_file_report(&file, written + Duration::from_secs(600));
        assert_eq!(fresh["age_s"], 600);
        assert_eq!(fresh["stale"], false);
        assert!(
            fresh["summary"]
                .as_str()
                .unwrap()
                .ends_with("modified 10 min ago")
        );
        let old = federated_token_file_report(&file, written + Duration::from_secs(25 * 3600));
        assert_eq!(old["stale"], true);
        let future = federated_token_file_report(&file, written - Duration::from_secs(60));
        assert_eq!(future["stale"], false);
        assert!(
            future["summary"]
                .as_str()
                .unwrap()
                .contains("in the future")
        );
        let missing = federated_token_file_report(&dir.join("nope"), SystemTime::now());
        assert_eq!(missing["error"], "does not exist");
        let not_file = federated_token_file_report(&dir, SystemTime::now());
        assert_eq!(not_file["error"], "is not a regular file");
        for v in [fresh, old, future, missing, not_file] {
            assert!(!v.to_string().contains("not shown"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_arc_key_directory_permissions() {
        let dir = scratch("arc");
        std::fs::write(dir.join("secret.key"), "KEY-CONTENT-CANARY").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        }
        let v = arc_key_directory_report(&dir);
        assert_eq!(v["exists"], true);
        assert_eq!(v["readable"], true);
        #[cfg(unix)]
        {
            assert_eq!(v["mode"], "0750");
            assert!(v["summary"].as_str().unwrap().contains("mode 0750"));
        }
        assert!(!v.to_string().contains("KEY-CONTENT-CANARY"));
        let gone = arc_key_directory_report(&dir.join("missing"));
        assert_eq!(gone["exists"], false);
        assert!(gone["summary"].as_str().unwrap().contains("does not exist"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn proxy_variables_are_named_once() {
        let env = Environment::from_vars([
            ("HTTPS_PROXY", "http://proxy:3128"),
            ("all_proxy", "socks5://proxy:1080"),
            ("HTTP_PROXY", ""),
        ]);
        assert_eq!(proxy_variables(&env), ["HTTPS_PROXY", "all_proxy"]);
        assert!(proxy_variables(&Environment::from_vars([("X", "y")])).is_empty());
    }
}
