//! The Redis source over TLS against a real `redis-server` started with `tls-port` and a test CA
//! made with the `openssl` command: the right CA connects and reads INFO; another CA is refused
//! with a message that says it is a certificate problem.

#[path = "support/certs.rs"]
mod certs;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opsdeck::sources::redis::{RedisConfig, RedisConn};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tls_redis(dir: &Path) -> (Proc, u16) {
    use std::os::unix::process::CommandExt as _;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut c = Command::new("redis-server");
        c.args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ])
        .args([
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "good-ca.crt",
        ])
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            ".",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: prctl in the child before exec only asks for SIGKILL when the test dies.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut p = Proc(
            c.spawn()
                .expect("redis-server runs (install the Debian package redis-server)"),
        );
        for _ in 0..200 {
            if matches!(p.0.try_wait(), Ok(Some(_))) {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (p, port);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("redis-server with TLS did not start");
}

fn config(port: u16, ca: &Path) -> RedisConfig {
    let table: toml::Table = toml::from_str(&format!(
        "address = \"127.0.0.1:{port}\"\ntls = true\nca_file = {:?}\n",
        ca.display().to_string()
    ))
    .unwrap();
    RedisConfig::from_table(&table).expect("config")
}

#[tokio::test]
async fn tls_with_the_right_ca_reads_persistence_and_another_ca_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    certs::make(dir.path());
    let (_redis, port) = start_tls_redis(dir.path());

    let mut conn = RedisConn::connect(&config(port, &dir.path().join("good-ca.crt")), None)
        .await
        .expect("TLS connect with the right CA");
    let snap = conn.poll().await.expect("INFO over TLS");
    assert!(snap.aof_enabled, "{snap:?}");

    let err = match RedisConn::connect(&config(port, &dir.path().join("other-ca.crt")), None).await
    {
        Ok(_) => panic!("a certificate from another CA was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.to_lowercase().contains("certificate") || err.to_lowercase().contains("tls"),
        "{err}"
    );
}
