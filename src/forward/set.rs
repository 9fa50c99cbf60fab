//! [`Forwards`]: the configured shortcuts, started and stopped by `CLUSTER/NAME`, each start
//! and stop recorded in the audit log (its start record on disk before it acts, or it is
//! refused), the whole state published as snapshots.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::tunnel::Tunnel;
use super::{ForwardError, ForwardSnapshot, ForwardState, ForwardStatus, internal};
use crate::config::{ClusterConfig, Config, ForwardConfig};
use crate::runbook::audit::{Actor, AuditLog, Pending, Record};

/// How a forward start or stop was asked for, as its record's `confirmation` says it (the
/// console's key is `key`).
const BY_COMMAND_LINE: &str = "command-line";
const BY_AUTOSTART: &str = "autostart";
const BY_QUIT: &str = "quit";

/// How often byte counters are republished while anything runs.
const COUNTER_TICK: Duration = Duration::from_secs(1);

enum Slot {
    Running(Tunnel),
    Failed(String),
}

struct Inner {
    clusters: Vec<ClusterConfig>,
    shortcuts: Vec<ForwardConfig>,
    audit: Option<AuditLog>,
    actor: Actor,
    slots: Mutex<HashMap<String, Slot>>,
    /// Serialises start/stop of the same shortcut (a slow cluster does not hold up others).
    busy: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    changed: Arc<Notify>,
    tx: watch::Sender<Arc<ForwardSnapshot>>,
    publisher: Mutex<Option<JoinHandle<()>>>,
}

/// The port-forward shortcuts of one config. Cheap to clone (shared).
///
/// Create it inside a tokio runtime (it spawns its snapshot publisher); call
/// [`Forwards::shutdown`] on quit so every forward closes and its stop is recorded.
#[derive(Clone)]
pub struct Forwards {
    inner: Arc<Inner>,
}

impl Forwards {
    /// Shortcuts from `config.forwards`; starts and stops are recorded in `config.audit_log`.
    pub fn new(config: &Config) -> Forwards {
        Self::with_audit(config, Some(AuditLog::new(config.audit_log.clone())))
    }

    /// As [`Forwards::new`] with an explicit audit log (None: record nothing).
    pub fn with_audit(config: &Config, audit: Option<AuditLog>) -> Forwards {
        let (tx, _) = watch::channel(Arc::new(ForwardSnapshot::default()));
        let inner = Arc::new(Inner {
            clusters: config.clusters.clone(),
            shortcuts: config.forwards.clone(),
            audit,
            actor: Actor::current(),
            slots: Mutex::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            changed: Arc::new(Notify::new()),
            tx,
            publisher: Mutex::new(None),
        });
        let snap = build_snapshot(&inner);
        inner.tx.send_replace(Arc::new(snap));
        let task = tokio::spawn(publish(Arc::downgrade(&inner)));
        *inner.publisher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Forwards { inner }
    }

    /// The configured shortcuts, in config order.
    pub fn shortcuts(&self) -> &[ForwardConfig] {
        &self.inner.shortcuts
    }

    /// Receives every new snapshot (see the module docs).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ForwardSnapshot>> {
        self.inner.tx.subscribe()
    }

    /// The state right now.
    pub fn snapshot(&self) -> ForwardSnapshot {
        build_snapshot(&self.inner)
    }

    fn find(&self, id: &str) -> Result<(&ForwardConfig, &ClusterConfig), ForwardError> {
        let unknown = || ForwardError::Unknown {
            id: id.to_string(),
            known: {
                let ids: Vec<String> = self
                    .inner
                    .shortcuts
                    .iter()
                    .map(|f| format!("{}/{}", f.cluster, f.name))
                    .collect();
                if ids.is_empty() {
                    "none ([[forward]] in the config)".into()
                } else {
                    ids.join(", ")
                }
            },
        };
        let (cluster, name) = id.split_once('/').ok_or_else(unknown)?;
        let f = self
            .inner
            .shortcuts
            .iter()
            .find(|f| f.cluster == cluster && f.name == name)
            .ok_or_else(unknown)?;
        let c = self
            .inner
            .clusters
            .iter()
            .find(|c| c.name == f.cluster)
            .ok_or_else(unknown)?;
        Ok((f, c))
    }

    /// Starts `CLUSTER/NAME` and returns its local address once it listens and the cluster
    /// accepted a port-forward to its pod. Starting a running forward returns its address.
    /// Recorded with `confirmation: "command-line"`; see [`Forwards::start_confirmed`].
    pub async fn start(&self, id: &str) -> Result<SocketAddr, ForwardError> {
        self.start_confirmed(id, BY_COMMAND_LINE).await
    }

    /// As [`Forwards::start`], recorded with `confirmation` (`key`, `autostart`, ...). The
    /// start record is written before anything is opened; if it cannot be, the forward is
    /// refused ([`ForwardError::Unrecorded`]).
    pub async fn start_confirmed(
        &self,
        id: &str,
        confirmation: &str,
    ) -> Result<SocketAddr, ForwardError> {
        let (f, c) = self.find(id)?;
        let busy = self.busy(id);
        let _busy = busy.lock().await;
        if let Some(Slot::Running(t)) = self.slots().get(id)
            && t.is_alive()
        {
            return Ok(t.local());
        }
        let pending = match self.begin(c, f, "forward.start", confirmation).await {
            Ok(p) => p,
            Err(e) => {
                self.slots()
                    .insert(id.to_string(), Slot::Failed(e.to_string()));
                self.inner.changed.notify_one();
                return Err(e);
            }
        };
        let addr = SocketAddr::new(f.bind, f.local_port);
        let result = Tunnel::start(id, c, &f.target, addr, self.inner.changed.clone()).await;
        let (slot, out, outcome) = match result {
            Ok(t) => {
                let local = t.local();
                (Slot::Running(t), Ok(local), "ok".to_string())
            }
            Err(e) => (Slot::Failed(e.to_string()), Err(e.clone()), e.to_string()),
        };
        if let Some(Slot::Running(old)) = self.slots().insert(id.to_string(), slot) {
            // A dead tunnel being replaced: make sure its tasks are gone.
            drop(old);
        }
        self.inner.changed.notify_one();
        self.finish(pending, outcome).await;
        out
    }

    /// Stops `CLUSTER/NAME`, closing its listener and connections. Stopping a stopped
    /// forward is not an error (and records nothing). Recorded with
    /// `confirmation: "command-line"`; see [`Forwards::stop_confirmed`].
    pub async fn stop(&self, id: &str) -> Result<(), ForwardError> {
        self.stop_confirmed(id, BY_COMMAND_LINE).await
    }

    /// As [`Forwards::stop`], recorded with `confirmation`. Refused, the forward left
    /// running, when its start record cannot be written — except when opsdeck quits
    /// (`quit`): the forward closes with the process anyway.
    pub async fn stop_confirmed(&self, id: &str, confirmation: &str) -> Result<(), ForwardError> {
        let (f, c) = self.find(id)?;
        let busy = self.busy(id);
        let _busy = busy.lock().await;
        if !matches!(self.slots().get(id), Some(Slot::Running(_))) {
            self.slots().remove(id);
            self.inner.changed.notify_one();
            return Ok(());
        }
        let pending = match self.begin(c, f, "forward.stop", confirmation).await {
            Ok(p) => p,
            Err(e) if confirmation != BY_QUIT => return Err(e),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        let slot = self.slots().remove(id);
        self.inner.changed.notify_one();
        if let Some(Slot::Running(t)) = slot {
            t.stop().await;
            self.inner.changed.notify_one();
        }
        self.finish(pending, "ok".into()).await;
        Ok(())
    }

    /// Starts a stopped (or failed) forward, stops a running one. `Some(addr)` when it was
    /// started. Recorded with `confirmation: "command-line"`.
    pub async fn toggle(&self, id: &str) -> Result<Option<SocketAddr>, ForwardError> {
        self.toggle_confirmed(id, BY_COMMAND_LINE).await
    }

    /// As [`Forwards::toggle`], recorded with `confirmation` (the console: `key`).
    pub async fn toggle_confirmed(
        &self,
        id: &str,
        confirmation: &str,
    ) -> Result<Option<SocketAddr>, ForwardError> {
        let running = matches!(self.slots().get(id), Some(Slot::Running(_)));
        if running {
            self.stop_confirmed(id, confirmation).await.map(|()| None)
        } else {
            self.start_confirmed(id, confirmation).await.map(Some)
        }
    }

    /// Starts every shortcut marked `autostart`; the result per `CLUSTER/NAME`.
    pub async fn start_autostart(&self) -> Vec<(String, Result<SocketAddr, ForwardError>)> {
        let ids: Vec<String> = self
            .inner
            .shortcuts
            .iter()
            .filter(|f| f.autostart)
            .map(|f| format!("{}/{}", f.cluster, f.name))
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let r = self.start_confirmed(&id, BY_AUTOSTART).await;
            out.push((id, r));
        }
        out
    }

    /// Stops every shortcut (recording each stop) and the internal forwards into this config's
    /// clusters, and stops publishing.
    pub async fn shutdown(&self) {
        let running: Vec<String> = self
            .slots()
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Running(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for id in running {
            let _ = self.stop_confirmed(&id, BY_QUIT).await;
        }
        internal::stop_internal_for(&self.inner.clusters).await;
        self.inner
            .tx
            .send_replace(Arc::new(build_snapshot(&self.inner)));
        if let Some(t) = self
            .inner
            .publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
    }

    fn busy(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.inner.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the start record of `action` on shortcut `f`. `Ok(None)`: this set records
    /// nothing (no audit log).
    async fn begin(
        &self,
        c: &ClusterConfig,
        f: &ForwardConfig,
        action: &str,
        confirmation: &str,
    ) -> Result<Option<Pending>, ForwardError> {
        let Some(audit) = self.inner.audit.clone() else {
            return Ok(None);
        };
        let id = format!("{}/{}", f.cluster, f.name);
        let mut start = Record::action_started(
            action,
            &format!("{}/forward/{}", f.cluster, f.name),
            &c.name,
            c.context.as_deref().unwrap_or_default(),
            confirmation,
        );
        start.actor = self.inner.actor.clone();
        start.command = Some(format!(
            "port-forward {} -> {}:{}",
            f.target, f.bind, f.local_port
        ));
        audit
            .begin_async(start)
            .await
            .map(Some)
            .map_err(|e| ForwardError::Unrecorded {
                id,
                detail: e.to_string(),
            })
    }

    async fn finish(&self, pending: Option<Pending>, result: String) {
        let Some(pending) = pending else {
            return;
        };
        if let Err(e) = pending.finish_async(result).await {
            tracing::warn!("{e}");
        }
    }
}

fn build_snapshot(inner: &Inner) -> ForwardSnapshot {
    let slots = inner.slots.lock().unwrap_or_else(|e| e.into_inner());
    let shortcuts = inner
        .shortcuts
        .iter()
        .map(|f| {
            let id = format!("{}/{}", f.cluster, f.name);
            let mut s = ForwardStatus {
                cluster: f.cluster.clone(),
                name: f.name.clone(),
                target: f.target.to_string(),
                scheme: f.scheme,
                key: f.key.clone(),
                local: None,
                state: ForwardState::Stopped,
                pod: None,
                pod_port: None,
                open_connections: 0,
                connections_total: 0,
                bytes_in: 0,
                bytes_out: 0,
                started_at: None,
                last_error: None,
            };
            match slots.get(&id) {
                None => {}
                Some(Slot::Failed(why)) => s.state = ForwardState::Failed(why.clone()),
                Some(Slot::Running(t)) => t.fill(&mut s),
            }
            s
        })
        .collect();
    ForwardSnapshot {
        shortcuts,
        internal: internal::statuses(),
    }
}

/// Republishes on every change and, while anything runs, once a second for the counters;
/// `send_if_modified` keeps an idle console from waking up.
async fn publish(inner: std::sync::Weak<Inner>) {
    loop {
        let changed = match inner.upgrade() {
            Some(i) => i.changed.clone(),
            None => return,
        };
        let internal = internal::changed();
        tokio::select! {
            _ = changed.notified() => {}
            _ = internal.notified() => {}
            _ = tokio::time::sleep(COUNTER_TICK) => {}
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let snap = build_snapshot(&inner);
        inner.tx.send_if_modified(|cur| {
            if **cur == snap {
                false
            } else {
                *cur = Arc::new(snap);
                true
            }
        });
    }
}
