//! Reading small secret files (the Azure Arc key, the workload-identity token) safely: the
//! file is opened once, without blocking (a FIFO in its place must not hang the caller) and,
//! where asked, without following a symbolic link; every check is made on the opened handle,
//! and at most one byte more than the limit is read, into a buffer zeroized when dropped.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a file could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadFailure {
    NotFound,
    PermissionDenied,
    /// A symbolic link where none may be.
    Symlink,
    /// A directory, FIFO, socket or device.
    NotRegular,
    /// More bytes than the limit.
    TooLarge,
    /// The path now names another file than the one opened (it was replaced meanwhile).
    Replaced,
    Other(ErrorKind),
}

impl ReadFailure {
    fn from_io(e: &std::io::Error) -> Self {
        match e.kind() {
            ErrorKind::NotFound => ReadFailure::NotFound,
            ErrorKind::PermissionDenied => ReadFailure::PermissionDenied,
            k => {
                // ELOOP: O_NOFOLLOW met a symbolic link.
                #[cfg(unix)]
                if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                    return ReadFailure::Symlink;
                }
                ReadFailure::Other(k)
            }
        }
    }
}

/// How to open a file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The largest file accepted, in bytes.
    pub(crate) max: u64,
    /// Whether a symbolic link as the last component is followed (Kubernetes projects token
    /// files as links into a `..data` directory) or refused.
    pub(crate) follow_symlinks: bool,
}

/// Opens `path` once and reads it whole if it is a regular file of at most `limits.max` bytes.
/// Blocking I/O: run it on a blocking thread.
pub(crate) fn read_regular(path: &Path, limits: Limits) -> Result<Zeroizing<Vec<u8>>, ReadFailure> {
    let file = open(path, limits.follow_symlinks).map_err(|e| ReadFailure::from_io(&e))?;
    let meta = file.metadata().map_err(|e| ReadFailure::from_io(&e))?;
    if meta.file_type().is_symlink() {
        return Err(ReadFailure::Symlink);
    }
    if !meta.is_file() {
        return Err(ReadFailure::NotRegular);
    }
    if meta.len() > limits.max {
        return Err(ReadFailure::TooLarge);
    }
    if !limits.follow_symlinks && !same_file(path, &meta) {
        return Err(ReadFailure::Replaced);
    }
    // Room for the whole read up front: a buffer that grew would leave copies behind that
    // are not zeroized.
    let room = usize::try_from(limits.max + 1).unwrap_or(usize::MAX);
    let mut bytes = Zeroizing::new(Vec::with_capacity(room));
    file.take(limits.max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadFailure::from_io(&e))?;
    if bytes.len() as u64 > limits.max {
        return Err(ReadFailure::TooLarge);
    }
    Ok(bytes)
}

/// [`read_regular`] on tokio's blocking pool.
pub(crate) async fn read_regular_async(
    path: PathBuf,
    limits: Limits,
) -> Result<Zeroizing<Vec<u8>>, ReadFailure> {
    tokio::task::spawn_blocking(move || read_regular(&path, limits))
        .await
        .unwrap_or(Err(ReadFailure::Other(ErrorKind::Interrupted)))
}

#[cfg(unix)]
fn open(path: &Path, follow_symlinks: bool) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if !follow_symlinks {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    Ok(File::from(fd))
}

#[cfg(windows)]
fn open(path: &Path, follow_symlinks: bool) -> std::io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;
    /// `FILE_FLAG_OPEN_REPARSE_POINT`: open a symbolic link itself instead of its target.
    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if !follow_symlinks {
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    options.open(path)
}

#[cfg(not(any(unix, windows)))]
fn open(path: &Path, _follow_symlinks: bool) -> std::io::Result<File> {
    File::open(path)
}

/// True when `path` (not followed) still names the file whose metadata is `opened`.
#[cfg(unix)]
fn same_file(path: &Path, opened: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|now| now.dev() == opened.dev() && now.ino() == opened.ino())
}

#[cfg(not(unix))]
fn same_file(path: &Path, opened: &std::fs::Metadata) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|now| now.is_file() && now.len() == opened.len())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "entra-mi-fs-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const NO_LINKS: Limits = Limits {
        max: 8,
        follow_symlinks: false,
    };

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let d = dir();
        let f = d.join("a.key");
        std::fs::write(&f, b"12345678").unwrap();
        assert_eq!(*read_regular(&f, NO_LINKS).unwrap(), b"12345678");
        std::fs::write(&f, b"123456789").unwrap();
        assert_eq!(read_regular(&f, NO_LINKS), Err(ReadFailure::TooLarge));
        assert_eq!(
            read_regular(&d.join("none"), NO_LINKS),
            Err(ReadFailure::NotFound)
        );
        assert_eq!(read_regular(&d, NO_LINKS), Err(ReadFailure::NotRegular));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symbolic_link_is_refused_or_followed_as_asked() {
        let d = dir();
        let target = d.join("target");
        std::fs::write(&target, b"abc").unwrap();
        let link = d.join("link.key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_regular(&link, NO_LINKS), Err(ReadFailure::Symlink));
        let follow = Limits {
            follow_symlinks: true,
            ..NO_LINKS
        };
        assert_eq!(*read_regular(&link, follow).unwrap(), b"abc");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_fifo_neither_blocks_nor_is_read() {
        let d = dir();
        let fifo = d.join("pipe.key");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        // No writer ever opens it: a blocking open would hang here.
        for follow_symlinks in [false, true] {
            let limits = Limits {
                follow_symlinks,
                ..NO_LINKS
            };
            assert_eq!(read_regular(&fifo, limits), Err(ReadFailure::NotRegular));
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
