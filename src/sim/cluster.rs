//! One simulated cluster: its store, its loopback server's lifecycle (kill, restart on the
//! same port, faults) and the typed pod API tests and churn use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::Fault;
use super::churn::ChurnState;
use super::seed::{self, Env};
use super::server;
use super::store::{self, Store};

/// Watch events retained per cluster; older resourceVersions get 410 Expired.
const HISTORY: usize = 20_000;

/// State shared by the server, churn and the `SimCluster` handle.
pub struct ClusterShared {
    pub env: Env,
    pub store: Store,
    fault: Mutex<Fault>,
    /// Bumped to end every open watch, log follow and stalled request.
    pub cut: watch::Sender<u64>,
    pub churn_on: AtomicBool,
    /// Whether the API server is serving (false once killed or refusing): a request that
    /// still arrives on a connection opened before is answered 503 with `Connection: close`,
    /// never served as if the server were up.
    pub up: AtomicBool,
    /// Stopped while churn is paused; the cluster's PgBouncer and Redis read it.
    pub clock: super::Clock,
    pub churn: Mutex<ChurnState>,
    /// `pods/portforward`: fault switches and the loopback servers behind pod ports.
    pub portforward: super::portforward::PortForwardState,
    /// The last requests served, `METHOD path?query`, oldest first (for tests that check
    /// what a client asks, e.g. that a source only watches).
    requests: Mutex<std::collections::VecDeque<String>>,
    /// The real PostgreSQL behind `postgres-0`'s exec, started on first use.
    pub realpg: super::exec::RealPgSlot,
}

/// Requests kept in `ClusterShared::requests`.
const REQUEST_LOG: usize = 1_000;

impl ClusterShared {
    /// Records one request in the bounded log.
    pub fn record_request(&self, line: String) {
        let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() >= REQUEST_LOG {
            log.pop_front();
        }
        log.push_back(line);
    }

    pub fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn cut_streams(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}

#[derive(Default)]
struct ServerSlot {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A simulated cluster and its API server.
pub struct SimCluster {
    shared: Arc<ClusterShared>,
    addr: SocketAddr,
    slot: Arc<Mutex<ServerSlot>>,
    churn_task: Mutex<Option<JoinHandle<()>>>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl SimCluster {
    pub(crate) async fn start(
        env: Env,
        min_pods: usize,
        churn: bool,
    ) -> anyhow::Result<SimCluster> {
        let store = Store::new(env.tag(), HISTORY);
        let seeded = seed::seed(env, &store, min_pods);
        super::networking::seed(env, &store);
        let (cut, _) = watch::channel(0);
        let shared = Arc::new(ClusterShared {
            env,
            churn: Mutex::new(ChurnState::new(&store, seeded)),
            store,
            fault: Mutex::new(Fault::None),
            cut,
            churn_on: AtomicBool::new(churn),
            up: AtomicBool::new(false),
            clock: super::Clock::new(churn),
            portforward: Default::default(),
            requests: Mutex::new(Default::default()),
            realpg: Default::default(),
        });
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let cluster = SimCluster {
            shared: shared.clone(),
            addr,
            slot: Arc::new(Mutex::new(ServerSlot::default())),
            churn_task: Mutex::new(None),
        };
        cluster.serve(listener);
        let task = tokio::spawn(super::churn::run(shared));
        *cluster.churn_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(cluster)
    }

    fn serve(&self, listener: TcpListener) {
        let (tx, rx) = oneshot::channel::<()>();
        let app = server::router(self.shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.shutdown = Some(tx);
        slot.task = Some(task);
        self.shared.up.store(true, Ordering::SeqCst);
    }

    /// Stops accepting (the listener closes at once) and ends open streams.
    fn stop_now(&self) -> Option<JoinHandle<()>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = slot.shutdown.take() {
            let _ = tx.send(());
        }
        // Down before the streams are cut: a stream starting after the cut sees it is down.
        self.shared.up.store(false, Ordering::SeqCst);
        self.shared.cut_streams();
        slot.task.take()
    }

    pub fn name(&self) -> &str {
        self.shared.env.name()
    }

    /// The requests served so far (the last 1,000), `METHOD path?query`, oldest first.
    pub fn requests(&self) -> Vec<String> {
        let log = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches a fault on (or off with `Fault::None`). `Refuse` closes the listener;
    /// leaving `Refuse` rebinds the same port.
    pub fn set_fault(&self, f: Fault) {
        let before = {
            let mut cur = self.shared.fault.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *cur, f)
        };
        match (before, f) {
            (_, Fault::Refuse) => {
                if let Some(task) = self.stop_now() {
                    task.abort();
                }
            }
            (Fault::Refuse, _) => {
                if let Err(e) = self.rebind() {
                    tracing::warn!("sim {}: cannot rebind {}: {e}", self.name(), self.addr);
                }
            }
            // Stalled requests and open watches end when the fault changes.
            (Fault::Stall, _) | (_, Fault::DropWatches) => self.shared.cut_streams(),
            _ => {}
        }
    }

    /// Stops serving: connections are refused until `restart`.
    pub async fn kill(&self) {
        if let Some(task) = self.stop_now() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn rebind(&self) -> anyhow::Result<()> {
        let running = self
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown
            .is_some();
        if running {
            return Ok(());
        }
        let listener = bind(self.addr).map_err(|e| {
            anyhow::anyhow!("rebinding {} for cluster {}: {e}", self.addr, self.name())
        })?;
        self.serve(listener);
        Ok(())
    }

    /// Serves again on the same port with the same state.
    pub async fn restart(&self) -> anyhow::Result<()> {
        {
            let mut f = self.shared.fault.lock().unwrap_or_else(|e| e.into_inner());
            if *f == Fault::Refuse {
                *f = Fault::None;
            }
        }
        let mut last = None;
        for _ in 0..50 {
            match self.rebind() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("cannot rebind {}", self.addr)))
    }

    /// Pauses or resumes the background churn.
    pub fn set_churn(&self, on: bool) {
        self.shared.churn_on.store(on, Ordering::SeqCst);
        self.shared.clock.set_running(on);
    }

    /// Runs one round of churn now: the crash-looping pod restarts once more, one pod of a
    /// Deployment is replaced, and a Pending pod appears and gets scheduled.
    pub fn churn_step(&self) {
        super::churn::step(&self.shared);
    }

    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// Adds or replaces a pod (ADDED or MODIFIED).
    pub fn upsert_pod(&self, pod: Pod) {
        match serde_json::to_value(&pod) {
            Ok(v) => {
                self.shared.store.put(&store::PODS, v);
            }
            Err(e) => tracing::warn!("sim: cannot serialize pod: {e}"),
        }
    }

    /// Changes a pod in place (MODIFIED). False if there is no such pod.
    pub fn modify_pod(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Pod)) -> bool {
        let Some(obj) = self.shared.store.get(&store::PODS, namespace, name) else {
            return false;
        };
        let Ok(mut pod) = serde_json::from_value::<Pod>((*obj).clone()) else {
            return false;
        };
        f(&mut pod);
        // Keep the identity: the pod stays where it was.
        pod.metadata.namespace = Some(namespace.to_string());
        pod.metadata.name = Some(name.to_string());
        self.upsert_pod(pod);
        true
    }

    /// Deletes a pod (DELETED). False if there is no such pod.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> bool {
        self.shared.store.delete(&store::PODS, namespace, name)
    }

    /// Every pod, in (namespace, name) order.
    pub fn pods(&self) -> Vec<Pod> {
        self.shared
            .store
            .list(&store::PODS, None)
            .1
            .iter()
            .filter_map(|v| serde_json::from_value::<Pod>((**v).clone()).ok())
            .collect()
    }

    /// Forgets the watch history: every resourceVersion handed out so far gets 410
    /// Expired. Open watches end, so clients notice at once (they reconnect from their
    /// last resourceVersion, get 410 and re-list).
    pub fn compact_history(&self) {
        self.shared.store.compact();
        self.shared.cut_streams();
    }

    /// The shared state, for endpoints added later (ArgoCD, PgBouncer, ...).
    pub fn shared(&self) -> &Arc<ClusterShared> {
        &self.shared
    }

    pub(crate) async fn shutdown(&self) {
        if let Some(t) = self
            .churn_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            t.abort();
        }
        self.kill().await;
    }
}
