//! The simulator's `pods/portforward` WebSocket endpoint, checked with kube-rs's own
//! `Portforwarder` (the independent implementation of the subprotocol): several ports on one
//! connection, the error channel, 403 and 404.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use opsdeck::config::Config;
use opsdeck::sim::{Fleet, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

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

async fn pods_api(config: &Config, cluster: &str, ns: &str) -> Api<Pod> {
    let c = config.cluster(cluster).expect("cluster configured");
    let client = opsdeck::sources::kube::client_for(c).await.expect("client");
    Api::namespaced(client, ns)
}

fn pod_named(fleet: &Fleet, cluster: &str, ns: &str, prefix: &str) -> String {
    fleet
        .cluster(cluster)
        .expect("cluster")
        .pods()
        .into_iter()
        .filter_map(|p| {
            let m = p.metadata;
            (m.namespace.as_deref() == Some(ns)).then_some(m.name?)
        })
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("a pod {ns}/{prefix}* in the fleet"))
}

#[tokio::test]
async fn kube_rs_forwards_two_ports_over_one_websocket() {
    let (fleet, config) = fleet().await;
    let pod = pod_named(&fleet, "staging", "goapps-staging", "finance-service-");
    let api = pods_api(&config, "staging", "goapps-staging").await;
    let mut pf = tokio::time::timeout(WAIT, api.portforward(&pod, &[8080, 8090]))
        .await
        .expect("in time")
        .expect("port-forward upgrade accepted");
    let mut a = pf.take_stream(8080).expect("stream for 8080");
    let mut b = pf.take_stream(8090).expect("stream for 8090");
    a.write_all(b"to port 8080").await.expect("write a");
    b.write_all(b"to port 8090, longer").await.expect("write b");
    let mut got_a = [0u8; 12];
    let mut got_b = [0u8; 20];
    tokio::time::timeout(WAIT, a.read_exact(&mut got_a))
        .await
        .expect("in time")
        .expect("echo on 8080");
    tokio::time::timeout(WAIT, b.read_exact(&mut got_b))
        .await
        .expect("in time")
        .expect("echo on 8090");
    assert_eq!(&got_a, b"to port 8080");
    assert_eq!(&got_b, b"to port 8090, longer");
    drop(a);
    drop(b);
    tokio::time::timeout(WAIT, pf.join())
        .await
        .expect("port-forward task ends once both streams closed")
        .expect("clean end");
    fleet.shutdown().await;
}

#[tokio::test]
async fn grafana_pod_port_serves_the_page_naming_its_cluster() {
    let (fleet, config) = fleet().await;
    let pod = pod_named(&fleet, "production", "monitoring", "prometheus-grafana-");
    let api = pods_api(&config, "production", "monitoring").await;
    let mut pf = api.portforward(&pod, &[3000]).await.expect("upgrade");
    let mut s = pf.take_stream(3000).expect("stream");
    s.write_all(b"GET / HTTP/1.1\r\nHost: grafana\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut body))
        .await
        .expect("in time")
        .expect("response");
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("Simulated Grafana of cluster production"),
        "{text}"
    );
    drop(s);
    pf.abort();
    fleet.shutdown().await;
}

#[tokio::test]
async fn a_port_nobody_listens_on_reports_on_the_error_channel() {
    let (fleet, config) = fleet().await;
    let pod = pod_named(&fleet, "staging", "monitoring", "prometheus-grafana-");
    let api = pods_api(&config, "staging", "monitoring").await;
    let mut pf = api.portforward(&pod, &[9999]).await.expect("upgrade");
    let err = pf.take_error(9999).expect("error future");
    let msg = tokio::time::timeout(WAIT, err)
        .await
        .expect("in time")
        .expect("an error message");
    assert!(msg.contains("connection refused"), "{msg}");
    assert!(msg.contains("9999"), "{msg}");
    pf.abort();
    fleet.shutdown().await;
}

#[tokio::test]
async fn missing_pod_is_404_and_forbidden_namespace_is_403() {
    let (fleet, config) = fleet().await;
    let api = pods_api(&config, "staging", "monitoring").await;
    match api.portforward("no-such-pod", &[80]).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 404);
            assert!(s.message.contains("no-such-pod"), "{}", s.message);
        }
        Err(e) => panic!("expected a 404 Status, got {e}"),
        Ok(_) => panic!("expected a 404 Status, got an open port-forward"),
    }
    let pod = pod_named(&fleet, "staging", "monitoring", "prometheus-grafana-");
    fleet
        .cluster("staging")
        .expect("staging")
        .forbid_portforward("monitoring", None);
    match api.portforward(&pod, &[3000]).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert!(s.message.contains("pods/portforward"), "{}", s.message);
        }
        Err(e) => panic!("expected a 403 Status, got {e}"),
        Ok(_) => panic!("expected a 403 Status, got an open port-forward"),
    }
    fleet
        .cluster("staging")
        .expect("staging")
        .allow_portforward();
    let pf = api.portforward(&pod, &[3000]).await.expect("allowed again");
    pf.abort();
    fleet.shutdown().await;
}
