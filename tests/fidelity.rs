//! The simulated fleet IS the real fleet: every row of target-environment.md's tables
//! (workloads, Services and ports, CronJobs and schedules, Secrets and keys, ArgoCD apps)
//! asserted by name, through the real `kubectl` against both simulated clusters and through
//! the simulated ArgoCD, MinIO, PgBouncer and Redis. Needs kubectl >= 1.30 (`$KUBECTL`, or
//! `kubectl` on PATH; `scripts/install-kubectl.sh`).

use std::path::PathBuf;
use std::time::Duration;

use opsdeck::sim::{Fleet, SimOptions};
use serde_json::Value;
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);
const ENVS: [&str; 2] = ["staging", "production"];

fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("kubectl not found in $KUBECTL or PATH: run scripts/install-kubectl.sh")
        })
}

async fn fleet() -> Fleet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Fleet::start(SimOptions {
        pods: 0,
        churn: false,
    })
    .await
    .expect("fleet starts")
}

/// `kubectl --context CTX ARGS -o json`, parsed.
async fn kj(fleet: &Fleet, context: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig")
        .arg(fleet.kubeconfig_path())
        .arg("--context")
        .arg(context)
        .arg("--request-timeout=20s")
        .arg("--cache-dir")
        .arg(fleet.kubeconfig_path().with_file_name("kube-cache"))
        .args(args)
        .args(["-o", "json"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("kubectl finished in time")
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl printed JSON")
}

fn app_ns(env: &str) -> String {
    format!("goapps-{env}")
}

/// `(name, port, targetPort, nodePort)` of a Service's ports, by port name.
fn ports(svc: &Value) -> Vec<(String, i64, i64, i64)> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["port"].as_i64().unwrap_or(0),
                p["targetPort"].as_i64().unwrap_or(0),
                p["nodePort"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn port_numbers(svc: &Value) -> Vec<(i64, i64)> {
    ports(svc).into_iter().map(|(_, p, t, _)| (p, t)).collect()
}

#[tokio::test]
async fn namespaces_are_the_fleets() {
    let fleet = fleet().await;
    for env in ENVS {
        let ns = kj(&fleet, env, &["get", "namespaces"]).await;
        let names: Vec<&str> = ns["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        for want in [
            "database",
            "minio",
            "monitoring",
            "observability",
            "argocd",
            "ingress-nginx",
            &app_ns(env),
            "kubernetes-dashboard",
        ] {
            assert!(
                names.contains(&want),
                "{env}: namespace {want} in {names:?}"
            );
        }
    }
    fleet.shutdown().await;
}

/// One row of the app services table: name, image, Service ports, component, backend.
type AppRow = (&'static str, String, Vec<(i64, i64)>, &'static str, bool);

/// "App services": Deployment = Service, `app: <name>` labels, kustomize's labels, images from
/// ghcr.io/mutugading with upstream's tags, replicas 1 / 2, ports; iam-service production on
/// `:latest` with `imagePullPolicy: Always`.
#[tokio::test]
async fn app_services_match_the_table() {
    let fleet = fleet().await;
    for env in ENVS {
        let ns = app_ns(env);
        let replicas = if env == "staging" { 1 } else { 2 };
        let iam_tag = if env == "staging" { "main" } else { "latest" };
        let rows: [AppRow; 3] = [
            (
                "finance-service",
                "ghcr.io/mutugading/finance-service:2754734".into(),
                vec![(50051, 50051), (8080, 8080), (8090, 8090)],
                "api",
                true,
            ),
            (
                "iam-service",
                format!("ghcr.io/mutugading/iam-service:{iam_tag}"),
                vec![(50052, 50052), (8081, 8081), (8091, 8091)],
                "api",
                true,
            ),
            (
                "frontend",
                "ghcr.io/mutugading/frontend:sha-7e3bcd5".into(),
                vec![(80, 3000)],
                "web",
                false,
            ),
        ];
        for (name, image, svc_ports, component, backend) in rows {
            let d = kj(&fleet, env, &["get", "deployment", name, "-n", &ns]).await;
            assert_eq!(d["spec"]["replicas"], replicas, "{env}/{name} replicas");
            assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], name);
            let tl = &d["spec"]["template"]["metadata"]["labels"];
            assert_eq!(tl["app"], name, "{env}/{name}");
            assert_eq!(tl["app.kubernetes.io/name"], name, "{env}/{name}");
            assert_eq!(tl["app.kubernetes.io/component"], component, "{env}/{name}");
            if backend {
                assert_eq!(tl["app.kubernetes.io/part-of"], "goapps", "{env}/{name}");
            } else {
                assert!(
                    tl.get("app.kubernetes.io/part-of").is_none(),
                    "{env}/{name}"
                );
            }
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(c["image"], image.as_str(), "{env}/{name} image");
            if backend {
                assert_eq!(c["imagePullPolicy"], "Always", "{env}/{name}");
            }
            let s = kj(&fleet, env, &["get", "service", name, "-n", &ns]).await;
            assert_eq!(s["spec"]["selector"]["app"], name, "{env}/{name} selector");
            assert_eq!(port_numbers(&s), svc_ports, "{env}/{name} ports");
        }
    }
    fleet.shutdown().await;
}

/// The `database` namespace: PostgreSQL, PgBouncer, Redis, RabbitMQ, the exporter, the
/// ExternalName Services.
#[tokio::test]
async fn database_namespace_matches() {
    let fleet = fleet().await;
    for env in ENVS {
        let ns = ["-n", "database"];
        let pg = kj(
            &fleet,
            env,
            &[&["get", "statefulset", "postgres"][..], &ns].concat(),
        )
        .await;
        assert_eq!(pg["spec"]["replicas"], 1, "{env}");
        let pod = kj(
            &fleet,
            env,
            &[&["get", "pod", "postgres-0"][..], &ns].concat(),
        )
        .await;
        assert_eq!(pod["spec"]["containers"][0]["image"], "postgres:18-alpine");
        let pvc = kj(
            &fleet,
            env,
            &[&["get", "pvc", "postgres-data-postgres-0"][..], &ns].concat(),
        )
        .await;
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "20Gi");
        let s = kj(
            &fleet,
            env,
            &[&["get", "service", "postgres"][..], &ns].concat(),
        )
        .await;
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(port_numbers(&s), [(5432, 5432)]);
        let s = kj(
            &fleet,
            env,
            &[&["get", "service", "postgres-headless"][..], &ns].concat(),
        )
        .await;
        assert_eq!(s["spec"]["clusterIP"], "None", "{env}: headless");

        let d = kj(
            &fleet,
            env,
            &[&["get", "deployment", "pgbouncer"][..], &ns].concat(),
        )
        .await;
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "edoburu/pgbouncer:v1.25.1-p0"
        );
        let s = kj(
            &fleet,
            env,
            &[&["get", "service", "pgbouncer"][..], &ns].concat(),
        )
        .await;
        assert_eq!(ports(&s), [("postgresql".to_string(), 5432, 5432, 0)]);

        let d = kj(
            &fleet,
            env,
            &[&["get", "deployment", "redis"][..], &ns].concat(),
        )
        .await;
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], "redis:7-alpine");
        let redis_pods = kj(
            &fleet,
            env,
            &[&["get", "pods", "-l", "app=redis"][..], &ns].concat(),
        )
        .await;
        let p = &redis_pods["items"][0];
        let vol = p["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["mountPath"] == "/data"))
            .and_then(|m| m["name"].as_str())
            .expect("/data mount");
        assert!(
            p["spec"]["volumes"].as_array().is_some_and(|v| v
                .iter()
                .any(|v| v["name"] == vol && v.get("emptyDir").is_some())),
            "{env}: /data is an emptyDir"
        );
        let s = kj(
            &fleet,
            env,
            &[&["get", "service", "redis"][..], &ns].concat(),
        )
        .await;
        assert_eq!(port_numbers(&s), [(6379, 6379)]);

        let r = kj(
            &fleet,
            env,
            &[&["get", "statefulset", "rabbitmq"][..], &ns].concat(),
        )
        .await;
        assert_eq!(
            r["spec"]["template"]["spec"]["containers"][0]["image"],
            "rabbitmq:3-management-alpine"
        );
        let s = kj(
            &fleet,
            env,
            &[&["get", "service", "rabbitmq"][..], &ns].concat(),
        )
        .await;
        assert_eq!(port_numbers(&s), [(5672, 5672), (15672, 15672)]);

        let s = kj(
            &fleet,
            env,
            &[&["get", "service", "postgres-exporter"][..], &ns].concat(),
        )
        .await;
        assert_eq!(port_numbers(&s), [(9187, 9187)]);
        for name in ["oracle-rnd", "oracle-prod"] {
            let s = kj(&fleet, env, &[&["get", "service", name][..], &ns].concat()).await;
            assert_eq!(s["spec"]["type"], "ExternalName", "{env}/{name}");
        }
    }
    fleet.shutdown().await;
}

/// MinIO, monitoring, observability, ArgoCD and ingress Services and ports.
#[tokio::test]
async fn platform_services_and_ports_match() {
    let fleet = fleet().await;
    for env in ENVS {
        let d = kj(&fleet, env, &["get", "deployment", "minio", "-n", "minio"]).await;
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "minio/minio:latest"
        );
        let pvc = kj(&fleet, env, &["get", "pvc", "minio-data", "-n", "minio"]).await;
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "50Gi");
        let s = kj(&fleet, env, &["get", "service", "minio", "-n", "minio"]).await;
        assert_eq!(
            ports(&s),
            [
                ("api".to_string(), 9000, 9000, 0),
                ("console".to_string(), 9001, 9001, 0)
            ]
        );
        let s = kj(
            &fleet,
            env,
            &["get", "service", "minio-nodeport", "-n", "minio"],
        )
        .await;
        assert_eq!(s["spec"]["type"], "NodePort");
        let np: Vec<(i64, i64)> = ports(&s).into_iter().map(|(_, _, t, n)| (n, t)).collect();
        assert_eq!(np, [(30091, 9000), (30090, 9001)], "{env}: minio-nodeport");

        for (ns, name, want) in [
            ("monitoring", "prometheus-grafana", vec![(80, 3000)]),
            (
                "monitoring",
                "prometheus-kube-prometheus-prometheus",
                vec![(9090, 9090)],
            ),
            (
                "monitoring",
                "prometheus-kube-prometheus-alertmanager",
                vec![(9093, 9093)],
            ),
            ("monitoring", "loki", vec![(3100, 3100)]),
            ("observability", "jaeger-query", vec![(16686, 16686)]),
            (
                "observability",
                "jaeger-collector",
                vec![(14250, 14250), (14268, 14268)],
            ),
            ("argocd", "argocd-server", vec![(80, 8080), (443, 8080)]),
        ] {
            let s = kj(&fleet, env, &["get", "service", name, "-n", ns]).await;
            assert_eq!(port_numbers(&s), want, "{env}: {ns}/{name}");
        }
        let j = kj(
            &fleet,
            env,
            &["get", "deployment", "jaeger", "-n", "observability"],
        )
        .await;
        assert_eq!(
            j["spec"]["template"]["spec"]["containers"][0]["image"],
            "jaegertracing/all-in-one:1.55"
        );
        let s = kj(
            &fleet,
            env,
            &[
                "get",
                "service",
                "ingress-nginx-controller",
                "-n",
                "ingress-nginx",
            ],
        )
        .await;
        assert_eq!(s["spec"]["type"], "LoadBalancer");
    }
    fleet.shutdown().await;
}

/// "Backups": the four CronJobs, schedules in Asia/Jakarta, Forbid, history 3, the
/// `part-of: goapps-backup` label and no `app=` label.
#[tokio::test]
async fn cronjobs_match_the_backups_table() {
    let fleet = fleet().await;
    for env in ENVS {
        for (name, schedule) in [
            ("postgres-backup-morning", "0 6 * * *"),
            ("postgres-backup-afternoon", "0 14 * * *"),
            ("postgres-backup-night", "0 22 * * *"),
            ("minio-backup-to-disk", "0 3 * * *"),
        ] {
            let cj = kj(&fleet, env, &["get", "cronjob", name, "-n", "database"]).await;
            let spec = &cj["spec"];
            assert_eq!(spec["schedule"], schedule, "{env}/{name}");
            assert_eq!(spec["timeZone"], "Asia/Jakarta", "{env}/{name}");
            assert_eq!(spec["concurrencyPolicy"], "Forbid", "{env}/{name}");
            assert_eq!(spec["successfulJobsHistoryLimit"], 3, "{env}/{name}");
            assert_eq!(spec["failedJobsHistoryLimit"], 3, "{env}/{name}");
            let labels = &cj["metadata"]["labels"];
            assert_eq!(
                labels["app.kubernetes.io/part-of"], "goapps-backup",
                "{env}/{name}"
            );
            assert!(
                labels.get("app").is_none(),
                "{env}/{name} has no app= label"
            );
        }
        let by_label = kj(
            &fleet,
            env,
            &[
                "get",
                "cronjobs",
                "-n",
                "database",
                "-l",
                "app.kubernetes.io/part-of=goapps-backup",
            ],
        )
        .await;
        assert_eq!(by_label["items"].as_array().map(Vec::len), Some(4), "{env}");
    }
    fleet.shutdown().await;
}

fn b64decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

/// The Secrets by name and keys (fake values).
#[tokio::test]
async fn secrets_match_by_name_and_keys() {
    let fleet = fleet().await;
    for env in ENVS {
        let app = app_ns(env);
        let mut rows: Vec<(&str, &str, &str, &[&str])> = vec![
            (
                "database",
                "postgres-secret",
                "Opaque",
                &["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"],
            ),
            (
                "minio",
                "minio-secret",
                "Opaque",
                &["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"],
            ),
            (
                "database",
                "minio-secret",
                "Opaque",
                &["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"],
            ),
            (
                "database",
                "s3-cloud-credentials",
                "Opaque",
                &[
                    "S3_ENDPOINT",
                    "S3_BUCKET",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                ],
            ),
            (
                "minio",
                "minio-tls",
                "Opaque",
                &["public.crt", "private.key"],
            ),
            (
                "database",
                "rabbitmq-secret",
                "Opaque",
                &["RABBITMQ_USER", "RABBITMQ_PASSWORD"],
            ),
            (
                "argocd",
                "argocd-initial-admin-secret",
                "Opaque",
                &["password"],
            ),
        ];
        for ns in [
            "ingress-nginx",
            app.as_str(),
            "monitoring",
            "argocd",
            "minio",
            "kubernetes-dashboard",
        ] {
            rows.push((
                ns,
                "goapps-tls",
                "kubernetes.io/tls",
                &["tls.crt", "tls.key"],
            ));
        }
        for (ns, name, ty, keys) in rows {
            let s = kj(&fleet, env, &["get", "secret", name, "-n", ns]).await;
            assert_eq!(s["type"], ty, "{env}: {ns}/{name}");
            let mut have: Vec<&str> = s["data"]
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            have.sort_unstable();
            let mut want = keys.to_vec();
            want.sort_unstable();
            assert_eq!(have, want, "{env}: {ns}/{name} keys");
        }
        let pg = kj(
            &fleet,
            env,
            &["get", "secret", "postgres-secret", "-n", "database"],
        )
        .await;
        assert_eq!(
            b64decode(pg["data"]["POSTGRES_DB"].as_str().unwrap_or("")),
            b"goapps"
        );
        if env == "staging" {
            assert_eq!(
                b64decode(pg["data"]["POSTGRES_USER"].as_str().unwrap_or("")),
                b"stgapps"
            );
        }
    }
    fleet.shutdown().await;
}

/// "Applications": `<service>-<env>` (staging automated, production manual and OutOfSync),
/// `infra-*` without a suffix and automated; the API under `/argocd`, only `/healthz` at the root.
#[tokio::test]
async fn argocd_apps_under_the_rootpath() {
    let fleet = fleet().await;
    let http = reqwest::Client::new();
    for env in ENVS {
        let argo = fleet.argocd(env).expect("argocd");
        let health = http
            .get(format!("{}/healthz", argo.url()))
            .send()
            .await
            .expect("healthz");
        assert!(health.status().is_success(), "{env}: /healthz at the root");
        let root_api = http
            .get(format!("{}/api/v1/applications", argo.url()))
            .bearer_auth(argo.token())
            .send()
            .await
            .expect("root api");
        assert_eq!(root_api.status().as_u16(), 404, "{env}: no API at the root");
        assert!(argo.api_url().ends_with("/argocd"));
        let list: Value = http
            .get(format!("{}/api/v1/applications", argo.api_url()))
            .bearer_auth(argo.token())
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        let items = list["items"].as_array().expect("items");
        let app = |name: &str| {
            items
                .iter()
                .find(|a| a["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{env}: app {name}"))
        };
        for svc in ["finance-service", "iam-service", "frontend"] {
            let a = app(&format!("{svc}-{env}"));
            assert_eq!(a["spec"]["project"], "goapps");
            assert_eq!(
                a["spec"]["source"]["repoURL"],
                "https://github.com/mutugading/goapps-infra.git"
            );
            let automated = a["spec"]["syncPolicy"].get("automated").is_some();
            assert_eq!(automated, env == "staging", "{env}: {svc} auto-sync");
            if env == "production" {
                assert_eq!(
                    a["status"]["sync"]["status"], "OutOfSync",
                    "{svc}-production"
                );
            }
        }
        for infra in ["infra-database", "infra-backup", "infra-minio"] {
            let a = app(infra);
            assert_eq!(
                a["spec"]["syncPolicy"]["automated"]["selfHeal"], true,
                "{env}: {infra} automated"
            );
        }
        assert_eq!(items.len(), 6, "{env}: six applications");
    }
    fleet.shutdown().await;
}

/// MinIO speaks HTTPS with the simulator's test CA; staging's newest dump is an empty gzip
/// under the real name while its Job says Complete; B2 is one bucket with `<env>/` prefixes.
#[tokio::test]
async fn minio_https_and_the_empty_newest_dump() {
    use opsdeck::sources::backups::s3::S3Lister;
    let fleet = fleet().await;
    let minio = fleet.minio("staging").expect("staging minio");
    let https = minio.https_url().expect("https");
    assert!(https.starts_with("https://127.0.0.1:"));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(opsdeck::sim::s3::CA_CERT.as_bytes())
    {
        roots.add(c.expect("ca pem")).expect("ca");
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .expect("client");
    let resp = client
        .get(format!("{https}/postgres-backups?list-type=2"))
        .send()
        .await
        .expect("TLS handshake with the test CA");
    assert_eq!(resp.status().as_u16(), 403, "unsigned requests are refused");
    // Plain HTTP is not what MinIO speaks there.
    let plain = reqwest::Client::new()
        .get(https.replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP is answered: {plain:?}");

    let objects = S3Lister::new(
        &minio.url(),
        "postgres-backups",
        "",
        "us-east-1",
        opsdeck::sim::s3::ACCESS_KEY.into(),
        opsdeck::sim::s3::SECRET_KEY.into(),
    )
    .expect("lister")
    .list_all()
    .await
    .expect("list");
    let newest = objects
        .iter()
        .max_by_key(|o| o.name.clone())
        .expect("objects");
    assert!(
        newest.name.starts_with("staging_goapps_") && newest.name.ends_with(".sql.gz"),
        "{}",
        newest.name
    );
    assert_eq!(newest.size, Some(20), "the newest dump is an empty gzip");
    assert!(
        objects
            .iter()
            .filter(|o| o.size.unwrap_or(0) > 1_000_000)
            .count()
            >= 15
    );

    // The same runs on the VPS disk, kept under the fleet's directory.
    let disk = fleet.dir().join("staging-goapps-backup/postgres");
    let newest_file = disk.join(&newest.name);
    let bytes = std::fs::read(&newest_file).expect("newest dump on disk");
    assert_eq!(bytes, opsdeck::sim::s3::EMPTY_GZIP);

    // Every Job of the newest runs says Complete.
    let jobs = kj(&fleet, "staging", &["get", "jobs", "-n", "database"]).await;
    for j in jobs["items"].as_array().expect("jobs") {
        assert_eq!(j["status"]["succeeded"], 1, "{}", j["metadata"]["name"]);
    }

    let cfg = std::fs::read_to_string(fleet.config_path()).expect("config");
    assert!(cfg.contains("prefix = \"staging/\"") && cfg.contains("prefix = \"production/\""));
    assert!(cfg.contains("bucket = \"goapps-backups\""));
    assert!(cfg.contains("staging-goapps-backup/postgres"));
    fleet.shutdown().await;
}

/// PgBouncer admits only `postgres` to its console; Redis keeps the default RDB schedule.
#[tokio::test]
async fn pgbouncer_console_and_redis_persistence() {
    use opsdeck::config::Endpoint;
    use opsdeck::sources::pgbouncer::Console;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = fleet().await;
    let (bouncer, redis) = fleet.data_servers("staging").expect("data servers");
    let at = Endpoint::Address {
        host: "127.0.0.1".into(),
        port: bouncer.addr().port(),
    };
    assert_eq!(opsdeck::sim::pgbouncer::USER, "postgres");
    Console::connect(&at, "postgres", Some(opsdeck::sim::pgbouncer::PASSWORD))
        .await
        .expect("postgres is an admin user");
    let err = Console::connect(&at, "stgapps", Some(opsdeck::sim::pgbouncer::PASSWORD))
        .await
        .err()
        .expect("stgapps is refused");
    assert!(format!("{err:?} {err}").contains("not allowed"), "{err}");

    let mut sock = tokio::net::TcpStream::connect(redis.addr())
        .await
        .expect("redis");
    sock.write_all(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n*2\r\n$4\r\nINFO\r\n$11\r\npersistence\r\n")
        .await
        .expect("write");
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    tokio::time::timeout(WAIT, async {
        while !got.contains("aof_enabled") {
            let n = sock.read(&mut buf).await.expect("read");
            assert!(n > 0, "redis closed: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .expect("redis answered");
    assert!(got.contains("3600 1 300 100 60 10000"), "{got}");
    assert!(got.contains("aof_enabled:0"), "{got}");
    assert!(!got.contains("rdb_saves:0\r\n"), "{got}");
    fleet.shutdown().await;
}
