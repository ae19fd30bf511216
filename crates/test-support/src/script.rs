//! Executable stand-ins (a fake `az`) written so that running them cannot fail with
//! `ETXTBSY`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writes `content` to `path` as an executable file, through a child process (`sh`).
///
/// Tests run as threads of one process, and many of them start processes. A file this process
/// held open for writing would be inherited by a process that another thread forks meanwhile,
/// and executing the file while any such copy is open fails with `ETXTBSY` ("executable file
/// busy"). The child's descriptor is never in this process, so no fork here inherits it.
pub fn write_executable(path: &Path, content: &str) {
    let mut writer = Command::new("/bin/sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start /bin/sh to write the script");
    writer
        .stdin
        .take()
        .expect("the writer's stdin")
        .write_all(content.as_bytes())
        .expect("send the script to the writer");
    let status = writer.wait().expect("wait for the writer");
    assert!(
        status.success(),
        "writing {} failed: {status}",
        path.display()
    );
}
