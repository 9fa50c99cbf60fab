//! The port-forward machinery against the simulated fleet: bytes round-trip intact over
//! several concurrent connections, a replaced pod is picked up by itself, and the errors an
//! engineer can act on (port busy, forbidden, no ready pod); `service` endpoints through
//! `local_addr_for_service`; the headless `forward` command.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use opsdeck::config::{Config, PortRef};
use opsdeck::forward::{ForwardError, ForwardSnapshot, ForwardState, Forwards};
use opsdeck::runbook::audit::AuditLog;
use opsdeck::sim::{Fleet, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(30);

async fn fleet() -> (Fleet, Config) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("simulated fleet starts");
    let config = Config::load(fleet.config_path())
        .map_err(|e| format!("{}", e[0]))
        .expect("fleet config loads")
        .config;
    (fleet, config)
}

/// Waits until the snapshot satisfies `pred`, and returns it.
async fn wait_snapshot(
    rx: &mut watch::Receiver<Arc<ForwardSnapshot>>,
    what: &str,
    pred: impl Fn(&ForwardSnapshot) -> bool,
) -> Arc<ForwardSnapshot> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let snap = rx.borrow_and_update().clone();
        if pred(&snap) {
            return snap;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("snapshot channel closed waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}; last snapshot: {snap:#?}"),
        }
    }
}

async fn http_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("connect to the forward");
    s.write_all(b"GET / HTTP/1.1\r\nHost: grafana\r\nConnection: close\r\n\r\n")
        .await
        .expect("send request");
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut body))
        .await
        .expect("response in time")
        .expect("read response");
    String::from_utf8_lossy(&body).into_owned()
}

fn grafana_pod(fleet: &Fleet, cluster: &str) -> Pod {
    fleet
        .cluster(cluster)
        .expect("cluster")
        .pods()
        .into_iter()
        .find(|p| {
            p.metadata.namespace.as_deref() == Some("monitoring")
                && p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("prometheus-grafana-"))
        })
        .expect("a Grafana pod")
}

#[tokio::test]
async fn megabytes_round_trip_intact_over_concurrent_connections() {
    let (fleet, config) = fleet().await;
    let forwards = Forwards::new(&config);
    // A pod target: postgres-0 port 5432 (an echo server in the simulator).
    let addr = forwards
        .start("staging/postgres")
        .await
        .expect("forward opens");
    const SIZE: usize = 3 * 1024 * 1024;
    const CONNS: usize = 4;
    let mut tasks = Vec::new();
    for c in 0..CONNS {
        tasks.push(tokio::spawn(async move {
            let data: Vec<u8> = (0..SIZE)
                .map(|i| ((i * 31 + c * 7 + i / 4093) % 251) as u8)
                .collect();
            let s = TcpStream::connect(addr).await.expect("connect");
            let (mut r, mut w) = s.into_split();
            let to_send = data.clone();
            // Write and read at once: the echo only drains as fast as we read.
            let writer = tokio::spawn(async move {
                w.write_all(&to_send).await.expect("write");
                w
            });
            let mut got = vec![0u8; SIZE];
            tokio::time::timeout(WAIT, r.read_exact(&mut got))
                .await
                .expect("echo in time")
                .expect("read echo");
            let _w = writer.await.expect("writer");
            assert!(got == data, "connection {c}: bytes differ");
        }));
    }
    let mut rx = forwards.subscribe();
    for t in tasks {
        t.await.expect("connection task");
    }
    let total = (SIZE * CONNS) as u64;
    let snap = wait_snapshot(&mut rx, "byte counters", |s| {
        s.get("staging/postgres")
            .is_some_and(|f| f.bytes_in == total && f.bytes_out == total)
    })
    .await;
    let f = snap.get("staging/postgres").expect("status");
    assert_eq!(f.pod.as_deref(), Some("postgres-0"));
    assert_eq!(f.connections_total, CONNS as u64);
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn replaced_pod_is_picked_up_without_the_engineer() {
    let (fleet, config) = fleet().await;
    let forwards = Forwards::new(&config);
    let addr = forwards
        .start("production/grafana")
        .await
        .expect("forward opens");
    let page = http_get(addr).await;
    assert!(
        page.contains("Simulated Grafana of cluster production"),
        "{page}"
    );

    let old = grafana_pod(&fleet, "production");
    let old_name = old.metadata.name.clone().expect("name");
    let mut rx = forwards.subscribe();
    wait_snapshot(&mut rx, "the forward on the old pod", |s| {
        s.get("production/grafana")
            .is_some_and(|f| f.pod.as_deref() == Some(old_name.as_str()))
    })
    .await;
    // An open connection dies with its pod.
    let mut open = TcpStream::connect(addr).await.expect("connect");
    wait_snapshot(&mut rx, "the open connection", |s| {
        s.get("production/grafana")
            .is_some_and(|f| f.state == ForwardState::Connected)
    })
    .await;

    let cluster = fleet.cluster("production").expect("production");
    assert!(cluster.delete_pod("monitoring", &old_name));
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, open.read(&mut buf))
        .await
        .expect("the open connection ends with its pod");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "no bytes after the pod went away: {n:?}"
    );
    let snap = wait_snapshot(&mut rx, "reconnecting while no pod is ready", |s| {
        s.get("production/grafana")
            .is_some_and(|f| matches!(f.state, ForwardState::Reconnecting(_)))
    })
    .await;
    let f = snap.get("production/grafana").expect("status");
    assert!(
        f.local.is_some(),
        "the listener stays up while reconnecting"
    );

    let mut new = old.clone();
    let new_name = format!("{old_name}x");
    new.metadata.name = Some(new_name.clone());
    new.metadata.uid = Some("replacement-uid-0001".into());
    new.metadata.resource_version = None;
    cluster.upsert_pod(new);
    wait_snapshot(&mut rx, "the forward on the replacement pod", |s| {
        s.get("production/grafana").is_some_and(|f| {
            f.state == ForwardState::Listening && f.pod.as_deref() == Some(new_name.as_str())
        })
    })
    .await;
    let page = http_get(addr).await;
    assert!(
        page.contains("Simulated Grafana of cluster production"),
        "{page}"
    );
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn busy_local_port_offers_the_next_free_one() {
    let (fleet, mut config) = fleet().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let f = config
        .forwards
        .iter_mut()
        .find(|f| f.cluster == "staging" && f.name == "grafana")
        .expect("staging/grafana");
    f.local_port = port;
    let forwards = Forwards::new(&config);
    let err = forwards
        .start("staging/grafana")
        .await
        .expect_err("port is taken");
    let ForwardError::LocalPortInUse {
        free: Some(free), ..
    } = &err
    else {
        panic!("expected LocalPortInUse with a suggestion, got {err:?}");
    };
    assert_ne!(*free, port);
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port} is already in use")),
        "{msg}"
    );
    assert!(msg.contains(&format!("port {free} is free")), "{msg}");
    assert!(
        matches!(
            forwards.snapshot().get("staging/grafana").map(|s| &s.state),
            Some(ForwardState::Failed(_))
        ),
        "a failed start shows as failed"
    );
    drop(busy);
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn forbidden_port_forward_says_which_permission_is_missing_and_is_audited() {
    let (fleet, config) = fleet().await;
    let grafana = grafana_pod(&fleet, "staging").metadata.name.expect("name");
    fleet
        .cluster("staging")
        .expect("staging")
        .forbid_portforward("monitoring", Some(&grafana));
    let forwards = Forwards::new(&config);
    let err = forwards
        .start("staging/grafana")
        .await
        .expect_err("forbidden");
    assert!(matches!(err, ForwardError::Forbidden { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("403 Forbidden"), "{msg}");
    assert!(msg.contains("`create` on pods/portforward"), "{msg}");

    // A forward that does open is audited on start and on stop.
    forwards.start("staging/prometheus").await.expect("opens");
    forwards.stop("staging/prometheus").await.expect("stops");
    let records = AuditLog::new(config.audit_log.clone())
        .read_all()
        .expect("audit log");
    let actions: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r.event == "action")
        .map(|r| {
            (
                r.action.clone().unwrap_or_default(),
                r.target.clone().unwrap_or_default(),
                r.result.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(actions[0].0, "forward.start");
    assert_eq!(actions[0].1, "staging/forward/grafana");
    assert!(actions[0].2.contains("403"), "{actions:?}");
    assert_eq!(
        actions[1],
        (
            "forward.start".into(),
            "staging/forward/prometheus".into(),
            "ok".into()
        )
    );
    assert_eq!(
        actions[2],
        (
            "forward.stop".into(),
            "staging/forward/prometheus".into(),
            "ok".into()
        )
    );
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn service_without_a_ready_pod_is_named_as_such() {
    let (fleet, config) = fleet().await;
    let cluster = fleet.cluster("staging").expect("staging");
    let pod = grafana_pod(&fleet, "staging");
    let name = pod.metadata.name.clone().expect("name");
    assert!(cluster.modify_pod("monitoring", &name, |p| {
        if let Some(cs) = p.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            for c in cs.iter_mut().filter(|c| c.type_ == "Ready") {
                c.status = "False".into();
            }
        }
    }));
    let forwards = Forwards::new(&config);
    let err = forwards
        .start("staging/grafana")
        .await
        .expect_err("no ready pod");
    assert!(matches!(err, ForwardError::NoReadyPod { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no Running and Ready pod behind monitoring/service/prometheus-grafana:80"),
        "{msg}"
    );
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn unreachable_cluster_is_reported_as_such() {
    let (fleet, config) = fleet().await;
    fleet.cluster("staging").expect("staging").kill().await;
    let forwards = Forwards::new(&config);
    let err = forwards
        .start("staging/grafana")
        .await
        .expect_err("cluster down");
    assert!(matches!(err, ForwardError::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cluster staging is unreachable"),
        "{err}"
    );
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn api_server_going_away_shows_reconnecting_until_it_is_back() {
    let (fleet, config) = fleet().await;
    let forwards = Forwards::new(&config);
    let addr = forwards.start("staging/jaeger").await.expect("opens");
    let mut rx = forwards.subscribe();
    let cluster = fleet.cluster("staging").expect("staging");
    cluster.kill().await;
    // A connection now cannot get a stream; the local side is closed and the forward says why.
    let mut s = TcpStream::connect(addr)
        .await
        .expect("the listener stays up");
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    let snap = wait_snapshot(&mut rx, "reconnecting while the API is down", |s| {
        s.get("staging/jaeger").is_some_and(
            |f| matches!(&f.state, ForwardState::Reconnecting(why) if why.contains("unreachable")),
        )
    })
    .await;
    assert!(!snap.get("staging/jaeger").expect("status").state.is_up());
    cluster.restart().await.expect("API back");
    wait_snapshot(&mut rx, "listening again", |s| {
        s.get("staging/jaeger")
            .is_some_and(|f| f.state == ForwardState::Listening)
    })
    .await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"hello").await.expect("write");
    let mut got = [0u8; 5];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("echo");
    assert_eq!(&got, b"hello");
    forwards.shutdown().await;
    fleet.shutdown().await;
}

#[tokio::test]
async fn service_endpoint_reads_through_a_shared_internal_forward() {
    let (fleet, config) = fleet().await;
    let staging = config.cluster("staging").expect("staging").clone();
    let port = PortRef::Name("redis".into());
    let addr = opsdeck::forward::local_addr_for_service(&staging, "database", "redis", &port)
        .await
        .expect("internal forward");
    let again = opsdeck::forward::local_addr_for_service(&staging, "database", "redis", &port)
        .await
        .expect("internal forward");
    assert_eq!(addr, again, "one forward per service, shared");
    let mut s = opsdeck::forward::connect_service(&staging, "database", "redis", &port)
        .await
        .expect("connect");
    s.write_all(b"PING\r\n").await.expect("write");
    let mut got = [0u8; 6];
    tokio::time::timeout(WAIT, s.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("echo");
    assert_eq!(&got, b"PING\r\n");
    let forwards = Forwards::new(&config);
    let snap = forwards.snapshot();
    let internal = snap
        .internal
        .iter()
        .find(|f| f.cluster == "staging" && f.name == "database/redis:redis")
        .unwrap_or_else(|| panic!("listed as internal: {:#?}", snap.internal));
    assert_eq!(internal.local, Some(addr));
    assert!(
        snap.shortcuts
            .iter()
            .all(|f| f.name != "database/redis:redis")
    );
    let err = opsdeck::forward::local_addr_for_service(&staging, "database", "nope", &port)
        .await
        .expect_err("no such service");
    assert!(err.contains("service database/nope"), "{err}");
    forwards.shutdown().await;
    drop(s);
    fleet.shutdown().await;
}

#[tokio::test]
async fn headless_forward_prints_its_url_and_serves_the_page() {
    let (fleet, config) = fleet().await;
    let lines = opsdeck::cli_forward::list_lines(&config);
    assert!(
        lines.contains(&"production/grafana\tmonitoring/service/prometheus-grafana:80".to_string()),
        "{lines:?}"
    );
    let (line_tx, mut line_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = config.clone();
    let run = tokio::spawn(async move {
        let mut out = LineSink(line_tx, Vec::new());
        let names = vec!["production/grafana".to_string()];
        opsdeck::cli_forward::run_until(&cfg, &names, &mut out, async {
            let _ = stop_rx.await;
        })
        .await
    });
    let line = tokio::time::timeout(WAIT, line_rx.recv())
        .await
        .expect("a line in time")
        .expect("a line");
    let (id, url) = line.split_once('\t').expect("CLUSTER/NAME<TAB>LOCAL");
    assert_eq!(id, "production/grafana");
    let hostport = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("an http URL on 127.0.0.1: {url}"));
    let addr: SocketAddr = format!("127.0.0.1:{hostport}").parse().expect("port");
    let page = http_get(addr).await;
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("Simulated Grafana of cluster production"),
        "{page}"
    );
    let _ = stop_tx.send(());
    let code = tokio::time::timeout(WAIT, run)
        .await
        .expect("stops in time")
        .expect("task");
    assert_eq!(code, 0);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after stopping"
    );

    let mut sink = Vec::new();
    let code = opsdeck::cli_forward::run_until(
        &config,
        &["production/nope".to_string()],
        &mut sink,
        async {},
    )
    .await;
    assert_eq!(code, 3, "unknown name");
    fleet
        .cluster("staging")
        .expect("staging")
        .forbid_portforward("monitoring", None);
    let code = opsdeck::cli_forward::run_until(
        &config,
        &["staging/grafana".to_string()],
        &mut sink,
        async {},
    )
    .await;
    assert_eq!(code, 5, "forbidden: could not be opened");
    assert!(sink.is_empty(), "nothing on stdout when nothing opened");
    fleet.shutdown().await;
}

/// A writer handing each complete line to a channel.
struct LineSink(tokio::sync::mpsc::UnboundedSender<String>, Vec<u8>);

impl std::io::Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        while let Some(pos) = self.1.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.1.drain(..=pos).collect();
            let _ = self
                .0
                .send(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
