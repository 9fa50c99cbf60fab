//! Internal forwards: how a data source reaches an endpoint configured as
//! `service = "namespace/name:port"`. The first caller for a given cluster and service starts
//! a forward on `127.0.0.1:0`; later callers share it. They are process-wide (every source
//! task of the process shares one per service), self-healing like the shortcuts, and listed
//! in the snapshot's `internal` section. Starting one is not an audited action.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::ForwardStatus;
use super::tunnel::Tunnel;
use crate::config::{ClusterConfig, ForwardTarget, PortRef, TargetKind};

/// One internal forward, keyed by where its cluster lives and the endpoint.
type Key = (String, Option<std::path::PathBuf>, Option<String>, String);

struct Entry {
    cluster: String,
    endpoint: String,
    target: String,
    /// Held across the (async) start so concurrent callers share one forward.
    tunnel: Arc<tokio::sync::Mutex<Option<Tunnel>>>,
    /// Readable without the async lock, for snapshots.
    live: Arc<Mutex<Option<Arc<super::tunnel::TunnelShared>>>>,
}

static INTERNAL: LazyLock<Mutex<HashMap<Key, Arc<Entry>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static CHANGED: LazyLock<Arc<Notify>> = LazyLock::new(|| Arc::new(Notify::new()));

/// Notified whenever an internal forward starts or changes state.
pub(crate) fn changed() -> Arc<Notify> {
    CHANGED.clone()
}

fn registry() -> std::sync::MutexGuard<'static, HashMap<Key, Arc<Entry>>> {
    INTERNAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The local address of a (shared, self-healing) forward to the Service `namespace/name` on
/// `port` (a number or a port name) in `cluster`, starting it on first use. Connect to it
/// with plain TCP; each connection gets its own stream to a Ready pod behind the Service.
///
/// The error is a sentence for the feature's `stale` reason (forbidden, no ready pod,
/// cluster unreachable, ...).
pub async fn local_addr_for_service(
    cluster: &ClusterConfig,
    namespace: &str,
    name: &str,
    port: &PortRef,
) -> Result<SocketAddr, String> {
    let endpoint = format!("{namespace}/{name}:{port}");
    let key: Key = (
        cluster.name.clone(),
        cluster.kubeconfig.clone(),
        cluster.context.clone(),
        endpoint.clone(),
    );
    let target = ForwardTarget {
        namespace: namespace.to_string(),
        kind: TargetKind::Service,
        name: name.to_string(),
        port: port.clone(),
    };
    let entry = registry()
        .entry(key)
        .or_insert_with(|| {
            Arc::new(Entry {
                cluster: cluster.name.clone(),
                endpoint: endpoint.clone(),
                target: target.to_string(),
                tunnel: Arc::new(tokio::sync::Mutex::new(None)),
                live: Arc::new(Mutex::new(None)),
            })
        })
        .clone();
    let mut slot = entry.tunnel.lock().await;
    if let Some(t) = slot.as_ref()
        && t.is_alive()
    {
        return Ok(t.local());
    }
    let id = format!("{}/{endpoint} (internal)", cluster.name);
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
    match Tunnel::start(&id, cluster, &target, addr, CHANGED.clone()).await {
        Ok(t) => {
            let local = t.local();
            *entry.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.shared.clone());
            *slot = Some(t);
            CHANGED.notify_one();
            Ok(local)
        }
        Err(e) => {
            *entry.live.lock().unwrap_or_else(|e| e.into_inner()) = None;
            *slot = None;
            Err(format!("service {endpoint} through a port-forward: {e}"))
        }
    }
}

/// A TCP connection to the Service `namespace/name:port` of `cluster` through its internal
/// forward: the one connect step for `Endpoint::Service`.
pub async fn connect_service(
    cluster: &ClusterConfig,
    namespace: &str,
    name: &str,
    port: &PortRef,
) -> Result<TcpStream, String> {
    let addr = local_addr_for_service(cluster, namespace, name, port).await?;
    TcpStream::connect(addr).await.map_err(|e| {
        format!("service {namespace}/{name}:{port} through the port-forward at {addr}: {e}")
    })
}

/// Every internal forward that is running, for the snapshot.
pub(crate) fn statuses() -> Vec<ForwardStatus> {
    let entries: Vec<Arc<Entry>> = registry().values().cloned().collect();
    let mut out: Vec<ForwardStatus> = entries
        .iter()
        .filter_map(|e| {
            let live = e.live.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
            let r = live.reading();
            Some(ForwardStatus {
                cluster: e.cluster.clone(),
                name: e.endpoint.clone(),
                target: e.target.clone(),
                scheme: None,
                key: None,
                local: Some(live.local),
                state: r.state,
                pod: r.pod,
                pod_port: r.pod_port,
                open_connections: r.open,
                connections_total: r.total,
                bytes_in: r.bytes_in,
                bytes_out: r.bytes_out,
                started_at: Some(live.started_at),
                last_error: r.last_error,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.cluster, &a.name).cmp(&(&b.cluster, &b.name)));
    out
}

/// Stops every internal forward (on quit).
pub async fn stop_internal() {
    stop_matching(|_| true).await;
}

/// Stops the internal forwards into these clusters (same name, kubeconfig and context).
pub async fn stop_internal_for(clusters: &[ClusterConfig]) {
    stop_matching(|k: &Key| {
        clusters
            .iter()
            .any(|c| c.name == k.0 && c.kubeconfig == k.1 && c.context == k.2)
    })
    .await;
}

async fn stop_matching(pick: impl Fn(&Key) -> bool) {
    let entries: Vec<Arc<Entry>> = {
        let mut reg = registry();
        let keys: Vec<Key> = reg.keys().filter(|k| pick(k)).cloned().collect();
        keys.iter().filter_map(|k| reg.remove(k)).collect()
    };
    for e in entries {
        *e.live.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(t) = e.tunnel.lock().await.take() {
            t.stop().await;
        }
    }
}
