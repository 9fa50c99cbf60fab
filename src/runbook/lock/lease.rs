//! The run lock across machines: a `coordination.k8s.io/v1` Lease `opsdeck-runbook-lock` in the
//! cluster's `default` namespace (interfaces.md "Runbook runs"). Its holderIdentity is
//! `user@host`; it is renewed while the run is open and deleted at its end. One that nobody
//! renewed within its duration is taken over (the caller warns, naming the previous holder).
//! Every write carries the resourceVersion it was based on (a create fails with 409
//! AlreadyExists when someone raced us), so two takers can never both win.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use crate::config::ClusterConfig;

pub const NAME: &str = "opsdeck-runbook-lock";
pub const NAMESPACE: &str = "default";
/// How long a Lease nobody renews keeps others out.
pub const DURATION_S: i32 = 60;
/// How often the holder renews it (a third of its duration: two renewals may fail).
pub const RENEW_EVERY: Duration = Duration::from_secs(20);
/// Each call to the API; a dead API must not hang a run that then asks to go on without it.
pub const API_TIMEOUT: Duration = Duration::from_secs(5);

const RUNBOOK_ANNOTATION: &str = "opsdeck.io/runbook";
const PID_ANNOTATION: &str = "opsdeck.io/pid";

/// Who wants the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `user@host`.
    pub identity: String,
    pub runbook: String,
    pub pid: u32,
}

/// Who holds the Lease, as it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// holderIdentity: `user@host` for opsdeck.
    pub identity: String,
    /// acquireTime, RFC 3339 (or "unknown").
    pub since: String,
    /// renewTime, RFC 3339.
    pub renewed: Option<String>,
    pub runbook: Option<String>,
}

impl std::fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.identity)?;
        if let Some(r) = &self.runbook {
            write!(f, " runs {r}")?;
        }
        write!(f, " since {}", self.since)?;
        write!(f, " (Lease {NAMESPACE}/{NAME} in the cluster")?;
        if let Some(r) = &self.renewed {
            write!(f, ", renewed {r}")?;
        }
        write!(f, ")")
    }
}

/// What taking the Lease came to.
#[derive(Debug)]
pub enum LeaseOutcome {
    /// Ours, renewed until released ([`LeaseGuard::took_over`] names an expired holder it
    /// replaced).
    Acquired(Box<LeaseGuard>),
    /// A live Lease of someone else.
    Held(LeaseHolder),
    /// The API did not answer, or refused Leases: the cross-machine lock cannot be taken
    /// (the node-failure case). The run may go on with the local lock only after the
    /// engineer typed a confirmation.
    Unreachable(String),
    /// This machine has no way to address the cluster's API at all (no kubeconfig, no such
    /// context): there is no place for a Lease.
    NoApi(String),
}

/// What to do about the Lease as it stands (pure: decided without I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Create,
    /// Replace it: free, expired, or left by a dead run of ours on this machine. `previous`
    /// names the holder to warn about.
    TakeOver {
        previous: Option<LeaseHolder>,
    },
    Held(LeaseHolder),
}

fn micro(t: &Option<MicroTime>) -> Option<Timestamp> {
    t.as_ref().map(|m| m.0)
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The holder a Lease names, if any.
pub fn holder_of(lease: &Lease) -> Option<LeaseHolder> {
    let spec = lease.spec.as_ref()?;
    let identity = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    let annotations = lease.metadata.annotations.as_ref();
    Some(LeaseHolder {
        identity,
        since: micro(&spec.acquire_time)
            .map(rfc3339)
            .unwrap_or_else(|| "unknown".into()),
        renewed: micro(&spec.renew_time).map(rfc3339),
        runbook: annotations.and_then(|a| a.get(RUNBOOK_ANNOTATION)).cloned(),
    })
}

/// Whether a Lease's holder let it lapse: renewTime (else acquireTime) + its duration is past.
pub fn expired(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let Some(last) = micro(&spec.renew_time).or(micro(&spec.acquire_time)) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(DURATION_S).max(0));
    last.as_second().saturating_add(duration) < now.as_second()
}

/// What to do about `existing`. `alive(pid)` says whether a process of this machine lives.
pub fn decide(
    existing: Option<&Lease>,
    me: &Claim,
    now: Timestamp,
    alive: &dyn Fn(u32) -> bool,
) -> Decision {
    let Some(lease) = existing else {
        return Decision::Create;
    };
    let Some(holder) = holder_of(lease) else {
        return Decision::TakeOver { previous: None };
    };
    if expired(lease, now) {
        return Decision::TakeOver {
            previous: Some(holder),
        };
    }
    // Our own identity with a pid that no longer runs here: a run of ours that was killed.
    let dead_own_run = holder.identity == me.identity
        && lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PID_ANNOTATION))
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| pid != me.pid && !alive(pid));
    if dead_own_run {
        return Decision::TakeOver {
            previous: Some(holder),
        };
    }
    Decision::Held(holder)
}

/// Whether a process of this machine lives.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The Lease as we hold it, based on `previous` (its resourceVersion makes the write
/// conditional).
fn ours(me: &Claim, now: Timestamp, previous: Option<&Lease>) -> Lease {
    let previous_holder = previous.and_then(holder_of);
    let transitions = previous
        .and_then(|l| l.spec.as_ref()?.lease_transitions)
        .unwrap_or(0);
    let transitions = match previous_holder {
        Some(h) if h.identity != me.identity => transitions.saturating_add(1),
        _ => transitions,
    };
    let mut metadata = ObjectMeta {
        name: Some(NAME.into()),
        namespace: Some(NAMESPACE.into()),
        ..Default::default()
    };
    if let Some(p) = previous {
        metadata.resource_version = p.metadata.resource_version.clone();
        metadata.labels = p.metadata.labels.clone();
    }
    metadata.annotations = Some(
        [
            (RUNBOOK_ANNOTATION.to_string(), me.runbook.clone()),
            (PID_ANNOTATION.to_string(), me.pid.to_string()),
        ]
        .into_iter()
        .collect(),
    );
    Lease {
        metadata,
        spec: Some(LeaseSpec {
            holder_identity: Some(me.identity.clone()),
            lease_duration_seconds: Some(DURATION_S),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    }
}

/// How a call to the API failed.
#[derive(Debug)]
enum Failed {
    NotFound,
    /// 409: AlreadyExists on create, Conflict on a stale resourceVersion.
    Conflict,
    Unreachable(String),
}

async fn call<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Failed> {
    match tokio::time::timeout(API_TIMEOUT, fut).await {
        Err(_) => Err(Failed::Unreachable(format!(
            "{what}: no answer within {}s",
            API_TIMEOUT.as_secs()
        ))),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Err(Failed::NotFound),
        Ok(Err(kube::Error::Api(s))) if s.code == 409 => Err(Failed::Conflict),
        Ok(Err(kube::Error::Api(s))) => Err(Failed::Unreachable(format!(
            "{what}: the API answered {} ({}): {}",
            s.code, s.reason, s.message
        ))),
        Ok(Err(e)) => Err(Failed::Unreachable(format!("{what}: {e}"))),
    }
}

async fn get(api: &Api<Lease>) -> Result<Option<Lease>, Failed> {
    match call("reading the Lease", api.get(NAME)).await {
        Ok(l) => Ok(Some(l)),
        Err(Failed::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the Lease of the cluster `cluster` through its configured kubeconfig and context.
pub async fn acquire(cluster: &ClusterConfig, me: &Claim) -> LeaseOutcome {
    let client =
        match tokio::time::timeout(API_TIMEOUT, crate::sources::kube::client_for(cluster)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return LeaseOutcome::NoApi(e),
            Err(_) => {
                return LeaseOutcome::Unreachable(format!(
                    "building the Kubernetes client took over {}s",
                    API_TIMEOUT.as_secs()
                ));
            }
        };
    acquire_on(Api::namespaced(client, NAMESPACE), me, RENEW_EVERY).await
}

/// Takes the Lease through `api` (namespaced to `default`), renewing it every `renew_every`.
pub async fn acquire_on(api: Api<Lease>, me: &Claim, renew_every: Duration) -> LeaseOutcome {
    let mut last_seen = None;
    for _ in 0..4 {
        let existing = match get(&api).await {
            Ok(l) => l,
            Err(Failed::Unreachable(r)) => return LeaseOutcome::Unreachable(r),
            Err(_) => continue,
        };
        let now = Timestamp::now();
        let written = match decide(existing.as_ref(), me, now, &process_alive) {
            Decision::Held(h) => return LeaseOutcome::Held(h),
            Decision::Create => call(
                "creating the Lease",
                api.create(&PostParams::default(), &ours(me, now, None)),
            )
            .await
            .map(|l| (l, None)),
            Decision::TakeOver { previous } => call(
                "taking over the Lease",
                api.replace(
                    NAME,
                    &PostParams::default(),
                    &ours(me, now, existing.as_ref()),
                ),
            )
            .await
            .map(|l| (l, previous)),
        };
        match written {
            Ok((lease, took_over)) => {
                return LeaseOutcome::Acquired(Box::new(LeaseGuard::start(
                    api,
                    lease,
                    took_over,
                    renew_every,
                )));
            }
            Err(Failed::Unreachable(r)) => return LeaseOutcome::Unreachable(r),
            // Someone wrote it between our read and our write: look again.
            Err(Failed::Conflict | Failed::NotFound) => last_seen = existing,
        }
    }
    LeaseOutcome::Held(
        last_seen
            .as_ref()
            .and_then(holder_of)
            .unwrap_or(LeaseHolder {
                identity:
                    "another opsdeck (the Lease kept changing while this one tried to take it)"
                        .into(),
                since: "just now".into(),
                renewed: None,
                runbook: None,
            }),
    )
}

/// The Lease while we hold it: renewed in the background; deleted by [`LeaseGuard::release`]
/// (or, less surely, on drop).
#[derive(Debug)]
pub struct LeaseGuard {
    api: Api<Lease>,
    /// The version we last wrote.
    current: Arc<tokio::sync::Mutex<Lease>>,
    lost: Arc<Mutex<Option<String>>>,
    renewer: Option<tokio::task::JoinHandle<()>>,
    took_over: Option<LeaseHolder>,
}

impl LeaseGuard {
    fn start(
        api: Api<Lease>,
        lease: Lease,
        took_over: Option<LeaseHolder>,
        every: Duration,
    ) -> LeaseGuard {
        let current = Arc::new(tokio::sync::Mutex::new(lease));
        let lost = Arc::new(Mutex::new(None));
        let renewer = tokio::spawn(renew(api.clone(), current.clone(), lost.clone(), every));
        LeaseGuard {
            api,
            current,
            lost,
            renewer: Some(renewer),
            took_over,
        }
    }

    /// The expired holder this run took the Lease over from.
    pub fn took_over(&self) -> Option<&LeaseHolder> {
        self.took_over.as_ref()
    }

    /// Why the Lease is no longer ours, when someone took or deleted it during the run.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops renewing and deletes the Lease, unless someone else holds it by now.
    pub async fn release(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
            let _ = r.await;
        }
        delete_ours(self.api.clone(), self.current.clone()).await;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        // Not released explicitly: stop renewing and delete it in the background, if the
        // runtime lives on (else it expires after DURATION_S).
        let Some(r) = self.renewer.take() else { return };
        r.abort();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(delete_ours(self.api.clone(), self.current.clone()));
        }
    }
}

async fn renew(
    api: Api<Lease>,
    current: Arc<tokio::sync::Mutex<Lease>>,
    lost: Arc<Mutex<Option<String>>>,
    every: Duration,
) {
    let lose = |why: String| {
        tracing::warn!("runbook lock: {why}");
        *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    };
    loop {
        tokio::time::sleep(every).await;
        let mut cur = current.lock().await;
        let mut next = cur.clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match call(
            "renewing the Lease",
            api.replace(NAME, &PostParams::default(), &next),
        )
        .await
        {
            Ok(l) => *cur = l,
            Err(Failed::Unreachable(r)) => {
                tracing::warn!("runbook lock: {r}; trying again in {}s", every.as_secs())
            }
            Err(Failed::NotFound) => {
                lose(format!(
                    "the Lease {NAMESPACE}/{NAME} was deleted during the run"
                ));
                return;
            }
            Err(Failed::Conflict) => match get(&api).await {
                Ok(Some(fresh)) => {
                    let me = holder_of(&cur).map(|h| h.identity);
                    let them = holder_of(&fresh);
                    if them.as_ref().map(|h| &h.identity) == me.as_ref() {
                        // Still ours (a renewal whose answer we missed): go on from it.
                        *cur = fresh;
                    } else {
                        let who = them
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| "nobody".into());
                        lose(format!("the Lease was taken over by {who}"));
                        return;
                    }
                }
                Ok(None) => {
                    lose(format!(
                        "the Lease {NAMESPACE}/{NAME} was deleted during the run"
                    ));
                    return;
                }
                Err(_) => {}
            },
        }
    }
}

/// Deletes the Lease if it is still the version we wrote (or still names us).
async fn delete_ours(api: Api<Lease>, current: Arc<tokio::sync::Mutex<Lease>>) {
    let mut lease = current.lock().await.clone();
    let me = holder_of(&lease).map(|h| h.identity);
    for _ in 0..3 {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: lease.metadata.resource_version.clone(),
                uid: lease.metadata.uid.clone(),
            }),
            ..Default::default()
        };
        match call("deleting the Lease", api.delete(NAME, &params)).await {
            Ok(_) | Err(Failed::NotFound) => return,
            Err(Failed::Unreachable(r)) => {
                tracing::warn!("runbook lock: {r}; the Lease expires in {DURATION_S}s");
                return;
            }
            Err(Failed::Conflict) => match get(&api).await {
                Ok(Some(fresh)) if holder_of(&fresh).map(|h| h.identity) == me => lease = fresh,
                _ => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Claim {
        Claim {
            identity: "alice@vps".into(),
            runbook: "restore-postgres".into(),
            pid: 4242,
        }
    }

    fn lease(holder: &str, renewed_ago_s: i64, pid: u32) -> Lease {
        let now = Timestamp::now();
        let t = now - jiff::SignedDuration::from_secs(renewed_ago_s);
        let mut l = ours(
            &Claim {
                identity: holder.into(),
                runbook: "node-failure".into(),
                pid,
            },
            t,
            None,
        );
        l.metadata.resource_version = Some("7".into());
        l
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(
            decide(None, &me(), Timestamp::now(), &|_| true),
            Decision::Create
        );
    }

    #[test]
    fn a_live_lease_of_someone_else_is_held() {
        let l = lease("bob@laptop", 10, 1);
        match decide(Some(&l), &me(), Timestamp::now(), &|_| true) {
            Decision::Held(h) => {
                assert_eq!(h.identity, "bob@laptop");
                assert_eq!(h.runbook.as_deref(), Some("node-failure"));
                let shown = h.to_string();
                assert!(
                    shown.contains("bob@laptop runs node-failure since "),
                    "{shown}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_expired_lease_is_taken_over_naming_its_holder() {
        let l = lease("bob@laptop", i64::from(DURATION_S) + 5, 1);
        match decide(Some(&l), &me(), Timestamp::now(), &|_| true) {
            Decision::TakeOver { previous: Some(h) } => assert_eq!(h.identity, "bob@laptop"),
            other => panic!("{other:?}"),
        }
        let taken = ours(&me(), Timestamp::now(), Some(&l));
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(taken.spec.as_ref().unwrap().lease_transitions, Some(1));
    }

    #[test]
    fn our_own_lease_is_held_while_its_process_lives_and_taken_when_it_died() {
        let l = lease("alice@vps", 5, 99);
        assert!(matches!(
            decide(Some(&l), &me(), Timestamp::now(), &|_| true),
            Decision::Held(_)
        ));
        assert!(matches!(
            decide(Some(&l), &me(), Timestamp::now(), &|_| false),
            Decision::TakeOver { previous: Some(_) }
        ));
    }

    #[test]
    fn a_released_lease_without_holder_is_taken_silently() {
        let mut l = lease("bob@laptop", 5, 1);
        l.spec.as_mut().unwrap().holder_identity = None;
        assert_eq!(
            decide(Some(&l), &me(), Timestamp::now(), &|_| true),
            Decision::TakeOver { previous: None }
        );
    }
}
