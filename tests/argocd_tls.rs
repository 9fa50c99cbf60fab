//! The ArgoCD source over HTTPS: a TLS terminator (rustls, a test CA made with `openssl`) in
//! front of the simulated ArgoCD. `ca_file` trusts the private CA; another CA is refused with a
//! certificate error; `insecure_skip_verify` connects and is marked insecure on the snapshot.

#[path = "support/certs.rs"]
mod certs;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use opsdeck::config::ClusterConfig;
use opsdeck::sim::argocd::ArgoSim;
use opsdeck::sim::seed::Env;
use opsdeck::sources::{FeatureData, SourceEvent, SourceUpdate};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Terminates TLS on a loopback port and relays each connection to `upstream`.
async fn tls_front(dir: &Path, upstream: String) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.crt"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

fn cluster(url: String, token: &Path, extra: &[(&str, toml::Value)]) -> ClusterConfig {
    let mut table = toml::Table::new();
    table.insert("url".into(), url.into());
    table.insert("token_file".into(), token.display().to_string().into());
    for (k, v) in extra {
        table.insert((*k).into(), v.clone());
    }
    ClusterConfig {
        name: "production".into(),
        protected: true,
        argocd: Some(table),
        ..ClusterConfig::default()
    }
}

/// The first update of the source: a snapshot or a failure reason.
async fn first(c: ClusterConfig) -> Result<Arc<opsdeck::model::argocd::ArgocdSnapshot>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<SourceEvent>();
    let cancel = CancellationToken::new();
    tokio::spawn(opsdeck::sources::argocd::run(0, c, tx, cancel.clone()));
    let ev = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an answer")
        .expect("source alive");
    cancel.cancel();
    match ev.update {
        SourceUpdate::Feature(FeatureData::Argocd(s)) => Ok(s),
        SourceUpdate::FeatureFailing { reason, .. } => Err(reason),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ca_trusted_other_ca_refused_insecure_marked() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    certs::make(dir.path());
    let argo = ArgoSim::start(Env::Production, false)
        .await
        .expect("sim starts");
    let upstream = argo
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let port = tls_front(dir.path(), upstream).await;
    let token = dir.path().join("token");
    std::fs::write(&token, argo.token()).unwrap();
    let url = format!("https://127.0.0.1:{port}/argocd");

    let ca = |name: &str| {
        toml::Value::from(
            dir.path()
                .join(format!("{name}-ca.crt"))
                .display()
                .to_string(),
        )
    };
    let snap = first(cluster(url.clone(), &token, &[("ca_file", ca("good"))]))
        .await
        .expect("trusted through ca_file");
    assert!(!snap.insecure && snap.apps.len() >= 6);

    let reason = first(cluster(url.clone(), &token, &[("ca_file", ca("other"))]))
        .await
        .expect_err("another CA is refused");
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");

    let snap = first(cluster(
        url,
        &token,
        &[("insecure_skip_verify", true.into())],
    ))
    .await
    .expect("insecure connects");
    assert!(
        snap.insecure,
        "the snapshot says the connection is not verified"
    );
}
