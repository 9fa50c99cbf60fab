//! `opsdeck init`: writes a commented config for this machine. Clusters come from the
//! kubeconfig contexts found here (`$KUBECONFIG`, K3s's `/etc/rancher/k3s/k3s.yaml`,
//! `~/.kube/config`); per cluster, the panels are those its API shows: the Services, Secrets
//! and CronJobs named in target-environment.md. What does not exist is written as a comment
//! that says why. Secrets are only ever written as `*_secret = "ns/name:key"` references.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use kube::Api;
use kube::api::ListParams;

use crate::cli::exit;
use crate::config::{ClusterConfig, Config};

/// How long one request to a cluster's API may take during discovery.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The well-known kubeconfig places, in the order they are read.
const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";

/// One context found in a kubeconfig file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundContext {
    pub file: PathBuf,
    pub context: String,
    pub server: String,
}

/// Every context of the kubeconfig files on this machine, one per API server (K3s's file is
/// usually copied to `~/.kube/config`: the copy is not a second cluster).
pub fn find_contexts() -> Vec<FoundContext> {
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        files.extend(std::env::split_paths(&v).filter(|p| !p.as_os_str().is_empty()));
    }
    files.push(PathBuf::from(K3S_KUBECONFIG));
    if let Some(home) = std::env::home_dir() {
        files.push(home.join(".kube/config"));
    }
    let mut seen_servers = BTreeSet::new();
    let mut out = Vec::new();
    for file in files {
        let file = std::path::absolute(&file).unwrap_or(file);
        let kc = match kube::config::Kubeconfig::read_from(&file) {
            Ok(kc) => kc,
            Err(e) => {
                match std::fs::File::open(&file) {
                    Err(io) if io.kind() == std::io::ErrorKind::NotFound => {}
                    Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => eprintln!(
                        "opsdeck init: cannot read {}: permission denied (run as root, or copy it to ~/.kube/config and chmod 600)",
                        file.display()
                    ),
                    _ => eprintln!("opsdeck init: skipping {}: {e}", file.display()),
                }
                continue;
            }
        };
        for named in &kc.contexts {
            let Some(ctx) = named.context.as_ref() else {
                continue;
            };
            let server = kc
                .clusters
                .iter()
                .find(|c| c.name == ctx.cluster)
                .and_then(|c| c.cluster.as_ref())
                .and_then(|c| c.server.clone())
                .unwrap_or_default();
            if !seen_servers.insert(server.clone()) {
                continue;
            }
            out.push(FoundContext {
                file: file.clone(),
                context: named.name.clone(),
                server,
            });
        }
    }
    out
}

/// What discovery found on one cluster.
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    /// Why the API could not be asked (then nothing else is known).
    pub unreachable: Option<String>,
    pub app_namespace: Option<String>,
    /// `ns/name` of each Service that exists.
    pub services: BTreeSet<String>,
    /// `ns/name` of each Secret that exists, with its keys; `Err` when it could not be read.
    pub secrets: Vec<(String, Result<Vec<String>, String>)>,
    /// Non-secret values read from `database/s3-cloud-credentials` (endpoint and bucket).
    pub b2: Option<(String, String)>,
    pub backup_cronjobs: Vec<String>,
    /// `POSTGRES_USER` of `database/postgres-secret` (a user name, not a secret).
    pub postgres_user: Option<String>,
    pub redis_deployment: bool,
}

impl Discovered {
    fn has_service(&self, s: &str) -> bool {
        self.services.contains(s)
    }

    /// `Ok(())` when the Secret exists with every key; else why not, for a comment.
    fn secret_keys(&self, secret: &str, keys: &[&str]) -> Result<(), String> {
        match self.secrets.iter().find(|(n, _)| n == secret) {
            None => Err(format!("Secret {secret} not found")),
            Some((_, Err(e))) => Err(format!("Secret {secret} could not be read: {e}")),
            Some((_, Ok(have))) => {
                let missing: Vec<&str> = keys
                    .iter()
                    .copied()
                    .filter(|k| !have.iter().any(|h| h == k))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "Secret {secret} has no key {}",
                        missing.join(", no key ")
                    ))
                }
            }
        }
    }
}

async fn bounded<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
        Ok(r) => r.map_err(|e| e.to_string()),
    }
}

fn not_found(e: &str) -> bool {
    e.contains("404") || e.to_lowercase().contains("not found")
}

/// Asks one cluster's API what exists there.
pub async fn discover(cluster: &ClusterConfig) -> Discovered {
    let mut d = Discovered::default();
    let client = match crate::sources::kube::client_for(cluster).await {
        Ok(c) => c,
        Err(e) => {
            d.unreachable = Some(e);
            return d;
        }
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let listed = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        namespaces.list(&ListParams::default()),
    )
    .await
    {
        Err(_) => Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())),
        Ok(r) => r.map_err(|e| crate::sources::reflect::describe_error(&e)),
    };
    match listed {
        Err(e) => {
            d.unreachable = Some(e);
            return d;
        }
        Ok(list) => {
            let mut apps: Vec<String> = list
                .items
                .iter()
                .filter_map(|n| n.metadata.name.clone())
                .filter(|n| n.starts_with("goapps-"))
                .collect();
            apps.sort();
            d.app_namespace = apps.into_iter().next();
        }
    }
    for (ns, name) in [
        ("database", "pgbouncer"),
        ("database", "redis"),
        ("argocd", "argocd-server"),
        ("minio", "minio"),
    ] {
        let api: Api<Service> = Api::namespaced(client.clone(), ns);
        if let Ok(Some(_)) = bounded(api.get_opt(name)).await {
            d.services.insert(format!("{ns}/{name}"));
        }
    }
    for (ns, name) in [
        ("database", "postgres-secret"),
        ("minio", "minio-secret"),
        ("database", "s3-cloud-credentials"),
        ("argocd", "argocd-initial-admin-secret"),
    ] {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        match bounded(api.get_opt(name)).await {
            Ok(None) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => d.secrets.push((format!("{ns}/{name}"), Err(e))),
            Ok(Some(s)) => {
                let data = s.data.unwrap_or_default();
                let keys: Vec<String> = data.keys().cloned().collect();
                if name == "postgres-secret" {
                    // A user name, not a credential: the console admits only `postgres`.
                    d.postgres_user = data
                        .get("POSTGRES_USER")
                        .and_then(|v| String::from_utf8(v.0.clone()).ok())
                        .map(|v| v.trim().to_string());
                }
                if name == "s3-cloud-credentials" {
                    // The endpoint and bucket are not credentials; the config needs them.
                    let text = |k: &str| {
                        data.get(k)
                            .and_then(|v| String::from_utf8(v.0.clone()).ok())
                            .map(|v| v.trim().to_string())
                            .filter(|v| !v.is_empty())
                    };
                    if let (Some(e), Some(b)) = (text("S3_ENDPOINT"), text("S3_BUCKET")) {
                        d.b2 = Some((e, b));
                    }
                }
                d.secrets.push((format!("{ns}/{name}"), Ok(keys)));
            }
        }
    }
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "database");
    if let Ok(list) = bounded(cronjobs.list(&ListParams::default())).await {
        d.backup_cronjobs = list
            .items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .filter(|n| n.starts_with("postgres-backup-"))
            .collect();
        d.backup_cronjobs.sort();
    }
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client, "database");
    d.redis_deployment = matches!(bounded(deployments.get_opt("redis")).await, Ok(Some(_)));
    d
}

fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A cluster name for a context: the context's own name, unless it is K3s's `default`; then
/// the environment of the app namespace (`goapps-staging` -> `staging`), else the host part of
/// the API server.
pub fn cluster_name(ctx: &FoundContext, app_namespace: Option<&str>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    if ctx.context != "default" && !ctx.context.is_empty() {
        return clean(&ctx.context);
    }
    if let Some(env) = app_namespace.and_then(|n| n.strip_prefix("goapps-")) {
        return clean(env);
    }
    let host = ctx
        .server
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split([':', '/'])
        .next()
        .unwrap_or("");
    if host.is_empty() || host == "127.0.0.1" || host == "localhost" {
        return "default".into();
    }
    clean(host)
}

/// Whether a cluster looks like production (its name, context or app namespace says so).
pub fn looks_protected(name: &str, context: &str, app_namespace: Option<&str>) -> bool {
    [Some(name), Some(context), app_namespace]
        .into_iter()
        .flatten()
        .any(|s| {
            let s = s.to_lowercase();
            s.contains("prod")
        })
}

/// The config text for the clusters found, each with what discovery found on it.
pub fn render(clusters: &[(FoundContext, Discovered)]) -> String {
    let mut t = String::new();
    t.push_str(
        "# opsdeck configuration, written by `opsdeck init` from what this machine's kubeconfig\n\
         # contexts and their clusters' APIs showed. Check it with `opsdeck config check`, then\n\
         # `opsdeck doctor` (it checks every source end to end and prints the fix for each problem).\n\
         #\n\
         # Secrets are never written here: each is a reference, `X_secret = \"namespace/name:key\"`\n\
         # (read through that cluster's API), or `X_env = \"VAR\"` / `X_file = \"PATH\"`.\n\
         # Panels whose Service or Secret was not found are left as comments that say why.\n\n\
         keymap = \"default\"\n",
    );
    if clusters.is_empty() {
        t.push_str(
            "\n# No kubeconfig context was found ($KUBECONFIG, /etc/rancher/k3s/k3s.yaml, ~/.kube/config).\n\
             # Add a [[cluster]] with kubeconfig = \"PATH\" and context = \"NAME\", or run `opsdeck init`\n\
             # again where kubectl works.\n",
        );
    }
    let mut used: Vec<String> = Vec::new();
    for (ctx, d) in clusters {
        let mut name = cluster_name(ctx, d.app_namespace.as_deref());
        if used.contains(&name) {
            let mut i = 2;
            while used.contains(&format!("{name}-{i}")) {
                i += 1;
            }
            name = format!("{name}-{i}");
        }
        used.push(name.clone());
        render_cluster(&mut t, &name, ctx, d);
    }
    t
}

fn render_cluster(t: &mut String, name: &str, ctx: &FoundContext, d: &Discovered) {
    let protected = looks_protected(name, &ctx.context, d.app_namespace.as_deref());
    let _ = writeln!(t, "\n\n# --- {name}: API server {} ---", ctx.server);
    t.push_str("[[cluster]]\n");
    let _ = writeln!(t, "name = {}", q(name));
    let _ = writeln!(t, "kubeconfig = {}", q(&ctx.file.display().to_string()));
    let _ = writeln!(t, "context = {}", q(&ctx.context));
    match &d.app_namespace {
        Some(ns) => {
            let _ = writeln!(t, "app_namespace = {}", q(ns));
        }
        None => {
            t.push_str("# app_namespace = \"goapps-ENV\"   # no goapps-* namespace was found\n")
        }
    }
    let _ = writeln!(
        t,
        "protected = {protected}{}",
        if protected {
            "   # production: typed confirmation for sync, rollback and quick actions"
        } else {
            ""
        }
    );
    if let Some(e) = &d.unreachable {
        let _ = writeln!(
            t,
            "# The API could not be asked at init time ({}), so no panel was discovered.\n\
             # Run `opsdeck doctor --cluster {name}` for the fix, then `opsdeck init --force` again.",
            one_line(e)
        );
        return;
    }

    // PgBouncer: the console admits only its admin user (edoburu image: admin_users = postgres).
    let pg_secret = d.secret_keys("database/postgres-secret", &["POSTGRES_PASSWORD"]);
    let mut pgbouncer = String::from(
        "[cluster.pgbouncer]\n\
         service = \"database/pgbouncer:5432\"\n\
         user = \"postgres\"        # the console admits only admin_users/stats_users; the image's default admin is postgres\n\
         password_secret = \"database/postgres-secret:POSTGRES_PASSWORD\"\n",
    );
    if let Some(user) = d.postgres_user.as_deref().filter(|u| *u != "postgres") {
        let _ = writeln!(
            pgbouncer,
            "# POSTGRES_USER here is {user:?}, not postgres: PgBouncer's userlist holds only that user and its\n\
             # console admits only postgres, so the panel is refused until the pgbouncer Deployment sets\n\
             #   - name: STATS_USERS\n\
             #     value: {}\n\
             # Then set user = {} above. `opsdeck doctor` checks it.",
            q(user),
            q(user)
        );
    }
    section(
        t,
        if !d.has_service("database/pgbouncer") {
            Err("Service database/pgbouncer not found".to_string())
        } else {
            pg_secret
        },
        &pgbouncer,
    );

    let mut redis = String::from("[cluster.redis]\nservice = \"database/redis:6379\"\n");
    if d.redis_deployment {
        redis.push_str(
            "workload = \"database/deployment/redis\"   # lets opsdeck see its data volume (emptyDir)\n",
        );
    }
    section(
        t,
        if d.has_service("database/redis") {
            Ok(())
        } else {
            Err("Service database/redis not found".into())
        },
        &redis,
    );

    let mut argocd = String::from(
        "[cluster.argocd]\n\
         # argocd-server runs with server.insecure and --rootpath=/argocd: plain HTTP on port 80,\n\
         # the API under /argocd.\n\
         service = \"argocd/argocd-server:80\"\n",
    );
    match d.secret_keys("argocd/argocd-initial-admin-secret", &["password"]) {
        Ok(()) => argocd.push_str(
            "user = \"admin\"\npassword_secret = \"argocd/argocd-initial-admin-secret:password\"\n",
        ),
        Err(why) => {
            let _ = writeln!(
                argocd,
                "# {why}: give an API token (argocd account generate-token), e.g.\n# token_env = \"ARGOCD_TOKEN\""
            );
        }
    }
    section(
        t,
        if d.has_service("argocd/argocd-server") {
            Ok(())
        } else {
            Err("Service argocd/argocd-server not found".into())
        },
        &argocd,
    );

    render_backups(t, name, d);
}

fn render_backups(t: &mut String, name: &str, d: &Discovered) {
    let env = d
        .app_namespace
        .as_deref()
        .and_then(|n| n.strip_prefix("goapps-"))
        .unwrap_or(name);
    let mut sources: Vec<(Result<(), String>, String)> = Vec::new();
    sources.push((
        if d.backup_cronjobs.is_empty() {
            Err("no CronJob database/postgres-backup-* found".into())
        } else {
            Ok(())
        },
        format!(
            "[[cluster.backups.source]]\nkind = \"cronjob\"\nname = \"cronjobs\"\nnamespace = \"database\"\nprefix = \"postgres-backup-\"   # found: {}\n",
            d.backup_cronjobs.join(", ")
        ),
    ));
    let minio = "[[cluster.backups.source]]\n\
        # MinIO speaks HTTPS only, with the public wildcard certificate: clients skip verification.\n\
        kind = \"s3\"\nname = \"minio\"\nservice = \"minio/minio:9000\"\nbucket = \"postgres-backups\"\n\
        access_key_secret = \"minio/minio-secret:MINIO_ROOT_USER\"\n\
        secret_key_secret = \"minio/minio-secret:MINIO_ROOT_PASSWORD\"\n"
        .to_string();
    sources.push((
        if !d.has_service("minio/minio") {
            Err("Service minio/minio not found".into())
        } else {
            d.secret_keys(
                "minio/minio-secret",
                &["MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"],
            )
        },
        minio,
    ));
    let b2_keys = d.secret_keys(
        "database/s3-cloud-credentials",
        &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    );
    let (b2_ok, url, bucket) = match (&d.b2, b2_keys) {
        (Some((endpoint, bucket)), Ok(())) => {
            let url = if endpoint.contains("://") {
                endpoint.clone()
            } else {
                format!("https://{endpoint}")
            };
            (Ok(()), url, bucket.clone())
        }
        (_, Err(e)) => (
            Err(format!("{e} (B2 uploads are skipped without it)")),
            "https://S3_ENDPOINT".to_string(),
            "S3_BUCKET".to_string(),
        ),
        (None, Ok(())) => (
            Err("Secret database/s3-cloud-credentials has no S3_ENDPOINT or S3_BUCKET".into()),
            "https://S3_ENDPOINT".to_string(),
            "S3_BUCKET".to_string(),
        ),
    };
    sources.push((
        b2_ok,
        format!(
            "[[cluster.backups.source]]\n# Backblaze B2: one bucket, a prefix per environment (from database/s3-cloud-credentials).\n\
             kind = \"s3\"\nname = \"b2\"\nurl = {}\nbucket = {}\nprefix = {}\n\
             access_key_secret = \"database/s3-cloud-credentials:AWS_ACCESS_KEY_ID\"\n\
             secret_key_secret = \"database/s3-cloud-credentials:AWS_SECRET_ACCESS_KEY\"\n",
            q(&url),
            q(&bucket),
            q(&format!("{env}/"))
        ),
    ));
    let disk = if env == "production" {
        "/goapps-backup/postgres"
    } else {
        "/staging-goapps-backup/postgres"
    };
    let host = crate::runbook::audit::hostname();
    sources.push((
        if Path::new(disk).is_dir() {
            Ok(())
        } else {
            Err(format!("{disk} is not on this machine (it is on the cluster's VPS)"))
        },
        format!(
            "[[cluster.backups.source]]\nkind = \"dir\"\nname = \"vps-disk\"\npath = {}\npattern = \"{env}_goapps_*.sql.gz\"\nhost = {}   # read only on that machine\n",
            q(disk),
            q(&host)
        ),
    ));
    let any = sources.iter().any(|(ok, _)| ok.is_ok());
    if any {
        t.push_str(
            "\n[cluster.backups]\nmax_age = \"8h30m\"   # three runs a day: 06:00, 14:00, 22:00 WIB\n",
        );
    } else {
        t.push_str("\n# [cluster.backups]   # no backup source was found\n");
    }
    for (ok, text) in sources {
        section(t, ok, &text);
    }
}

/// Writes a table as it is, or as comments headed by why it was left out.
fn section(t: &mut String, ok: Result<(), String>, text: &str) {
    t.push('\n');
    match ok {
        Ok(()) => t.push_str(text),
        Err(why) => {
            let _ = writeln!(t, "# Not enabled: {}.", one_line(&why));
            for line in text.lines() {
                if line.starts_with('#') {
                    let _ = writeln!(t, "{line}");
                } else {
                    let _ = writeln!(t, "# {line}");
                }
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where `init` writes without `--output`: `$XDG_CONFIG_HOME/opsdeck/config.toml`.
fn default_output() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::home_dir().map(|h| h.join(".config")))
        .map(|d| d.join("opsdeck/config.toml"))
}

/// `opsdeck init [--output FILE] [--force]`: 0 written, 3 refused (file exists, no place),
/// 4 internal (the text did not pass the config checks, or it could not be written).
pub async fn run(output: Option<&Path>, force: bool) -> i32 {
    let to_stdout = output.is_some_and(|p| p == Path::new("-"));
    let path = match output {
        Some(p) => p.to_path_buf(),
        None => match default_output() {
            Some(p) => p,
            None => {
                eprintln!("opsdeck init: no home directory; pass --output FILE");
                return exit::USAGE;
            }
        },
    };
    if !to_stdout && !force && std::fs::symlink_metadata(&path).is_ok() {
        eprintln!(
            "opsdeck init: {} already exists; not overwritten (pass --force to replace it, or --output FILE)",
            path.display()
        );
        return exit::USAGE;
    }
    let contexts = find_contexts();
    let mut found = Vec::new();
    for ctx in contexts {
        let cluster = ClusterConfig {
            name: ctx.context.clone(),
            kubeconfig: Some(ctx.file.clone()),
            context: Some(ctx.context.clone()),
            ..ClusterConfig::default()
        };
        eprintln!(
            "opsdeck init: asking {} (context {} in {})",
            ctx.server,
            ctx.context,
            ctx.file.display()
        );
        let d = match tokio::time::timeout(Duration::from_secs(60), discover(&cluster)).await {
            Ok(d) => d,
            Err(_) => Discovered {
                unreachable: Some("discovery took longer than 60s".into()),
                ..Discovered::default()
            },
        };
        found.push((ctx, d));
    }
    let text = render(&found);
    // The file must pass the same checks as `opsdeck config check`.
    if let Err(errors) = Config::parse(&text, &path) {
        eprintln!("opsdeck init: the written config would not be valid (a bug):");
        for e in errors {
            eprintln!("{e}");
        }
        return exit::INTERNAL;
    }
    if to_stdout {
        print!("{text}");
        return exit::OK;
    }
    if let Err(e) = write_private(&path, &text) {
        eprintln!("opsdeck init: cannot write {}: {e}", path.display());
        return exit::INTERNAL;
    }
    println!(
        "wrote {} ({} cluster{}); next: opsdeck --config {} doctor",
        path.display(),
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        path.display()
    );
    exit::OK
}

/// Writes the file whole (a temporary file renamed into place), mode 0600.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".opsdeck-init-")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
