//! The simulated kubelet behind `pods/portforward`: the Kubernetes port-forward subprotocol over
//! WebSocket (`v4.channel.k8s.io`, the framing kube-rs's `Portforwarder` speaks), bridging each
//! simulated pod port to a loopback listener the simulator owns — a tiny HTTP page for Grafana,
//! an echo server for every other declared port — plus the `forbidden` fault tests switch on.
//!
//! Framing (per requested port `i`): channel `2i` carries data, `2i+1` errors. The server's
//! first frame on each channel is the channel byte and the port as two little-endian bytes;
//! after that every binary message is `[channel, payload...]`. The client sends data frames
//! `[2i, payload...]` with no port prefix. A connection refused inside the pod is reported as
//! text on the error channel, as the kubelet does.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OnceCell, mpsc};

use super::SimCluster;
use super::cluster::ClusterShared;
use super::server::status_error;
use super::store;

/// The only WebSocket subprotocol the simulated kubelet speaks for port-forward (kube-rs offers
/// `v5.channel.k8s.io, v4.channel.k8s.io`; the real kubelet answers v4 for port-forward).
pub const SUBPROTOCOL: &str = "v4.channel.k8s.io";

/// Largest payload per WebSocket message sent to the client.
const CHUNK: usize = 32 * 1024;

/// Per-cluster port-forward state: the fault switches and the loopback backends.
#[derive(Default)]
pub struct PortForwardState {
    /// `(namespace, Some(pod))` forbids one pod, `(namespace, None)` the whole namespace.
    forbidden: Mutex<HashSet<(String, Option<String>)>>,
    backends: OnceCell<Backends>,
}

/// Loopback listeners standing in for the processes inside the simulated pods.
#[derive(Debug, Clone, Copy)]
struct Backends {
    grafana: SocketAddr,
    echo: SocketAddr,
}

impl PortForwardState {
    fn is_forbidden(&self, ns: &str, pod: &str) -> bool {
        let f = self.forbidden.lock().unwrap_or_else(|e| e.into_inner());
        f.contains(&(ns.to_string(), None)) || f.contains(&(ns.to_string(), Some(pod.to_string())))
    }
}

impl SimCluster {
    /// Makes `pods/portforward` answer 403 Forbidden for one pod (`Some(name)`) or every pod
    /// of a namespace (`None`), as RBAC without `create` on `pods/portforward` would.
    pub fn forbid_portforward(&self, namespace: &str, pod: Option<&str>) {
        self.shared()
            .portforward
            .forbidden
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), pod.map(str::to_string)));
    }

    /// Lifts every `forbid_portforward`.
    pub fn allow_portforward(&self) {
        self.shared()
            .portforward
            .forbidden
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// `(namespace, pod)` for `/api/v1/namespaces/{ns}/pods/{name}/portforward`.
pub fn matches(segs: &[&str]) -> Option<(String, String)> {
    match segs {
        ["api", "v1", "namespaces", ns, "pods", name, "portforward"] => {
            Some((ns.to_string(), name.to_string()))
        }
        _ => None,
    }
}

fn forbidden(ns: &str, pod: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("pods \"{pod}\" is forbidden: User \"system:serviceaccount:opsdeck:viewer\" cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"{ns}\""),
        "reason": "Forbidden",
        "details": {"name": pod, "kind": "pods"},
        "code": 403,
    });
    let mut resp = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn parse_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in form_pairs(query.unwrap_or("")) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => return Err(format!("invalid port {p:?}: a port is 1-65535")),
            }
        }
    }
    if ports.is_empty() {
        return Err("at least one port is required (ports=N)".into());
    }
    Ok(ports)
}

/// `application/x-www-form-urlencoded` pairs; only `%2C` (the comma kube-rs escapes) and
/// friends need decoding here.
fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves one `pods/{name}/portforward` request (GET or POST, as the API server accepts both).
pub async fn handle(shared: Arc<ClusterShared>, req: http::Request<Body>) -> Response {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((ns, name)) = matches(&segs) else {
        return status_error(StatusCode::NOT_FOUND, "NotFound", "not a portforward path");
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        return status_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!(
                "pods/portforward accepts GET or POST (got {})",
                req.method()
            ),
        );
    }
    let ports = match parse_ports(req.uri().query()) {
        Ok(p) => p,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    if shared.portforward.is_forbidden(&ns, &name) {
        return forbidden(&ns, &name);
    }
    let Some(pod) = shared.store.get(&store::PODS, &ns, &name) else {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("pods \"{name}\" not found"), "reason": "NotFound",
            "details": {"name": name, "kind": "pods"}, "code": 404,
        });
        let mut resp = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return resp;
    };
    let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
    if phase != "Running" {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unable to upgrade connection: pod {name} is not running (phase {phase})"),
        );
    }
    // A WebSocket upgrade is a GET in RFC 6455; the API server also takes POST (SPDY clients).
    let (mut parts, _body) = req.into_parts();
    parts.method = Method::GET;
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("pods/portforward needs a WebSocket upgrade: {e}"),
            );
        }
    };
    let upgrade = upgrade.protocols([SUBPROTOCOL]);
    if upgrade.selected_protocol().is_none() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "the simulated API server speaks port-forward over the WebSocket subprotocol {SUBPROTOCOL} only"
            ),
        );
    }
    let backends = match shared
        .portforward
        .backends
        .get_or_try_init(|| start_backends(shared.env.name()))
        .await
    {
        Ok(b) => *b,
        Err(e) => {
            return status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("simulated kubelet: {e}"),
            );
        }
    };
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let declared = declared_ports(&pod);
    let grafana = ns == "monitoring" && name.starts_with("prometheus-grafana-");
    let targets: Vec<Result<SocketAddr, String>> = ports
        .iter()
        .map(|p| {
            if !declared.contains(p) {
                Err(format!(
                    "error forwarding port {p} to pod {uid}, uid : failed to execute portforward in network namespace: failed to connect to localhost:{p} inside namespace: dial tcp 127.0.0.1:{p}: connect: connection refused"
                ))
            } else if grafana && *p == 3000 {
                Ok(backends.grafana)
            } else {
                Ok(backends.echo)
            }
        })
        .collect();
    upgrade
        .on_failed_upgrade(|e| tracing::debug!("sim portforward upgrade failed: {e}"))
        .on_upgrade(move |socket| bridge(shared, socket, ns, name, uid, ports, targets))
}

fn declared_ports(pod: &Value) -> HashSet<u16> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .filter_map(|p| p["containerPort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

/// Bytes from a backend (or its end) for port index `i`.
enum FromBackend {
    Data(usize, Vec<u8>),
    Eof,
}

async fn bridge(
    shared: Arc<ClusterShared>,
    mut socket: WebSocket,
    ns: String,
    name: String,
    uid: String,
    ports: Vec<u16>,
    targets: Vec<Result<SocketAddr, String>>,
) {
    let mut cut = shared.cut.subscribe();
    cut.borrow_and_update();
    let mut changed = shared.store.subscribe();
    changed.borrow_and_update();
    for (i, p) in ports.iter().enumerate() {
        let [lo, hi] = p.to_le_bytes();
        let ch = (2 * i) as u8;
        for c in [ch, ch + 1] {
            if socket
                .send(Message::Binary(vec![c, lo, hi].into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<FromBackend>(8);
    let mut writers: Vec<Option<tokio::net::tcp::OwnedWriteHalf>> = Vec::new();
    let mut readers = Vec::new();
    let mut open = 0usize;
    for (i, target) in targets.iter().enumerate() {
        let conn = match target {
            Ok(addr) => TcpStream::connect(addr)
                .await
                .map_err(|e| format!("error forwarding port {}: simulated backend: {e}", ports[i])),
            Err(msg) => Err(msg.clone()),
        };
        match conn {
            Ok(stream) => {
                let (r, w) = stream.into_split();
                writers.push(Some(w));
                open += 1;
                let tx = tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut r = r;
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                let _ = tx.send(FromBackend::Eof).await;
                                return;
                            }
                            Ok(n) => {
                                if tx
                                    .send(FromBackend::Data(i, buf[..n].to_vec()))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                }));
            }
            Err(msg) => {
                writers.push(None);
                let mut frame = vec![(2 * i + 1) as u8];
                frame.extend_from_slice(msg.as_bytes());
                if socket.send(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let ch = b[0] as usize;
                    if ch.is_multiple_of(2)
                        && let Some(Some(w)) = writers.get_mut(ch / 2)
                        && w.write_all(&b[1..]).await.is_err()
                    {
                        writers[ch / 2] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            from = rx.recv() => match from {
                Some(FromBackend::Data(i, data)) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push((2 * i) as u8);
                    frame.extend_from_slice(&data);
                    if socket.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
                Some(FromBackend::Eof) => {
                    open = open.saturating_sub(1);
                    // v4 has no per-stream close: the kubelet ends the whole connection.
                    if open == 0 {
                        let _ = socket.send(Message::Close(None)).await;
                        break;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            r = changed.changed() => {
                if r.is_err() || !pod_alive(&shared, &ns, &name, &uid) {
                    // The pod is gone: the kubelet's streams die with it.
                    tracing::debug!("sim portforward: pod {ns}/{name} went away; closing");
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            }
            _ = cut.changed() => {
                let _ = socket.send(Message::Close(None)).await;
                break;
            }
        }
    }
    for r in readers {
        r.abort();
    }
    // Completes the closing handshake (answers the client's Close, or flushes ours) so the
    // client sees a clean end rather than a reset.
    let _ = futures::SinkExt::close(&mut socket).await;
}

fn pod_alive(shared: &ClusterShared, ns: &str, name: &str, uid: &str) -> bool {
    shared
        .store
        .get(&store::PODS, ns, name)
        .is_some_and(|p| p["metadata"]["uid"].as_str() == Some(uid))
}

async fn start_backends(cluster: &'static str) -> std::io::Result<Backends> {
    let grafana = TcpListener::bind(("127.0.0.1", 0)).await?;
    let echo = TcpListener::bind(("127.0.0.1", 0)).await?;
    let b = Backends {
        grafana: grafana.local_addr()?,
        echo: echo.local_addr()?,
    };
    tokio::spawn(async move {
        while let Ok((conn, _)) = grafana.accept().await {
            tokio::spawn(serve_grafana_page(conn, cluster));
        }
    });
    tokio::spawn(async move {
        while let Ok((conn, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(b)
}

/// The simulated Grafana's page, naming the cluster so a test can tell which one it reached.
pub fn grafana_page(cluster: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><title>Grafana ({cluster}, simulated)</title></head>\n<body><h1>Grafana</h1><p>Simulated Grafana of cluster {cluster}, reached through a port-forward.</p></body></html>\n"
    )
}

/// Answers each HTTP/1.1 request on the connection with the page, until the client closes.
async fn serve_grafana_page(mut conn: TcpStream, cluster: &'static str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if buf.len() > 64 * 1024 {
                return;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        buf.drain(..head_end);
        let (status, body) = if head.starts_with("GET / ") || head.starts_with("GET /login ") {
            ("200 OK", grafana_page(cluster))
        } else if head.starts_with("GET /api/health ") {
            (
                "200 OK",
                "{\"database\":\"ok\",\"version\":\"11.5.2\"}\n".to_string(),
            )
        } else {
            ("404 Not Found", "Not found\n".to_string())
        };
        let ctype = if body.starts_with('{') {
            "application/json"
        } else {
            "text/html; charset=utf-8"
        };
        let close = head.to_ascii_lowercase().contains("connection: close");
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        if conn.write_all(resp.as_bytes()).await.is_err() || close {
            let _ = conn.shutdown().await;
            return;
        }
    }
}

/// The fleet's usual port-forward shortcuts for one cluster, as `[[forward]]` tables for the
/// simulated fleet's config. Local ports are left free (0) so several fleets can run at once.
pub fn config_shortcuts(cluster: &str) -> String {
    const SHORTCUTS: &[(&str, &str, Option<&str>)] = &[
        (
            "grafana",
            "monitoring/service/prometheus-grafana:80",
            Some("http"),
        ),
        (
            "prometheus",
            "monitoring/service/prometheus-kube-prometheus-prometheus:9090",
            Some("http"),
        ),
        (
            "alertmanager",
            "monitoring/service/prometheus-kube-prometheus-alertmanager:9093",
            Some("http"),
        ),
        ("argocd", "argocd/service/argocd-server:80", Some("http")),
        (
            "jaeger",
            "observability/service/jaeger-query:16686",
            Some("http"),
        ),
        (
            "minio-console",
            "minio/service/minio:console",
            Some("https"),
        ),
        (
            "rabbitmq",
            "database/service/rabbitmq:management",
            Some("http"),
        ),
        ("postgres", "database/pod/postgres-0:5432", None),
        ("pgbouncer", "database/service/pgbouncer:5432", None),
    ];
    let mut out = String::new();
    for (name, target, scheme) in SHORTCUTS {
        out.push_str(&format!(
            "[[forward]]\nname = \"{name}\"\ncluster = \"{cluster}\"\ntarget = \"{target}\"\n"
        ));
        if let Some(s) = scheme {
            out.push_str(&format!("scheme = \"{s}\"\n"));
        }
        // One key opens the on-call engineer's first stop (README: Port-forwards).
        if *name == "grafana" {
            let key = if cluster == "production" { "g" } else { "G" };
            out.push_str(&format!("key = \"{key}\"\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_from_kube_rs_query() {
        assert_eq!(parse_ports(Some("&ports=80%2C1234")), Ok(vec![80, 1234]));
        assert_eq!(parse_ports(Some("ports=3000")), Ok(vec![3000]));
        assert!(parse_ports(Some("ports=0")).is_err());
        assert!(parse_ports(None).is_err());
    }

    #[test]
    fn portforward_paths_match() {
        assert_eq!(
            matches(&[
                "api",
                "v1",
                "namespaces",
                "monitoring",
                "pods",
                "g-1",
                "portforward"
            ]),
            Some(("monitoring".into(), "g-1".into()))
        );
        assert_eq!(
            matches(&["api", "v1", "namespaces", "m", "pods", "g"]),
            None
        );
    }
}
