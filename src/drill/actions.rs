//! Quick actions: restart a workload, delete a pod, scale, trigger a Job from a CronJob, exec.
//!
//! A [`QuickAction`] is plain data: the confirm modal holds the exact action it will run, the
//! audit records are built from it, and [`perform_and_record`] writes its start record, runs
//! it, then writes its end record ([`perform`] cannot be called without a start record on
//! disk). Exec is interactive, so it has its own entry point ([`exec_and_record`], around
//! [`exec_interactive`]) that hands the process's terminal to the container;
//! [`exec_capture`] runs a command and collects its output instead.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Status};
use kube::Api;
use kube::api::{AttachParams, DeleteParams, Patch, PatchParams, PostParams, TerminalSize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runbook::audit::{Actor, AuditError, AuditLog, Pending, Record};

/// The workload kinds actions address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    fn lower(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        }
    }
}

/// What a quick action does, with every name it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuickActionKind {
    /// `kubectl rollout restart`: stamps the pod template so every pod is replaced.
    Restart {
        kind: WorkloadKind,
        ns: String,
        name: String,
    },
    DeletePod {
        ns: String,
        name: String,
    },
    /// `from` is the count the engineer saw; the action refuses if it changed meanwhile.
    Scale {
        kind: WorkloadKind,
        ns: String,
        name: String,
        from: i32,
        to: i32,
    },
    TriggerJob {
        ns: String,
        cronjob: String,
    },
    Exec {
        ns: String,
        pod: String,
        container: String,
    },
}

/// One quick action on one cluster: what the confirm modal holds and what gets recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuickAction {
    pub kind: QuickActionKind,
    /// The cluster's name as configured.
    pub cluster: String,
}

impl QuickAction {
    /// One line for the confirm modal, naming the exact objects and counts.
    pub fn describe(&self) -> String {
        let c = &self.cluster;
        match &self.kind {
            QuickActionKind::Restart { kind, ns, name } => format!(
                "Rollout restart {} {ns}/{name} on {c}: every pod is replaced",
                kind.as_str()
            ),
            QuickActionKind::DeletePod { ns, name } => {
                format!("Delete pod {ns}/{name} on {c}: its controller starts a replacement")
            }
            QuickActionKind::Scale {
                kind,
                ns,
                name,
                from,
                to,
            } => format!(
                "Scale {} {ns}/{name} on {c} from {from} to {to} replicas",
                kind.as_str()
            ),
            QuickActionKind::TriggerJob { ns, cronjob } => {
                format!("Trigger a Job now from CronJob {ns}/{cronjob} on {c}")
            }
            QuickActionKind::Exec { ns, pod, container } => {
                format!("Open a shell in {ns}/{pod} (container {container}) on {c}")
            }
        }
    }

    /// The dotted name of the `action` audit record (runbooks.md).
    pub fn audit_name(&self) -> &'static str {
        match &self.kind {
            QuickActionKind::Restart { .. } => "workload.restart",
            QuickActionKind::DeletePod { .. } => "pod.delete",
            QuickActionKind::Scale { .. } => "workload.scale",
            QuickActionKind::TriggerJob { .. } => "job.trigger",
            QuickActionKind::Exec { .. } => "pod.exec",
        }
    }

    /// `cluster/namespace/kind/name`, e.g. `production/goapps-production/pod/iam-7d9-x2`.
    pub fn target(&self) -> String {
        let c = &self.cluster;
        match &self.kind {
            QuickActionKind::Restart { kind, ns, name }
            | QuickActionKind::Scale { kind, ns, name, .. } => {
                format!("{c}/{ns}/{}/{name}", kind.lower())
            }
            QuickActionKind::DeletePod { ns, name } => format!("{c}/{ns}/pod/{name}"),
            QuickActionKind::TriggerJob { ns, cronjob } => format!("{c}/{ns}/cronjob/{cronjob}"),
            QuickActionKind::Exec { ns, pod, container } => {
                format!("{c}/{ns}/pod/{pod}/{container}")
            }
        }
    }

    /// What the engineer must type on a protected cluster: the cluster's name.
    pub fn confirmation_word(&self) -> &str {
        &self.cluster
    }

    /// Protected clusters make every state-changing action ask for the typed cluster name.
    pub fn needs_typed_confirmation(&self, protected: bool) -> bool {
        protected && self.is_state_changing()
    }

    /// Whether read-only mode refuses it. Every quick action changes state; exec counts,
    /// since a shell in a container can do anything.
    pub fn is_state_changing(&self) -> bool {
        match &self.kind {
            QuickActionKind::Restart { .. }
            | QuickActionKind::DeletePod { .. }
            | QuickActionKind::Scale { .. }
            | QuickActionKind::TriggerJob { .. }
            | QuickActionKind::Exec { .. } => true,
        }
    }
}

/// How an action was confirmed, as the audit record's `confirmation` says it.
pub const CONFIRMED_BY_KEY: &str = "key";
pub const CONFIRMED_BY_TYPING: &str = "typed";

/// Decides whether a confirm modal may run `action`: refused in read-only mode; on a protected
/// cluster `typed` must be the cluster's name. Returns the `confirmation` to record, or the
/// sentence to show in the modal.
pub fn confirm(
    action: &QuickAction,
    protected: bool,
    read_only: bool,
    typed: Option<&str>,
) -> Result<&'static str, String> {
    if read_only && action.is_state_changing() {
        return Err(format!(
            "read-only mode: {} is refused (start opsdeck without --read-only to act)",
            action.audit_name()
        ));
    }
    if !action.needs_typed_confirmation(protected) {
        return Ok(CONFIRMED_BY_KEY);
    }
    match typed.map(str::trim) {
        Some(t) if t == action.confirmation_word() => Ok(CONFIRMED_BY_TYPING),
        Some("") | None => Err(format!(
            "{} is protected: type {} to confirm",
            action.cluster,
            action.confirmation_word()
        )),
        Some(other) => Err(format!(
            "{other:?} is not {:?}: type the cluster's name exactly",
            action.confirmation_word()
        )),
    }
}

/// The start record of `action` (`action_started`, written before it acts). `confirmation` is
/// how it was confirmed: `key`, `typed` or `yes-flag`.
pub fn start_record(action: &QuickAction, actor: &Actor, confirmation: &str) -> Record {
    let mut r = Record::action_started(
        action.audit_name(),
        &action.target(),
        &action.cluster,
        "",
        confirmation,
    );
    r.actor = actor.clone();
    r
}

/// What the engineer sees when an action is refused because its start record could not be
/// written: the file, the OS error, and that nothing was done.
pub fn refusal(e: &AuditError) -> String {
    format!("refused, nothing was done: {e} (free the disk or fix `audit_log` in the config)")
}

fn outcome(result: &Result<String, String>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e.clone(),
    }
}

/// Writes the start record, performs `action`, writes the end record. A start record that
/// cannot be written refuses the action (nothing is sent to the cluster); an end record that
/// cannot be written turns a success into an error (it happened, but the record is
/// incomplete: the engineer must know).
pub async fn perform_and_record(
    client: kube::Client,
    action: &QuickAction,
    audit: &AuditLog,
    actor: &Actor,
    confirmation: &str,
) -> Result<String, String> {
    let pending = audit
        .begin_async(start_record(action, actor, confirmation))
        .await
        .map_err(|e| refusal(&e))?;
    let result = perform(client, action, &pending).await;
    finish(pending, result).await
}

/// Writes the end record of an action begun with [`start_record`] and returns its result,
/// made an error when the end record could not be written.
async fn finish(pending: Pending, result: Result<String, String>) -> Result<String, String> {
    if let Err(e) = pending.finish_async(outcome(&result)).await {
        let done = match &result {
            Ok(m) | Err(m) => m.clone(),
        };
        return Err(format!("{done}; but its end record is missing: {e}"));
    }
    result
}

/// Opens an interactive shell (`sh`) in the exec action's container, recorded like every
/// action: start record first (refused if it cannot be written), end record with the exit.
/// The caller has suspended the TUI.
pub async fn exec_and_record(
    client: kube::Client,
    action: &QuickAction,
    audit: &AuditLog,
    actor: &Actor,
    confirmation: &str,
) -> Result<String, String> {
    let QuickActionKind::Exec { ns, pod, container } = &action.kind else {
        return Err("not an exec action".into());
    };
    let pending = audit
        .begin_async(start_record(action, actor, confirmation))
        .await
        .map_err(|e| refusal(&e))?;
    let result = exec_interactive(client, ns, pod, container, &["sh"])
        .await
        .map(|code| format!("shell exited with {code}"));
    finish(pending, result).await
}

/// Runs a non-interactive quick action against the cluster; the message says what happened.
/// `_recorded` is the proof its start record is on disk ([`AuditLog::begin`]).
pub async fn perform(
    client: kube::Client,
    action: &QuickAction,
    _recorded: &Pending,
) -> Result<String, String> {
    match &action.kind {
        QuickActionKind::Restart { kind, ns, name } => restart(client, *kind, ns, name).await,
        QuickActionKind::DeletePod { ns, name } => {
            let api: Api<Pod> = Api::namespaced(client, ns);
            api.delete(name, &DeleteParams::default())
                .await
                .map_err(|e| format!("deleting pod {ns}/{name}: {e}"))?;
            Ok(format!("pod {ns}/{name} deleted"))
        }
        QuickActionKind::Scale {
            kind,
            ns,
            name,
            from,
            to,
        } => scale(client, *kind, ns, name, *from, *to).await,
        QuickActionKind::TriggerJob { ns, cronjob } => trigger_job(client, ns, cronjob).await,
        QuickActionKind::Exec { .. } => {
            Err("exec is interactive: run it with exec_and_record".into())
        }
    }
}

async fn restart(
    client: kube::Client,
    kind: WorkloadKind,
    ns: &str,
    name: &str,
) -> Result<String, String> {
    // The same patch `kubectl rollout restart` sends.
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }}}}});
    let pp = PatchParams::default();
    let p = Patch::Strategic(&patch);
    let r = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client, ns)
            .patch(name, &pp, &p)
            .await
            .map(drop),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client, ns)
            .patch(name, &pp, &p)
            .await
            .map(drop),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client, ns)
            .patch(name, &pp, &p)
            .await
            .map(drop),
    };
    r.map_err(|e| format!("restarting {} {ns}/{name}: {e}", kind.as_str()))?;
    Ok(format!("{} {ns}/{name} restarted", kind.as_str()))
}

async fn scale(
    client: kube::Client,
    kind: WorkloadKind,
    ns: &str,
    name: &str,
    from: i32,
    to: i32,
) -> Result<String, String> {
    let what = || format!("scaling {} {ns}/{name}", kind.as_str());
    let patch = json!({"spec": {"replicas": to}});
    let pp = PatchParams::default();
    let current = match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_scale(name)
            .await
            .map_err(|e| format!("{}: {e}", what()))?,
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_scale(name)
            .await
            .map_err(|e| format!("{}: {e}", what()))?,
        WorkloadKind::DaemonSet => {
            return Err(format!("{}: a DaemonSet runs one pod per node", what()));
        }
    };
    let now = current.spec.and_then(|s| s.replicas).unwrap_or(0);
    if now != from {
        return Err(format!(
            "{}: replicas changed from {from} to {now} since you confirmed; nothing done",
            what()
        ));
    }
    let r = match kind {
        WorkloadKind::Deployment => {
            Api::<Deployment>::namespaced(client, ns)
                .patch_scale(name, &pp, &Patch::Merge(&patch))
                .await
        }
        _ => {
            Api::<StatefulSet>::namespaced(client, ns)
                .patch_scale(name, &pp, &Patch::Merge(&patch))
                .await
        }
    };
    r.map_err(|e| format!("{}: {e}", what()))?;
    Ok(format!(
        "{} {ns}/{name} scaled from {from} to {to}",
        kind.as_str()
    ))
}

/// A name for a manual Job: `<cronjob>-manual-<5 random chars>`, within 63 characters.
pub fn manual_job_name(cronjob: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let base: String = cronjob.chars().take(63 - "-manual-".len() - 5).collect();
    format!("{base}-manual-{suffix}")
}

/// The Job `kubectl create job --from=cronjob/NAME` creates: the CronJob's jobTemplate, owned
/// by the CronJob, annotated `cronjob.kubernetes.io/instantiate: manual`.
pub fn job_from_cronjob(cj: &CronJob, job_name: &str) -> Result<Job, String> {
    let cj_name = cj.metadata.name.clone().unwrap_or_default();
    let uid = cj
        .metadata
        .uid
        .clone()
        .ok_or_else(|| format!("CronJob {cj_name} has no uid"))?;
    let spec = &cj.spec;
    let template = &spec.job_template;
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name.to_string()),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj_name,
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(template.spec.clone().unwrap_or_default()),
        status: None,
    })
}

async fn trigger_job(client: kube::Client, ns: &str, cronjob: &str) -> Result<String, String> {
    let cj = Api::<CronJob>::namespaced(client.clone(), ns)
        .get(cronjob)
        .await
        .map_err(|e| format!("reading CronJob {ns}/{cronjob}: {e}"))?;
    let name = manual_job_name(cronjob);
    let job = job_from_cronjob(&cj, &name)?;
    Api::<Job>::namespaced(client, ns)
        .create(&PostParams::default(), &job)
        .await
        .map_err(|e| format!("creating Job {ns}/{name} from CronJob {cronjob}: {e}"))?;
    Ok(format!("Job {ns}/{name} created from CronJob {cronjob}"))
}

/// The exit code in an exec's final `Status`: 0 on Success, the `ExitCode` cause otherwise.
pub fn exit_code(status: Option<&Status>) -> i32 {
    let Some(s) = status else { return 1 };
    if s.status.as_deref() == Some("Success") {
        return 0;
    }
    s.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(1)
}

/// How long output may keep draining after the exec's connection ended.
const DRAIN: std::time::Duration = std::time::Duration::from_millis(500);

/// What a non-interactive exec printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

/// Runs `command` in a container, feeding it `stdin` (then closing it), and collects output.
pub async fn exec_capture(
    client: kube::Client,
    ns: &str,
    pod: &str,
    container: &str,
    command: &[&str],
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, String> {
    let what = || format!("exec {command:?} in {ns}/{pod} ({container})");
    let ap = AttachParams::default()
        .container(container)
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true);
    let mut proc = Api::<Pod>::namespaced(client, ns)
        .exec(pod, command.iter().copied(), &ap)
        .await
        .map_err(|e| format!("{}: {e}", what()))?;
    if let (Some(input), Some(mut w)) = (stdin, proc.stdin()) {
        w.write_all(input)
            .await
            .map_err(|e| format!("{}: writing stdin: {e}", what()))?;
        let _ = w.shutdown().await;
    }
    let status = proc.take_status();
    let mut out = proc.stdout();
    let mut err = proc.stderr();
    let (mut out_buf, mut err_buf) = (Vec::new(), Vec::new());
    {
        let reading = async {
            let o = async {
                if let Some(r) = out.as_mut() {
                    let _ = r.read_to_end(&mut out_buf).await;
                }
            };
            let e = async {
                if let Some(r) = err.as_mut() {
                    let _ = r.read_to_end(&mut err_buf).await;
                }
            };
            tokio::join!(o, e);
        };
        tokio::pin!(reading);
        // kube-rs ends the output streams when its message loop ends normally; when the loop
        // fails instead they stay open, so the loop's end also ends the reading.
        tokio::select! {
            () = &mut reading => {}
            _ = proc.join() => {
                let _ = tokio::time::timeout(DRAIN, &mut reading).await;
            }
        }
    }
    let status = match status {
        Some(s) => tokio::time::timeout(DRAIN, s).await.ok().flatten(),
        None => None,
    };
    let stdout = String::from_utf8_lossy(&out_buf).into_owned();
    let stderr = String::from_utf8_lossy(&err_buf).into_owned();
    Ok(ExecOutput {
        stdout,
        stderr,
        exit_code: exit_code(status.as_ref()),
    })
}

/// The terminal's size from the kernel (stdout's tty), if it has one.
fn terminal_size() -> Option<TerminalSize> {
    // SAFETY: TIOCGWINSZ fills a winsize; we pass a valid, zeroed one.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some(TerminalSize {
        width: ws.ws_col,
        height: ws.ws_row,
    })
}

/// Runs `command` in a container with a TTY wired to this process's stdin and stdout, and
/// returns its exit code. The caller suspends the TUI and puts the terminal in raw mode first.
///
/// Stdin is read on a thread that polls with a timeout, so it stops as soon as the command
/// ends instead of swallowing the next key the TUI should get.
pub async fn exec_interactive(
    client: kube::Client,
    ns: &str,
    pod: &str,
    container: &str,
    command: &[&str],
) -> Result<i32, String> {
    let what = || format!("exec {command:?} in {ns}/{pod} ({container})");
    let ap = AttachParams::interactive_tty().container(container);
    let mut proc = Api::<Pod>::namespaced(client, ns)
        .exec(pod, command.iter().copied(), &ap)
        .await
        .map_err(|e| format!("{}: {e}", what()))?;
    if let (Some(mut sizes), Some(size)) = (proc.terminal_size(), terminal_size()) {
        use futures::SinkExt;
        let _ = sizes.send(size).await;
    }
    let status = proc.take_status();
    let stop = Arc::new(AtomicBool::new(false));
    let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || read_stdin_until(stop, in_tx))
    };
    let mut stdin = proc.stdin();
    let pump_in = async {
        while let Some(chunk) = in_rx.recv().await {
            match stdin.as_mut() {
                Some(w) => {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        // Our stdin ended: the container's ends too, and the process decides what to do.
        if let Some(w) = stdin.as_mut() {
            let _ = w.shutdown().await;
        }
        std::future::pending::<()>().await;
    };
    let mut stdout = proc.stdout();
    let pump_out = async {
        let Some(r) = stdout.as_mut() else { return };
        let mut buf = vec![0u8; 8192];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::pin!(pump_out);
    tokio::select! {
        // Output ends when the process does.
        () = &mut pump_out => {}
        // The connection ended without closing the output (see `exec_capture`).
        _ = proc.join() => {
            let _ = tokio::time::timeout(DRAIN, &mut pump_out).await;
        }
        () = pump_in => {}
    }
    stop.store(true, Ordering::SeqCst);
    let _ = reader.join();
    let status = match status {
        Some(s) => tokio::time::timeout(DRAIN, s).await.ok().flatten(),
        None => None,
    };
    Ok(exit_code(status.as_ref()))
}

fn read_stdin_until(stop: Arc<AtomicBool>, tx: tokio::sync::mpsc::Sender<Vec<u8>>) {
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, 100 ms timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, 100) };
        if rc <= 0 {
            continue;
        }
        // SAFETY: reading into a valid buffer of its length.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 || tx.blocking_send(buf[..n as usize].to_vec()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart() -> QuickAction {
        QuickAction {
            kind: QuickActionKind::Restart {
                kind: WorkloadKind::Deployment,
                ns: "goapps-production".into(),
                name: "iam-service".into(),
            },
            cluster: "production".into(),
        }
    }

    #[test]
    fn actions_name_their_audit_kind_and_target() {
        let a = restart();
        assert_eq!(a.audit_name(), "workload.restart");
        assert_eq!(
            a.target(),
            "production/goapps-production/deployment/iam-service"
        );
        let d = QuickAction {
            kind: QuickActionKind::DeletePod {
                ns: "goapps-production".into(),
                name: "iam-1".into(),
            },
            cluster: "production".into(),
        };
        assert_eq!(d.target(), "production/goapps-production/pod/iam-1");
        assert_eq!(d.audit_name(), "pod.delete");
    }

    #[test]
    fn scale_describes_both_counts() {
        let a = QuickAction {
            kind: QuickActionKind::Scale {
                kind: WorkloadKind::Deployment,
                ns: "n".into(),
                name: "w".into(),
                from: 2,
                to: 5,
            },
            cluster: "staging".into(),
        };
        assert!(a.describe().contains("from 2 to 5"), "{}", a.describe());
        assert_eq!(a.audit_name(), "workload.scale");
    }

    #[test]
    fn protected_clusters_need_the_typed_name() {
        let a = restart();
        assert!(a.needs_typed_confirmation(true));
        assert!(!a.needs_typed_confirmation(false));
        assert_eq!(a.confirmation_word(), "production");
    }

    #[test]
    fn confirm_refuses_read_only_and_wants_the_typed_name_on_protected_clusters() {
        let a = restart();
        assert!(
            confirm(&a, false, true, None)
                .unwrap_err()
                .contains("read-only")
        );
        assert_eq!(confirm(&a, false, false, None), Ok("key"));
        assert!(
            confirm(&a, true, false, None)
                .unwrap_err()
                .contains("type production")
        );
        assert!(confirm(&a, true, false, Some("prod")).is_err());
        assert_eq!(confirm(&a, true, false, Some(" production ")), Ok("typed"));
    }

    #[test]
    fn records_carry_action_target_and_confirmation() {
        let r = start_record(&restart(), &Actor::default(), "typed");
        assert_eq!(r.event, "action_started");
        assert_eq!(r.action.as_deref(), Some("workload.restart"));
        assert_eq!(r.target, Some(restart().target()));
        assert_eq!(r.confirmation.as_deref(), Some("typed"));
        assert!(r.action_id.is_some());
        assert_eq!(outcome(&Err("boom".into())), "boom");
        assert_eq!(outcome(&Ok("x".into())), "ok");
    }

    #[test]
    fn manual_job_names_fit_the_limit() {
        let n = manual_job_name(&"x".repeat(80));
        assert!(n.len() <= 63, "{n}");
        assert!(
            manual_job_name("postgres-backup-morning")
                .starts_with("postgres-backup-morning-manual-")
        );
    }

    #[test]
    fn exit_codes_come_from_the_status_causes() {
        let s: Status =
            serde_json::from_value(json!({"status": "Failure", "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}))
            .unwrap();
        assert_eq!(exit_code(Some(&s)), 3);
        let ok: Status = serde_json::from_value(json!({"status": "Success"})).unwrap();
        assert_eq!(exit_code(Some(&ok)), 0);
        assert_eq!(exit_code(None), 1);
    }
}
