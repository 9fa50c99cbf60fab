//! The audit log: append-only JSON lines, one record when a step starts (fsynced before its
//! process starts) and one when it ends, plus `action` records for other state changes.
//! Secret values are masked before anything is written.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who is at the keyboard, as well as the machine can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub sudo_user: Option<String>,
    pub ssh_client: Option<String>,
    pub host: String,
}

impl Actor {
    pub fn current() -> Actor {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Actor {
            user: var("USER")
                .or_else(|| var("LOGNAME"))
                .unwrap_or_else(|| format!("uid:{}", unsafe_uid())),
            sudo_user: var("SUDO_USER"),
            ssh_client: var("SSH_CLIENT"),
            host: hostname(),
        }
    }
}

fn unsafe_uid() -> u32 {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// One line of the audit file. Field names are the contract in runbooks.md.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    pub cluster: String,
    #[serde(default)]
    pub context: String,
    #[serde(flatten)]
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default)]
    pub edited: bool,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Record {
    /// An `action` record (runbooks.md): `action` is the dotted kind (`argocd.sync`), `target`
    /// what it acted on (`production/argocd/APP`), `result` `ok` or the error text.
    pub fn action(
        action: &str,
        target: &str,
        cluster: &str,
        context: &str,
        confirmation: &str,
        result: &str,
        started_at: jiff::Timestamp,
    ) -> Record {
        let stamp = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        Record {
            event: "action".into(),
            action: Some(action.into()),
            target: Some(target.into()),
            result: Some(result.into()),
            cluster: cluster.into(),
            context: context.into(),
            actor: Actor::current(),
            confirmation: Some(confirmation.into()),
            started_at: stamp(started_at),
            finished_at: Some(stamp(jiff::Timestamp::now())),
            ..Default::default()
        }
    }
}

/// The audit file. Every append is one `write` of one line on an O_APPEND descriptor, then fsync.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> AuditLog {
        AuditLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` with `secrets` masked as `***`, and fsyncs it before returning.
    pub fn append(&self, record: &Record, secrets: &[String]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        line = mask(&line, secrets);
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        f.write_all(line.as_bytes())?;
        f.sync_all()
    }

    /// Every record in the file; lines that do not parse (a torn last line) are skipped.
    pub fn read_all(&self) -> std::io::Result<Vec<Record>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// Replaces every occurrence of each secret value (and its JSON-escaped form) with `***`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
        let escaped = serde_json::to_string(s).unwrap_or_default();
        let escaped = escaped.trim_matches('"');
        if escaped != s {
            out = out.replace(escaped, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_masked_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::new(dir.path().join("a/audit.jsonl"));
        let rec = Record {
            event: "step_started".into(),
            cluster: "staging".into(),
            command: Some("echo hunter2 \"quoted\"".into()),
            started_at: "2026-11-25T03:00:00Z".into(),
            ..Default::default()
        };
        log.append(&rec, &["hunter2".into()]).unwrap();
        log.append(
            &Record {
                event: "step_finished".into(),
                ..rec.clone()
            },
            &["hunter2".into()],
        )
        .unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(!text.contains("hunter2"));
        let all = log.read_all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].command.as_deref(), Some("echo *** \"quoted\""));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(log.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_torn_last_line_does_not_hide_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"event\":\"step_started\",\"cluster\":\"x\",\"user\":\"u\",\"host\":\"h\",\"started_at\":\"t\"}\n{\"event\":\"step_fin").unwrap();
        assert_eq!(AuditLog::new(path).read_all().unwrap().len(), 1);
    }

    #[test]
    fn mask_handles_json_escaped_secrets() {
        assert_eq!(mask(r#"{"v":"a\"b"}"#, &["a\"b".into()]), r#"{"v":"***"}"#);
    }
}
