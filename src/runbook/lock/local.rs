//! One runbook run at a time per cluster, across every user of the machine: an flock(2)ed file
//! per cluster in `lock_dir`, holding who took it and since when. The kernel drops the lock
//! when the holder dies, so a crashed console never leaves a cluster locked.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run holds the lock of cluster {cluster}: {holder}")]
    Held {
        cluster: String,
        holder: Box<Holder>,
    },
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
        let _ = self.file.set_len(0);
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// The lock folder to use: `configured`, or `fallback` with a warning when it cannot be written.
pub fn usable_dir(configured: &Path, fallback: &Path) -> (PathBuf, Option<String>) {
    let ok = |d: &Path| std::fs::create_dir_all(d).is_ok() && tempfile::tempfile_in(d).is_ok();
    if ok(configured) {
        // Every user of the machine shares it: sticky and world-writable, like /tmp.
        let _ = std::fs::set_permissions(configured, std::fs::Permissions::from_mode(0o1777));
        return (configured.to_path_buf(), None);
    }
    let _ = std::fs::create_dir_all(fallback);
    let warning = format!(
        "lock_dir {} is not writable; using {} (runs by other users will not see this lock)",
        configured.display(),
        fallback.display()
    );
    (fallback.to_path_buf(), Some(warning))
}

/// Takes the run lock of `cluster` in `dir`, or says who holds it.
pub fn acquire(dir: &Path, cluster: &str, holder: &Holder) -> Result<RunLock, LockError> {
    let path = dir.join(format!("{cluster}.lock"));
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&path)
        .map_err(io)?;
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = read_holder(&path).unwrap_or(Holder {
                user: "unknown".into(),
                host: "unknown".into(),
                pid: 0,
                since: "unknown".into(),
                runbook: "unknown".into(),
            });
            return Err(LockError::Held {
                cluster: cluster.to_string(),
                holder: Box::new(holder),
            });
        }
        return Err(io(err));
    }
    let text = serde_json::to_string(holder).map_err(|e| io(std::io::Error::other(e)))?;
    file.set_len(0).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(RunLock { file, path })
}

/// Who holds the lock at `path` now, if anyone.
pub fn current_holder(dir: &Path, cluster: &str) -> Option<Holder> {
    let path = dir.join(format!("{cluster}.lock"));
    let file = File::open(&path).ok()?;
    // SAFETY: flock on a descriptor we own; a shared try-lock only probes.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        // SAFETY: as above.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return None;
    }
    read_holder(&path)
}

fn read_holder(path: &Path) -> Option<Holder> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
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
}
