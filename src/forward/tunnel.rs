//! One open forward: a local TCP listener whose every accepted connection gets its own
//! upstream stream (`Api::<Pod>::portforward` per connection, as kube-rs's bind example does),
//! plus a supervisor that notices when the pod goes away and re-resolves the target.
//!
//! Health is honest: after a stream fails or the pod disappears the forward shows
//! `reconnecting` with the reason until a usable pod is found again; it never shows
//! `listening`/`connected` on the strength of a pod it has not just checked.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::resolve::{self, Resolved};
use super::{ForwardError, ForwardState, ForwardStatus};
use crate::config::{ClusterConfig, ForwardTarget};

/// How often a healthy forward checks that its pod is still there.
const HEALTHY_CHECK: Duration = Duration::from_secs(5);
/// Longest wait between re-resolution attempts while reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The shortest interval between two pod checks.
const MIN_RECHECK: Duration = Duration::from_secs(1);
/// How long a finished connection's upstream gets to close before it is aborted.
const JOIN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Health {
    Ready(Resolved),
    Reconnecting(String),
}

/// What the listener, its connections and the supervisor share.
pub(crate) struct TunnelShared {
    cluster: String,
    target: ForwardTarget,
    client: Client,
    health: Mutex<Health>,
    pub(crate) local: SocketAddr,
    pub(crate) started_at: jiff::Timestamp,
    open: AtomicUsize,
    total: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    last_error: Mutex<Option<String>>,
    recheck: Notify,
    /// Pokes whoever publishes snapshots.
    changed: Arc<Notify>,
}

/// A point-in-time reading of a tunnel, for snapshots.
#[derive(Debug, Clone)]
pub(crate) struct TunnelReading {
    pub state: ForwardState,
    pub pod: Option<String>,
    pub pod_port: Option<u16>,
    pub open: usize,
    pub total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub last_error: Option<String>,
}

impl TunnelShared {
    fn current(&self) -> Option<Resolved> {
        match &*self.health.lock().unwrap_or_else(|e| e.into_inner()) {
            Health::Ready(r) => Some(r.clone()),
            Health::Reconnecting(_) => None,
        }
    }

    fn set_health(&self, h: Health) {
        let mut cur = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if *cur != h {
            match (&*cur, &h) {
                (_, Health::Reconnecting(why)) => tracing::info!(
                    "forward {}/{}: reconnecting: {why}",
                    self.cluster,
                    self.target
                ),
                (Health::Reconnecting(_), Health::Ready(r)) => tracing::info!(
                    "forward {}/{}: reconnected to pod {} port {}",
                    self.cluster,
                    self.target,
                    r.pod,
                    r.port
                ),
                (Health::Ready(old), Health::Ready(r)) => tracing::info!(
                    "forward {}/{}: now forwarding to pod {} port {} (was {})",
                    self.cluster,
                    self.target,
                    r.pod,
                    r.port,
                    old.pod
                ),
            }
            *cur = h;
            drop(cur);
            self.changed.notify_one();
        }
    }

    fn broken(&self, why: String) {
        self.set_health(Health::Reconnecting(why));
        self.recheck.notify_one();
    }

    pub(crate) fn reading(&self) -> TunnelReading {
        let health = self
            .health
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let open = self.open.load(Ordering::Relaxed);
        let (state, pod, pod_port) = match health {
            Health::Ready(r) if open > 0 => (ForwardState::Connected, Some(r.pod), Some(r.port)),
            Health::Ready(r) => (ForwardState::Listening, Some(r.pod), Some(r.port)),
            Health::Reconnecting(why) => (ForwardState::Reconnecting(why), None, None),
        };
        TunnelReading {
            state,
            pod,
            pod_port,
            open,
            total: self.total.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A running forward. Stop it with [`Tunnel::stop`]; dropping it cancels its tasks too.
pub(crate) struct Tunnel {
    pub(crate) shared: Arc<TunnelShared>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Binds `bind:port`; a port in use is reported with the next free one.
pub(crate) async fn bind_local(id: &str, addr: SocketAddr) -> Result<TcpListener, ForwardError> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let mut free = None;
            for p in (addr.port().saturating_add(1)..=u16::MAX).take(100) {
                if std::net::TcpListener::bind(SocketAddr::new(addr.ip(), p)).is_ok() {
                    free = Some(p);
                    break;
                }
            }
            Err(ForwardError::LocalPortInUse {
                id: id.to_string(),
                addr,
                free,
            })
        }
        Err(e) => Err(ForwardError::Listen {
            addr,
            detail: e.to_string(),
        }),
    }
}

impl Tunnel {
    /// Listens on `addr`, resolves the target, checks that the API server lets us open a
    /// port-forward to it (RBAC, pod present), then serves until stopped.
    ///
    /// The check opens one upstream stream and closes it at once; the pod sees a connection
    /// that sends nothing. That is the price of saying "forbidden" now instead of at the
    /// first real connection.
    pub(crate) async fn start(
        id: &str,
        cluster: &ClusterConfig,
        target: &ForwardTarget,
        addr: SocketAddr,
        changed: Arc<Notify>,
    ) -> Result<Tunnel, ForwardError> {
        let listener = bind_local(id, addr).await?;
        let local = listener.local_addr().map_err(|e| ForwardError::Listen {
            addr,
            detail: e.to_string(),
        })?;
        let client = crate::sources::kube::client_for(cluster)
            .await
            .map_err(|detail| ForwardError::Kubeconfig {
                cluster: cluster.name.clone(),
                detail,
            })?;
        let resolved = resolve::resolve(&client, &cluster.name, target).await?;
        probe(&client, &cluster.name, target, &resolved).await?;
        let shared = Arc::new(TunnelShared {
            cluster: cluster.name.clone(),
            target: target.clone(),
            client,
            health: Mutex::new(Health::Ready(resolved)),
            local,
            started_at: jiff::Timestamp::now(),
            open: AtomicUsize::new(0),
            total: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_error: Mutex::new(None),
            recheck: Notify::new(),
            changed,
        });
        let cancel = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone())),
            tokio::spawn(supervise(shared.clone(), cancel.clone())),
        ];
        tracing::info!("forward {id}: listening on {local} for {target}");
        Ok(Tunnel {
            shared,
            cancel,
            tasks,
        })
    }

    pub(crate) fn local(&self) -> SocketAddr {
        self.shared.local
    }

    /// Writes its live fields into a status row.
    pub(crate) fn fill(&self, s: &mut ForwardStatus) {
        let r = self.shared.reading();
        s.local = Some(self.shared.local);
        s.state = if self.is_alive() {
            r.state
        } else {
            ForwardState::Failed("its listener stopped; start it again".into())
        };
        s.pod = r.pod;
        s.pod_port = r.pod_port;
        s.open_connections = r.open;
        s.connections_total = r.total;
        s.bytes_in = r.bytes_in;
        s.bytes_out = r.bytes_out;
        s.started_at = Some(self.shared.started_at);
        s.last_error = r.last_error;
    }

    /// True while its listener still runs.
    pub(crate) fn is_alive(&self) -> bool {
        !self.cancel.is_cancelled() && self.tasks.iter().all(|t| !t.is_finished())
    }

    /// Closes the listener and every connection, and waits for their upstreams to close.
    pub(crate) async fn stop(mut self) {
        self.cancel.cancel();
        for t in std::mem::take(&mut self.tasks) {
            let abort = t.abort_handle();
            if tokio::time::timeout(JOIN_GRACE * 2, t).await.is_err() {
                abort.abort();
            }
        }
    }
}

async fn probe(
    client: &Client,
    cluster: &str,
    target: &ForwardTarget,
    r: &Resolved,
) -> Result<(), ForwardError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let mut pf = resolve::in_time(cluster, async {
        pods.portforward(&r.pod, &[r.port]).await.map_err(|e| {
            ForwardError::from_kube(cluster, &target.to_string(), &target.namespace, e)
        })
    })
    .await?;
    drop(pf.take_stream(r.port));
    close_upstream(pf).await;
    Ok(())
}

/// `Portforwarder` has no Drop: join it, which ends once both sides closed. Our side of the
/// stream is already dropped, so its message loop sends the WebSocket Close at once; a server
/// that never answers it costs one detached task until the TCP connection dies.
async fn close_upstream(pf: kube::api::Portforwarder) {
    match tokio::time::timeout(JOIN_GRACE, pf.join()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("port-forward upstream ended with: {e}"),
        Err(_) => tracing::debug!("port-forward upstream did not close within {JOIN_GRACE:?}"),
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<TunnelShared>, cancel: CancellationToken) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    tracing::debug!("forward {}/{}: connection from {peer}", shared.cluster, shared.target);
                    conns.spawn(serve_connection(sock, shared.clone(), cancel.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: keep listening, but not in a hot loop.
                    tracing::warn!("forward {}/{}: accept failed: {e}", shared.cluster, shared.target);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    // Connections see the same cancel and close their upstreams themselves.
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(JOIN_GRACE * 2, drain).await.is_err() {
        conns.abort_all();
    }
}

/// Decrements the open-connection count however the connection ends.
struct OpenGuard(Arc<TunnelShared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_one();
        // A closed stream is the cheapest hint that the pod may be gone.
        self.0.recheck.notify_one();
    }
}

async fn serve_connection(local: TcpStream, shared: Arc<TunnelShared>, cancel: CancellationToken) {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &shared.target.namespace);
    let mut opened = None;
    // Two tries: the second after re-resolving, so a replaced pod costs no failed connection.
    for _ in 0..2 {
        let r = match shared.current() {
            Some(r) => r,
            None => match resolve::resolve(&shared.client, &shared.cluster, &shared.target).await {
                Ok(r) => {
                    shared.set_health(Health::Ready(r.clone()));
                    r
                }
                Err(e) => {
                    shared.broken(e.to_string());
                    return;
                }
            },
        };
        let attempt = resolve::in_time(&shared.cluster, async {
            pods.portforward(&r.pod, &[r.port]).await.map_err(|e| {
                ForwardError::from_kube(
                    &shared.cluster,
                    &shared.target.to_string(),
                    &shared.target.namespace,
                    e,
                )
            })
        });
        let attempt = tokio::select! {
            a = attempt => a,
            _ = cancel.cancelled() => return,
        };
        match attempt {
            Ok(pf) => {
                opened = Some((pf, r));
                break;
            }
            Err(e) => shared.broken(format!("pod {}: {e}", r.pod)),
        }
    }
    let Some((mut pf, r)) = opened else {
        return;
    };
    let Some(upstream) = pf.take_stream(r.port) else {
        close_upstream(pf).await;
        return;
    };
    let pod_error = pf.take_error(r.port);
    shared.open.fetch_add(1, Ordering::Relaxed);
    shared.total.fetch_add(1, Ordering::Relaxed);
    shared.changed.notify_one();
    let _guard = OpenGuard(shared.clone());
    let mut local = Counted::new(local, shared.clone(), Direction::Out);
    let mut upstream = Counted::new(upstream, shared.clone(), Direction::In);
    let cancelled = {
        let copy = tokio::io::copy_bidirectional(&mut local, &mut upstream);
        tokio::pin!(copy);
        let pod_error = async move {
            match pod_error {
                Some(f) => f.await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(pod_error);
        let mut error_seen = false;
        loop {
            tokio::select! {
                res = &mut copy => {
                    if let Err(e) = res {
                        tracing::debug!("forward {}/{}: connection ended: {e}", shared.cluster, shared.target);
                    }
                    break false;
                }
                msg = &mut pod_error, if !error_seen => {
                    error_seen = true;
                    if let Some(msg) = msg {
                        tracing::warn!("forward {}/{}: pod {} port {}: {msg}", shared.cluster, shared.target, r.pod, r.port);
                        *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
                        shared.changed.notify_one();
                        break false;
                    }
                }
                _ = cancel.cancelled() => break true,
            }
        }
    };
    drop(local);
    drop(upstream);
    if cancelled {
        pf.abort();
        return;
    }
    close_upstream(pf).await;
}

/// Keeps the target honest: checks the pod now and then (and whenever a stream closes, at
/// most once a second), and re-resolves with backoff while there is no usable pod.
async fn supervise(shared: Arc<TunnelShared>, cancel: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    let mut last_check = tokio::time::Instant::now();
    loop {
        let wait = match shared.current() {
            Some(_) => HEALTHY_CHECK,
            None => backoff,
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = shared.recheck.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        // Busy forwards close streams all the time; one pod lookup a second is plenty.
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(last_check + MIN_RECHECK) => {}
        }
        last_check = tokio::time::Instant::now();
        let check = check_once(&shared, &mut backoff);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = check => {}
        }
    }
}

async fn check_once(shared: &TunnelShared, backoff: &mut Duration) {
    if let Some(r) = shared.current() {
        match resolve::still_usable(&shared.client, &shared.cluster, &shared.target, &r.pod).await {
            Ok(true) => {
                *backoff = Duration::from_secs(1);
                return;
            }
            Ok(false) => {
                shared.set_health(Health::Reconnecting(format!(
                    "pod {} is gone or not ready",
                    r.pod
                )));
            }
            Err(e) => {
                shared.set_health(Health::Reconnecting(e.to_string()));
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
                return;
            }
        }
    }
    match resolve::resolve(&shared.client, &shared.cluster, &shared.target).await {
        Ok(r) => {
            *backoff = Duration::from_secs(1);
            shared.set_health(Health::Ready(r));
        }
        Err(e) => {
            shared.set_health(Health::Reconnecting(e.to_string()));
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    /// Bytes read from the pod.
    In,
    /// Bytes read from the local client.
    Out,
}

/// Counts the bytes read through a stream into the tunnel's counters as they pass.
struct Counted<S> {
    inner: S,
    shared: Arc<TunnelShared>,
    dir: Direction,
}

impl<S> Counted<S> {
    fn new(inner: S, shared: Arc<TunnelShared>, dir: Direction) -> Self {
        Counted { inner, shared, dir }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            let counter = match self.dir {
                Direction::In => &self.shared.bytes_in,
                Direction::Out => &self.shared.bytes_out,
            };
            counter.fetch_add(n, Ordering::Relaxed);
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
