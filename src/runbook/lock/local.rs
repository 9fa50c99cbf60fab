//! The run lock on one machine: an flock(2)ed `CLUSTER.lock` in `lock_dir`, shared by every
//! user of the machine, holding who took it and since when. The kernel drops the lock when the
//! holder dies, so a crashed console never leaves a cluster locked.
//!
//! The folder is shared (sticky, world-writable, like /tmp), so the file is treated as hostile
//! ground: it is opened without following symlinks and must be a plain file with one link;
//! it is created mode 0666 so that any user can take a lock another user's run left behind;
//! it is written only by the process that holds the flock, and never truncated on release
//! (a holder's JSON only means something while the file is locked). A file this user may not
//! write (an older opsdeck made it 0644) is still opened read-only, so a lock held by another
//! user is reported with its holder rather than as an error.

use std::ffi::CString;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Who holds a cluster's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
    pub runbook: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on {} (pid {}) runs {} since {}",
            self.user, self.host, self.pid, self.runbook, self.since
        )
    }
}

impl Holder {
    fn unknown() -> Holder {
        Holder {
            user: "unknown".into(),
            host: "unknown".into(),
            pid: 0,
            since: "unknown".into(),
            runbook: "unknown".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run holds the lock of cluster {cluster}: {holder}")]
    Held {
        cluster: String,
        holder: Box<Holder>,
    },
    /// The lock path is not a plain file of its own (a symlink, a hard link, a FIFO, ...):
    /// someone may be trying to make opsdeck write elsewhere.
    #[error("refusing the lock file {path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    #[error("cannot use the lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A held lock; released on drop (and by the kernel if the process dies).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only unlock: truncating first would let a second taker, refused a moment earlier,
        // read an empty holder. The stale JSON is ignored while the file is unlocked.
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Whether a folder every user can write lets them swap our files (no sticky bit).
fn swappable(meta: &std::fs::Metadata) -> bool {
    let mode = meta.permissions().mode();
    mode & 0o002 != 0 && mode & 0o1000 == 0
}

/// Makes the shared lock folder ready: created sticky and world-writable (like /tmp) when
/// it does not exist; an existing folder keeps its owner's modes (never chmodded).
fn prepare_shared(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err("it is not a folder".into()),
        Ok(meta) if swappable(&meta) => {
            return Err(format!(
                "it is writable by every user without the sticky bit (mode {:o}), so another user could swap the lock files",
                meta.permissions().mode() & 0o7777
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                // Ours: open it to every user of the machine, sticky so no one can
                // remove or replace another's lock file.
                Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|e| e.to_string())?,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return prepare_shared(dir),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(e) => return Err(e.to_string()),
    }
    tempfile::tempfile_in(dir)
        .map(drop)
        .map_err(|e| format!("cannot write in it: {e}"))
}

/// The lock folder to use: `configured`, or `fallback` (private to this user) with a warning
/// saying why when the configured one cannot be used.
pub fn usable_dir(configured: &Path, fallback: &Path) -> (PathBuf, Option<String>) {
    let why = match prepare_shared(configured) {
        Ok(()) => return (configured.to_path_buf(), None),
        Err(why) => why,
    };
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(fallback);
    let warning = format!(
        "lock_dir {} cannot be used ({why}); using {} (runs by other users will not see this lock)",
        configured.display(),
        fallback.display()
    );
    (fallback.to_path_buf(), Some(warning))
}

fn lock_path(dir: &Path, cluster: &str) -> PathBuf {
    dir.join(format!("{cluster}.lock"))
}

/// `open(2)` of `path` without following a symlink at its last component, close-on-exec and
/// without blocking on a FIFO.
fn open_raw(path: &Path, flags: libc::c_int) -> std::io::Result<File> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "NUL in path"))?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    // SAFETY: a valid NUL-terminated path; the mode is read only with O_CREAT.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o666 as libc::c_uint) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor open(2) just returned, owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The lock file, and whether we may write it.
fn open_lock_file(path: &Path) -> Result<(File, bool), LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let unsafe_link = |path: &Path| {
        let target = std::fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        LockError::Unsafe {
            path: path.to_path_buf(),
            reason: format!(
                "it is a symbolic link{target}, which opsdeck never follows in the shared lock folder; remove it"
            ),
        }
    };
    for _ in 0..8 {
        match open_raw(path, libc::O_RDWR) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(unsafe_link(path)),
            // Another user's file we may not write: enough to take or probe the flock.
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return match open_raw(path, libc::O_RDONLY) {
                    Ok(f) => Ok((f, false)),
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(unsafe_link(path)),
                    Err(e) => Err(io(e)),
                };
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match open_raw(path, libc::O_RDWR | libc::O_CREAT | libc::O_EXCL) {
                    Ok(f) => {
                        // Past the umask: every user must be able to record themselves as
                        // the holder once this run is over.
                        f.set_permissions(std::fs::Permissions::from_mode(0o666))
                            .map_err(io)?;
                        return Ok((f, true));
                    }
                    // Someone created it (or planted a link) meanwhile: look again.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(io(e)),
                }
            }
            Err(e) => return Err(io(e)),
        }
    }
    Err(io(std::io::Error::other(
        "the lock file keeps appearing and disappearing",
    )))
}

/// Refuses anything but a plain file with one name (a hard link to another file would make
/// the holder's JSON land in it).
fn check_plain(file: &File, path: &Path) -> Result<std::fs::Metadata, LockError> {
    let meta = file.metadata().map_err(|source| LockError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let reason = if !meta.file_type().is_file() {
        Some("it is not a regular file".to_string())
    } else if meta.nlink() != 1 {
        Some(format!(
            "it has {} hard links, so writing it would change another file; remove it",
            meta.nlink()
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LockError::Unsafe {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(meta),
    }
}

fn try_flock(file: &File, how: libc::c_int) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Takes the run lock of `cluster` in `dir`, or says who holds it.
pub fn acquire(dir: &Path, cluster: &str, holder: &Holder) -> Result<RunLock, LockError> {
    let path = lock_path(dir, cluster);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let (file, writable) = open_lock_file(&path)?;
    let meta = check_plain(&file, &path)?;
    // A few tries: `current_holder` probes with a shared lock for an instant.
    let mut locked = false;
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
        if try_flock(&file, libc::LOCK_EX).map_err(io)? {
            locked = true;
            break;
        }
    }
    if !locked {
        return Err(LockError::Held {
            cluster: cluster.to_string(),
            holder: Box::new(read_holder(&file).unwrap_or_else(Holder::unknown)),
        });
    }
    if !writable {
        // Unlocked on drop; the stale holder stays, and so must we not run unnamed.
        return Err(LockError::Io {
            path: path.clone(),
            source: std::io::Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "no run holds it, but it belongs to uid {} with mode {:o}, so this user cannot record itself as the holder; ask its owner or root to remove it",
                    meta.uid(),
                    meta.permissions().mode() & 0o7777
                ),
            ),
        });
    }
    // Written only now that we hold it: the JSON first, then cut to its length, so a reader
    // never meets an empty file (a half-written one it retries).
    let text = serde_json::to_vec(holder).map_err(|e| io(std::io::Error::other(e)))?;
    file.write_all_at(&text, 0).map_err(io)?;
    file.set_len(text.len() as u64).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(RunLock { file, path })
}

/// Who holds the lock of `cluster` in `dir` now, if anyone.
pub fn current_holder(dir: &Path, cluster: &str) -> Option<Holder> {
    let path = lock_path(dir, cluster);
    let file = open_raw(&path, libc::O_RDONLY).ok()?;
    check_plain(&file, &path).ok()?;
    // A shared try-lock only probes.
    if try_flock(&file, libc::LOCK_SH).ok()? {
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    Some(read_holder(&file).unwrap_or_else(Holder::unknown))
}

/// The holder's JSON, read again for a moment if the holder is still writing it.
fn read_holder(file: &File) -> Option<Holder> {
    for attempt in 0..10 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        while len < buf.len() {
            match file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(_) => return None,
            }
        }
        if let Ok(h) = serde_json::from_slice(&buf[..len]) {
            return Some(h);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(user: &str) -> Holder {
        Holder {
            user: user.into(),
            host: "vps".into(),
            pid: std::process::id(),
            since: "03:00".into(),
            runbook: "restore-postgres".into(),
        }
    }

    #[test]
    fn second_taker_sees_the_holder_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let lock = acquire(dir.path(), "production", &holder("alice")).unwrap();
        match acquire(dir.path(), "production", &holder("bob")) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder.user, "alice"),
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(
            current_holder(dir.path(), "production").map(|h| h.user),
            Some("alice".into())
        );
        assert!(
            acquire(dir.path(), "staging", &holder("bob")).is_ok(),
            "locks are per cluster"
        );
        drop(lock);
        assert_eq!(current_holder(dir.path(), "production"), None);
        assert!(acquire(dir.path(), "production", &holder("bob")).is_ok());
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("production.lock")).unwrap();
        match acquire(dir.path(), "production", &holder("alice")) {
            Err(LockError::Unsafe { reason, .. }) => {
                assert!(reason.contains("symbolic link"), "{reason}")
            }
            other => panic!("expected Unsafe, got {other:?}"),
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn a_hard_link_at_the_lock_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::hard_link(&victim, dir.path().join("production.lock")).unwrap();
        assert!(matches!(
            acquire(dir.path(), "production", &holder("alice")),
            Err(LockError::Unsafe { .. })
        ));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn release_leaves_the_holder_readable_by_a_refused_taker() {
        // A taker refused just before the release must still read a whole holder: the file
        // is never emptied while (or as) it is locked.
        let dir = tempfile::tempdir().unwrap();
        let lock = acquire(dir.path(), "production", &holder("alice")).unwrap();
        drop(lock);
        let text = std::fs::read_to_string(dir.path().join("production.lock")).unwrap();
        assert!(text.contains("alice"), "{text:?}");
        // A shorter holder leaves no tail of the longer one.
        let mut short = holder("bo");
        short.runbook = "x".into();
        let _lock = acquire(dir.path(), "production", &short).unwrap();
        let text = std::fs::read_to_string(dir.path().join("production.lock")).unwrap();
        assert_eq!(serde_json::from_str::<Holder>(&text).unwrap(), short);
    }

    #[test]
    fn the_lock_file_is_writable_by_every_user() {
        let dir = tempfile::tempdir().unwrap();
        let _lock = acquire(dir.path(), "production", &holder("alice")).unwrap();
        let mode = std::fs::metadata(dir.path().join("production.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
    }

    #[test]
    fn a_created_lock_folder_is_sticky_and_an_existing_one_keeps_its_mode() {
        let base = tempfile::tempdir().unwrap();
        let fresh = base.path().join("var/lib/opsdeck/locks");
        let (dir, warning) = usable_dir(&fresh, &base.path().join("fallback"));
        assert_eq!((dir.as_path(), warning), (fresh.as_path(), None));
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);

        let existing = base.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o750)).unwrap();
        let (dir, warning) = usable_dir(&existing, &base.path().join("fallback"));
        assert_eq!((dir.as_path(), warning), (existing.as_path(), None));
        let mode = std::fs::metadata(&existing).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750, "never chmodded");
    }

    #[test]
    fn a_world_writable_folder_without_the_sticky_bit_falls_back() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let fallback = base.path().join("fallback");
        let (dir, warning) = usable_dir(&open, &fallback);
        assert_eq!(dir, fallback);
        assert!(warning.unwrap().contains("sticky"));
    }
}
