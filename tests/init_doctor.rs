//! `opsdeck init` and `opsdeck doctor` against the simulated fleet: init with KUBECONFIG = the
//! fleet's kubeconfig writes a config that `config check` accepts and doctor reports on (every
//! source ok or with its fix); doctor on the fleet's own config is ok; a broken config (a
//! missing Secret, the wrong scheme, the wrong ArgoCD base path) gets the fix text.
//! The assertions hold whether or not the simulator already carries every real name: init
//! writes what it finds and comments out the rest.

#[path = "support/certs.rs"]
mod certs;

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use opsdeck::sim::{Fleet, SimOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn fleet() -> Fleet {
    Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet starts")
}

/// Runs the binary with a controlled environment: HOME in `home`, no config lookup outside.
async fn opsdeck(home: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_opsdeck"));
    c.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_STATE_HOME", home.join(".state"))
        .env_remove("OPSDECK_CONFIG")
        .env_remove("KUBECONFIG");
    if let Some(k) = kubeconfig {
        c.env("KUBECONFIG", k);
    }
    tokio::time::timeout(std::time::Duration::from_secs(120), c.output())
        .await
        .expect("opsdeck finishes within 120s")
        .expect("opsdeck runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every verdict line is `CLUSTER/SOURCE: ok...`, `...: warn: ...` or `...: FAIL: ...`, and a
/// warn or FAIL line is followed by its `fix:` line.
fn assert_verdicts(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty(), "doctor printed nothing");
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(' ') {
            continue;
        }
        let (head, rest) = line.split_once(": ").unwrap_or_else(|| panic!("{line}"));
        assert!(head.contains('/'), "{line}");
        if rest.starts_with("ok") {
            continue;
        }
        assert!(
            rest.starts_with("warn: ") || rest.starts_with("FAIL: "),
            "{line}"
        );
        let next = lines.get(i + 1).copied().unwrap_or("");
        assert!(
            next.starts_with("  fix: ") && next.len() > "  fix: ".len() + 10,
            "no fix after {line:?}:\n{stdout}"
        );
    }
}

fn verdict<'a>(stdout: &'a str, source: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{source}: ")))
        .unwrap_or_else(|| panic!("no {source} line in:\n{stdout}"))
}

/// The line after a source's verdict (its fix), empty when none.
fn fix_of<'a>(stdout: &'a str, source: &str) -> &'a str {
    let mut lines = stdout.lines();
    while let Some(l) = lines.next() {
        if l.starts_with(&format!("{source}: ")) {
            return lines
                .next()
                .filter(|n| n.starts_with("  fix:"))
                .unwrap_or("");
        }
    }
    ""
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_writes_a_checked_config_doctor_reports_on_and_never_overwrites() {
    let fleet = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("opsdeck.toml");
    let out_s = out.display().to_string();
    let o = opsdeck(
        home.path(),
        Some(fleet.kubeconfig_path()),
        &["init", "--output", &out_s],
    )
    .await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    let written = std::fs::read_to_string(&out).unwrap();

    // Clusters from the kubeconfig's contexts, production protected, app namespaces found.
    let parsed = opsdeck::config::Config::load(&out).expect("init's config loads");
    let names: Vec<&str> = parsed
        .config
        .clusters
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["staging", "production"], "{written}");
    let prod = parsed.config.cluster("production").unwrap();
    let stg = parsed.config.cluster("staging").unwrap();
    assert!(prod.protected && !stg.protected, "{written}");
    assert_eq!(prod.context.as_deref(), Some("production"));
    assert_eq!(prod.kubeconfig.as_deref(), Some(fleet.kubeconfig_path()));
    assert_eq!(stg.app_namespace.as_deref(), Some("goapps-staging"));
    assert_eq!(prod.app_namespace.as_deref(), Some("goapps-production"));
    // The fleet's Redis Service and backup CronJobs exist in every version of the simulator.
    let redis = prod.redis.as_ref().expect("redis panel discovered");
    assert_eq!(redis["service"].as_str(), Some("database/redis:6379"));
    assert_eq!(
        redis["workload"].as_str(),
        Some("database/deployment/redis")
    );
    assert!(
        written.contains("prefix = \"postgres-backup-\""),
        "{written}"
    );
    // Secrets only as references; anything not found is a comment that says so.
    for secret in [
        opsdeck::sim::pgbouncer::PASSWORD,
        opsdeck::sim::s3::SECRET_KEY,
        opsdeck::sim::s3::ACCESS_KEY,
    ] {
        assert!(!written.contains(secret), "a secret value was written");
    }
    for c in &parsed.config.clusters {
        if let Some(p) = &c.pgbouncer {
            assert_eq!(p["user"].as_str(), Some("postgres"));
            assert_eq!(
                p["password_secret"].as_str(),
                Some("database/postgres-secret:POSTGRES_PASSWORD")
            );
        } else {
            assert!(
                written.contains("# Not enabled: Secret database/postgres-secret")
                    || written.contains("# Not enabled: Service database/pgbouncer"),
                "{written}"
            );
        }
        if let Some(a) = &c.argocd {
            assert_eq!(a["service"].as_str(), Some("argocd/argocd-server:80"));
        }
    }

    // `config check` accepts it as written.
    let o = opsdeck(home.path(), None, &["--config", &out_s, "config", "check"]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains(": valid"), "{stdout}");

    // doctor reports on every configured source: ok, or what is wrong and the fix.
    let o = opsdeck(home.path(), None, &["--config", &out_s, "doctor"]).await;
    let (stdout, stderr) = text(&o);
    assert!(matches!(o.status.code(), Some(0..=2)), "{stdout}\n{stderr}");
    assert_verdicts(&stdout);
    for c in ["staging", "production"] {
        assert!(
            verdict(&stdout, &format!("{c}/kubernetes")).contains(": ok"),
            "{stdout}"
        );
        verdict(&stdout, &format!("{c}/redis"));
        verdict(&stdout, &format!("{c}/backups/cronjobs"));
    }
    let worst = if stdout.contains(": FAIL: ") {
        2
    } else if stdout.contains(": warn: ") {
        1
    } else {
        0
    };
    assert_eq!(o.status.code(), Some(worst), "{stdout}");

    // --cluster limits it; an unknown cluster is a usage error.
    let o = opsdeck(
        home.path(),
        None,
        &["--config", &out_s, "doctor", "--cluster", "staging"],
    )
    .await;
    let (stdout, _) = text(&o);
    assert!(!stdout.contains("production/"), "{stdout}");
    let o = opsdeck(
        home.path(),
        None,
        &["--config", &out_s, "doctor", "--cluster", "nope"],
    )
    .await;
    assert_eq!(o.status.code(), Some(3));

    // Never overwritten without --force.
    std::fs::write(&out, "# mine\n").unwrap();
    let o = opsdeck(
        home.path(),
        Some(fleet.kubeconfig_path()),
        &["init", "--output", &out_s],
    )
    .await;
    let (_, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# mine\n");
    let o = opsdeck(
        home.path(),
        Some(fleet.kubeconfig_path()),
        &["init", "--output", &out_s, "--force"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), written);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // Without --output: $XDG_CONFIG_HOME/opsdeck/config.toml.
    let o = opsdeck(home.path(), Some(fleet.kubeconfig_path()), &["init"]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(home.path().join(".config/opsdeck/config.toml").is_file());
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_without_any_kubeconfig_writes_a_valid_empty_config() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("c.toml");
    let out_s = out.display().to_string();
    let o = opsdeck(home.path(), None, &["init", "--output", &out_s]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("No kubeconfig context was found"),
        "{written}"
    );
    opsdeck::config::Config::load(&out).expect("valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_on_the_fleets_own_config_is_ok() {
    let fleet = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let cfg = fleet.config_path().display().to_string();
    let o = opsdeck(home.path(), None, &["--config", &cfg, "doctor"]).await;
    let (stdout, stderr) = text(&o);
    assert_verdicts(&stdout);
    for c in ["staging", "production"] {
        for s in ["kubernetes", "pgbouncer", "redis", "argocd"] {
            let line = verdict(&stdout, &format!("{c}/{s}"));
            assert!(line.contains(": ok"), "{line}\n{stdout}\n{stderr}");
        }
    }
    fleet.shutdown().await;
}

/// The fleet's config with every PgBouncer password pointing at a Secret that does not exist,
/// and every ArgoCD url switched from http:// to https://.
fn broken(config: &str) -> String {
    let mut doc: toml_edit::DocumentMut = config.parse().unwrap();
    let clusters = doc["cluster"].as_array_of_tables_mut().unwrap();
    for c in clusters.iter_mut() {
        if let Some(p) = c.get_mut("pgbouncer").and_then(|p| p.as_table_mut()) {
            for k in ["password_env", "password_file", "password_secret"] {
                p.remove(k);
            }
            p["password_secret"] = toml_edit::value("database/no-such-secret:POSTGRES_PASSWORD");
        }
        if let Some(a) = c.get_mut("argocd").and_then(|a| a.as_table_mut()) {
            let url = a.get("url").and_then(|u| u.as_str()).map(str::to_string);
            if let Some(u) = url.and_then(|u| u.strip_prefix("http://").map(str::to_string)) {
                a["url"] = toml_edit::value(format!("https://{u}"));
            }
        }
    }
    doc.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_the_fix_for_a_missing_secret_and_the_wrong_scheme() {
    let fleet = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let text_in = std::fs::read_to_string(fleet.config_path()).unwrap();
    let path = home.path().join("broken.toml");
    std::fs::write(&path, broken(&text_in)).unwrap();
    let p = path.display().to_string();
    let o = opsdeck(home.path(), None, &["--config", &p, "config", "check"]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let o = opsdeck(home.path(), None, &["--config", &p, "doctor"]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_verdicts(&stdout);
    for c in ["staging", "production"] {
        let fix = fix_of(&stdout, &format!("{c}/pgbouncer"));
        assert!(
            fix.contains("create Secret database/no-such-secret with key POSTGRES_PASSWORD"),
            "{stdout}"
        );
        if text_in.contains("url = \"http://") {
            let line = verdict(&stdout, &format!("{c}/argocd"));
            assert!(line.contains("FAIL"), "{line}");
            let fix = fix_of(&stdout, &format!("{c}/argocd"));
            assert!(
                fix.contains("speaks plain HTTP") && fix.contains("url = \"http://"),
                "{stdout}"
            );
        }
    }
    fleet.shutdown().await;
}

/// A tiny HTTP server (optionally behind TLS): `routes` maps a path to `(status, content type,
/// body)`; anything else is a 404.
async fn http_server(
    tls: Option<tokio_rustls::TlsAcceptor>,
    routes: &'static [(&'static str, u16, &'static str, &'static str)],
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut s: S,
        routes: &'static [(&'static str, u16, &'static str, &'static str)],
    ) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        let path = head.split_whitespace().nth(1).unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        let (status, ctype, body) = routes
            .iter()
            .find(|r| r.0 == path)
            .map_or((404, "text/plain", "404 page not found"), |r| {
                (r.1, r.2, r.3)
            });
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        let _ = s.shutdown().await;
    }
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(tcp).await {
                            serve(s, routes).await;
                        }
                    }
                    None => serve(tcp, routes).await,
                }
            });
        }
    });
    port
}

fn acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
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
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_says_https_for_an_https_only_store_and_argocds_base_path() {
    let fleet = fleet().await;
    let home = tempfile::tempdir().unwrap();
    certs::make(home.path());
    // An HTTPS-only object store (like MinIO with --certs-dir), dialled with plain HTTP.
    let store = http_server(Some(acceptor(home.path())), &[]).await;
    // An ArgoCD under --rootpath=/argocd, configured without the path: the client finds the
    // path by itself (`/api/version` answers only under it), so doctor says ok.
    let argo = http_server(
        None,
        &[
            (
                "/argocd/api/version",
                200,
                "application/json",
                "{\"Version\":\"v2.13.2\"}",
            ),
            (
                "/argocd/api/v1/applications",
                200,
                "application/json",
                "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}",
            ),
        ],
    )
    .await;
    let key = home.path().join("key");
    std::fs::write(&key, "x").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let config = format!(
        "[[cluster]]\nname = \"staging\"\nkubeconfig = {}\ncontext = \"staging\"\n\
         [cluster.argocd]\nurl = \"http://127.0.0.1:{argo}\"\ntoken_file = {k}\n\
         [cluster.backups]\n[[cluster.backups.source]]\nkind = \"s3\"\nname = \"minio\"\n\
         url = \"http://127.0.0.1:{store}\"\nbucket = \"postgres-backups\"\n\
         access_key_file = {k}\nsecret_key_file = {k}\n",
        q(&fleet.kubeconfig_path().display().to_string()),
        k = q(&key.display().to_string()),
    );
    let path = home.path().join("c.toml");
    std::fs::write(&path, config).unwrap();
    let p = path.display().to_string();
    let o = opsdeck(home.path(), None, &["--config", &p, "doctor"]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_verdicts(&stdout);
    let fix = fix_of(&stdout, "staging/backups/minio");
    assert!(
        fix.contains("HTTPS only") && fix.contains(&format!("url = \"https://127.0.0.1:{store}\"")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("staging/argocd: ok") && l.contains("/argocd")),
        "{stdout}"
    );
    fleet.shutdown().await;
}

#[test]
fn k3s_default_contexts_are_named_by_their_environment_and_production_is_protected() {
    use opsdeck::init::{FoundContext, cluster_name, looks_protected};
    let ctx = |context: &str, server: &str| FoundContext {
        file: "/etc/rancher/k3s/k3s.yaml".into(),
        context: context.into(),
        server: server.into(),
    };
    let k3s = ctx("default", "https://127.0.0.1:6443");
    assert_eq!(cluster_name(&k3s, Some("goapps-production")), "production");
    assert_eq!(cluster_name(&k3s, Some("goapps-staging")), "staging");
    assert_eq!(cluster_name(&k3s, None), "default");
    assert_eq!(
        cluster_name(&ctx("default", "https://goapps.mutugading.com:6443"), None),
        "goapps.mutugading.com"
    );
    assert_eq!(cluster_name(&ctx("prod vps", ""), None), "prod-vps");
    assert!(looks_protected("production", "default", None));
    assert!(looks_protected("vps", "default", Some("goapps-production")));
    assert!(!looks_protected(
        "staging",
        "default",
        Some("goapps-staging")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_is_written_without_panels_and_doctor_names_kubeconfig_and_context() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let kc = home.path().join("k3s.yaml");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: default\n\
         clusters:\n- name: default\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n\
         contexts:\n- name: default\n  context:\n    cluster: default\n    user: default\n\
         users:\n- name: default\n  user:\n    token: not-a-real-token\n",
    )
    .unwrap();
    let out = home.path().join("c.toml");
    let out_s = out.display().to_string();
    let o = opsdeck(home.path(), Some(&kc), &["init", "--output", &out_s]).await;
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.contains("The API could not be asked at init time"),
        "{written}"
    );
    assert!(!written.contains("[cluster.redis]"), "{written}");
    assert!(!written.contains("not-a-real-token"), "{written}");
    let o = opsdeck(home.path(), None, &["--config", &out_s, "doctor"]).await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert_verdicts(&stdout);
    let line = verdict(&stdout, "default/kubernetes");
    assert!(
        line.contains("FAIL")
            && line.contains(&kc.display().to_string())
            && line.contains("context default"),
        "{stdout}"
    );
    assert!(
        fix_of(&stdout, "default/kubernetes").contains("K3s"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_refused_to_its_user_gets_the_stats_users_snippet() {
    let fleet = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let mut doc: toml_edit::DocumentMut = std::fs::read_to_string(fleet.config_path())
        .unwrap()
        .parse()
        .unwrap();
    for c in doc["cluster"].as_array_of_tables_mut().unwrap().iter_mut() {
        if let Some(p) = c.get_mut("pgbouncer").and_then(|p| p.as_table_mut()) {
            p["user"] = toml_edit::value("stgapps");
        }
    }
    let path = home.path().join("c.toml");
    std::fs::write(&path, doc.to_string()).unwrap();
    let p = path.display().to_string();
    let o = opsdeck(
        home.path(),
        None,
        &["--config", &p, "doctor", "--cluster", "staging"],
    )
    .await;
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        verdict(&stdout, "staging/pgbouncer").contains("FAIL"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- name: STATS_USERS")
            && stdout.contains("value: \"stgapps\"")
            && stdout.contains("kubectl -n database rollout restart deployment/pgbouncer"),
        "{stdout}"
    );
    fleet.shutdown().await;
}

/// What init writes for a cluster that has everything target-environment.md names.
#[test]
fn init_renders_every_real_fleet_panel_as_references_and_it_passes_the_checks() {
    use opsdeck::init::{Discovered, FoundContext, render};
    let secret = |name: &str, keys: &[&str]| {
        (
            name.to_string(),
            Ok(keys.iter().map(|k| k.to_string()).collect::<Vec<_>>()),
        )
    };
    let d = Discovered {
        app_namespace: Some("goapps-staging".into()),
        services: [
            "database/pgbouncer",
            "database/redis",
            "argocd/argocd-server",
            "minio/minio",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        secrets: vec![
            secret(
                "database/postgres-secret",
                &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"],
            ),
            secret(
                "minio/minio-secret",
                &["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"],
            ),
            secret(
                "database/s3-cloud-credentials",
                &[
                    "S3_ENDPOINT",
                    "S3_BUCKET",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ],
            ),
            secret("argocd/argocd-initial-admin-secret", &["password"]),
        ],
        b2: Some((
            "s3.us-west-004.backblazeb2.com".into(),
            "goapps-backups".into(),
        )),
        backup_cronjobs: vec![
            "postgres-backup-afternoon".into(),
            "postgres-backup-morning".into(),
            "postgres-backup-night".into(),
        ],
        postgres_user: Some("stgapps".into()),
        redis_deployment: true,
        ..Discovered::default()
    };
    let ctx = FoundContext {
        file: "/etc/rancher/k3s/k3s.yaml".into(),
        context: "default".into(),
        server: "https://127.0.0.1:6443".into(),
    };
    let text = render(&[(ctx, d)]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded = opsdeck::config::Config::load(&path).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let c = loaded
        .config
        .cluster("staging")
        .expect("named by its environment");
    assert!(!c.protected);
    assert_eq!(c.context.as_deref(), Some("default"));
    let pg = c.pgbouncer.as_ref().expect("pgbouncer");
    assert_eq!(pg["service"].as_str(), Some("database/pgbouncer:5432"));
    assert_eq!(pg["user"].as_str(), Some("postgres"));
    assert_eq!(
        pg["password_secret"].as_str(),
        Some("database/postgres-secret:POSTGRES_PASSWORD")
    );
    assert!(
        text.contains("#   - name: STATS_USERS") && text.contains("#     value: \"stgapps\""),
        "{text}"
    );
    let argo = c.argocd.as_ref().expect("argocd");
    assert_eq!(argo["service"].as_str(), Some("argocd/argocd-server:80"));
    assert_eq!(argo["user"].as_str(), Some("admin"));
    assert_eq!(
        argo["password_secret"].as_str(),
        Some("argocd/argocd-initial-admin-secret:password")
    );
    let sources = c.backups.as_ref().expect("backups")["source"]
        .as_array()
        .unwrap()
        .clone();
    let by = |name: &str| {
        sources
            .iter()
            .find(|s| s["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no source {name}:\n{text}"))
            .clone()
    };
    assert_eq!(by("cronjobs")["prefix"].as_str(), Some("postgres-backup-"));
    let minio = by("minio");
    assert_eq!(minio["service"].as_str(), Some("minio/minio:9000"));
    assert_eq!(minio["bucket"].as_str(), Some("postgres-backups"));
    assert_eq!(
        minio["access_key_secret"].as_str(),
        Some("minio/minio-secret:MINIO_ROOT_USER")
    );
    assert_eq!(
        minio["secret_key_secret"].as_str(),
        Some("minio/minio-secret:MINIO_ROOT_PASSWORD")
    );
    let b2 = by("b2");
    assert_eq!(
        b2["url"].as_str(),
        Some("https://s3.us-west-004.backblazeb2.com")
    );
    assert_eq!(b2["bucket"].as_str(), Some("goapps-backups"));
    assert_eq!(b2["prefix"].as_str(), Some("staging/"));
    assert_eq!(
        b2["access_key_secret"].as_str(),
        Some("database/s3-cloud-credentials:AWS_ACCESS_KEY_ID")
    );
    // Every secret is a reference.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let key = line.split('=').next().unwrap_or("").trim();
        if key.starts_with("password") || key.starts_with("token") || key.contains("_key") {
            assert!(key.ends_with("_secret"), "{line}");
        }
    }
}
