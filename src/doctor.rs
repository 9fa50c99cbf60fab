//! `opsdeck doctor`: checks every configured source of every cluster end to end with the
//! sources' own clients (Kubernetes, PgBouncer, Redis, ArgoCD, the backup sources) and prints
//! per source `ok` or what failed and the exact fix. Each check is bounded by a timeout.
//!
//! Output, one line per source: `CLUSTER/SOURCE: ok (DETAIL)`, or `CLUSTER/SOURCE: warn: WHAT`
//! / `CLUSTER/SOURCE: FAIL: WHAT` followed by indented `fix:` lines. Exit 0 all ok,
//! 1 warnings only, 2 a failure, 3 usage or config error.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::cli::exit;
use crate::config::{ClusterConfig, Config, Endpoint, SecretRef};
use crate::sources::argocd::{ArgoError, ArgocdClient, ArgocdSettings};
use crate::sources::backups::{BackupsConfig, CronJobWatches, SourceConfig, SourceSpec};
use crate::sources::pgbouncer::{Console, PgbouncerConfig, PgbouncerError};
use crate::sources::redis::{RedisConfig, RedisConn, RedisError};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One source's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub cluster: String,
    pub source: String,
    pub level: Level,
    /// What was seen (ok: a detail; otherwise what went wrong).
    pub message: String,
    /// What to change, when something is wrong.
    pub fix: Option<String>,
}

impl Verdict {
    /// The lines printed for it.
    pub fn render(&self) -> String {
        let head = format!("{}/{}", self.cluster, self.source);
        let mut s = match self.level {
            Level::Ok if self.message.is_empty() => format!("{head}: ok"),
            Level::Ok => format!("{head}: ok ({})", self.message),
            Level::Warn => format!("{head}: warn: {}", self.message),
            Level::Fail => format!("{head}: FAIL: {}", self.message),
        };
        if let Some(fix) = &self.fix {
            for (i, line) in fix.lines().enumerate() {
                s.push_str(if i == 0 { "\n  fix: " } else { "\n       " });
                s.push_str(line);
            }
        }
        s
    }
}

/// A problem found by a check: what, and the fix.
type Problem = (Level, String, Option<String>);

fn fail(what: impl Into<String>, fix: impl Into<String>) -> Problem {
    (Level::Fail, what.into(), Some(fix.into()))
}

/// `opsdeck doctor [--cluster NAME] [--timeout D]` on a loaded config.
pub async fn run(config: &Config, cluster: Option<&str>, timeout: Duration) -> i32 {
    if let Some(name) = cluster
        && config.cluster(name).is_none()
    {
        let names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "opsdeck: no cluster named {name:?}; configured: {}",
            names.join(", ")
        );
        return exit::USAGE;
    }
    let mut worst = Level::Ok;
    for c in &config.clusters {
        if cluster.is_some_and(|n| n != c.name) {
            continue;
        }
        for v in check_cluster(c, timeout).await {
            println!("{}", v.render());
            worst = worst.max(v.level);
        }
    }
    crate::forward::stop_internal().await;
    match worst {
        Level::Ok => exit::OK,
        Level::Warn => exit::WARN,
        Level::Fail => exit::CRIT,
    }
}

/// Every check of one cluster, in a fixed order: kubernetes, then each configured feature.
pub async fn check_cluster(c: &ClusterConfig, timeout: Duration) -> Vec<Verdict> {
    let mut out = Vec::new();
    let verdict = |source: &str, r: Result<String, Problem>| match r {
        Ok(detail) => Verdict {
            cluster: c.name.clone(),
            source: source.to_string(),
            level: Level::Ok,
            message: detail,
            fix: None,
        },
        Err((level, message, fix)) => Verdict {
            cluster: c.name.clone(),
            source: source.to_string(),
            level,
            message,
            fix,
        },
    };
    let kube = bounded(timeout, check_kubernetes(c)).await;
    let client = kube.as_ref().ok().map(|(_, client)| client.clone());
    out.push(verdict("kubernetes", kube.map(|(d, _)| d)));
    let api = ApiState { client, timeout };
    if let Some(t) = &c.pgbouncer {
        let r = bounded(timeout, check_pgbouncer(c, t, &api)).await;
        out.push(verdict("pgbouncer", r));
    }
    if let Some(t) = &c.redis {
        let r = bounded(timeout, check_redis(c, t, &api)).await;
        out.push(verdict("redis", r));
    }
    if let Some(t) = &c.argocd {
        let r = bounded(timeout, check_argocd(c, t, &api)).await;
        out.push(verdict("argocd", r));
    }
    if let Some(t) = &c.backups {
        match BackupsConfig::from_table(t) {
            Err(e) => out.push(verdict(
                "backups",
                Err(fail(
                    e,
                    "correct [cluster.backups]; see `opsdeck config check`",
                )),
            )),
            Ok(cfg) => {
                let raw = t.get("source").and_then(toml::Value::as_array);
                for (i, src) in cfg.sources.iter().enumerate() {
                    let table = raw
                        .and_then(|a| a.get(i))
                        .and_then(toml::Value::as_table)
                        .cloned()
                        .unwrap_or_default();
                    let r = bounded(timeout, check_backup_source(c, &cfg, src, &table, &api)).await;
                    out.push(verdict(&format!("backups/{}", src.name), r));
                }
            }
        }
    }
    out
}

/// The cluster's API client when it answered, and the per-check timeout.
struct ApiState {
    client: Option<Client>,
    timeout: Duration,
}

async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Problem>>,
) -> Result<T, Problem> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            format!("no answer within {}", human(timeout)),
            "check that the server runs and is reachable from here; a slow link may need --timeout",
        )),
    }
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `kubeconfig PATH, context CTX` of a cluster, for messages.
fn kube_place(c: &ClusterConfig) -> String {
    let kc = crate::config::kubeconfig_value(c);
    let kc = if kc.is_empty() {
        "the default kubeconfig (~/.kube/config)".to_string()
    } else {
        format!("kubeconfig {kc}")
    };
    let ctx = crate::config::kube_context(c).unwrap_or_else(|_| "(current context)".into());
    format!("{kc}, context {ctx}")
}

fn api_server(c: &ClusterConfig) -> Option<String> {
    let kc = crate::config::load_kubeconfig(c).ok()?;
    let name = c.context.clone().or(kc.current_context.clone())?;
    let ctx = kc
        .contexts
        .iter()
        .find(|n| n.name == name)?
        .context
        .clone()?;
    kc.clusters
        .iter()
        .find(|n| n.name == ctx.cluster)?
        .cluster
        .as_ref()?
        .server
        .clone()
}

async fn check_kubernetes(c: &ClusterConfig) -> Result<(String, Client), Problem> {
    let place = kube_place(c);
    let client = crate::sources::kube::client_for(c).await.map_err(|e| {
        fail(
            format!("cannot use {place}: {e}"),
            "point kubeconfig and context of this [[cluster]] at a kubeconfig that works with kubectl \
             (on the VPS: kubeconfig = \"/etc/rancher/k3s/k3s.yaml\", context = \"default\")",
        )
    })?;
    let server = api_server(c).unwrap_or_else(|| "the API server".into());
    match crate::sources::reflect::probe(&client).await {
        Ok(_) => Ok((server, client)),
        Err(e) => {
            let why = crate::sources::reflect::describe_error(&e);
            let fix = if why.contains("401") || why.to_lowercase().contains("unauthorized") {
                format!(
                    "the credentials in {place} are not accepted by {server}; copy a fresh kubeconfig from the VPS (/etc/rancher/k3s/k3s.yaml)"
                )
            } else if why.contains("403") || why.to_lowercase().contains("forbidden") {
                format!(
                    "the user of {place} may not list nodes; use an admin kubeconfig (K3s: /etc/rancher/k3s/k3s.yaml)"
                )
            } else {
                format!(
                    "{server} ({place}) does not answer from here: check that K3s runs (systemctl status k3s) \
                     and that this machine reaches that address (from a laptop, a copy of k3s.yaml keeps \
                     server: https://127.0.0.1:6443; set it to the VPS address or tunnel it)"
                )
            };
            Err(fail(format!("API server {server} ({place}): {why}"), fix))
        }
    }
}

/// Checks that every secret a table refers to can be read; each problem names the key and fix.
async fn check_secrets(
    c: &ClusterConfig,
    table: &toml::Table,
    api: &ApiState,
) -> Result<(), Problem> {
    let mut bases: Vec<String> = Vec::new();
    for key in table.keys() {
        for suffix in ["_env", "_file", "_secret"] {
            if let Some(base) = key.strip_suffix(suffix)
                && !bases.iter().any(|b| b == base)
            {
                bases.push(base.to_string());
            }
        }
    }
    for base in bases {
        let Ok(Some(r)) = SecretRef::from_table(table, &base) else {
            continue;
        };
        check_secret(c, &base, &r, api).await?;
    }
    Ok(())
}

async fn check_secret(
    c: &ClusterConfig,
    base: &str,
    r: &SecretRef,
    api: &ApiState,
) -> Result<(), Problem> {
    match r {
        SecretRef::Env(var) => r.resolve_local().map(|_| ()).map_err(|e| {
            fail(
                format!("{base}_env: {e}"),
                format!("export {var}=... in the environment opsdeck starts from, or use {base}_secret = \"namespace/name:key\""),
            )
        }),
        SecretRef::File(path) => r.resolve_local().map(|_| ()).map_err(|e| {
            fail(
                format!("{base}_file: {e}"),
                format!("write the {base} into {} (chmod 600), or use {base}_secret = \"namespace/name:key\"", path.display()),
            )
        }),
        SecretRef::Kube {
            namespace,
            name,
            key,
        } => {
            let Some(client) = api.client.clone() else {
                return Err(fail(
                    format!("{base}_secret = \"{namespace}/{name}:{key}\" cannot be read: the cluster's API does not answer"),
                    "fix kubernetes first (above)",
                ));
            };
            let secrets: Api<Secret> = Api::namespaced(client, namespace);
            let got = tokio::time::timeout(api.timeout, secrets.get_opt(name))
                .await
                .map_err(|_| {
                    fail(
                        format!("reading Secret {namespace}/{name}: no answer within {}", human(api.timeout)),
                        "check the cluster's API (above)",
                    )
                })?;
            let secret = match got {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Err(fail(
                        format!("Secret {namespace}/{name} not found ({base}_secret = \"{namespace}/{name}:{key}\")"),
                        format!(
                            "create Secret {namespace}/{name} with key {key} \
                             (kubectl -n {namespace} create secret generic {name} --from-literal={key}=...), \
                             or the config points at the wrong Secret: set {base}_secret to the one that holds it"
                        ),
                    ));
                }
                Err(e) => {
                    let why = crate::sources::reflect::describe_error(&e);
                    let fix = if why.contains("403") || why.to_lowercase().contains("forbidden") {
                        format!("the user of {} may not read Secrets in {namespace}: grant it get on secrets there, or use {base}_env / {base}_file", kube_place(c))
                    } else {
                        "check the cluster's API (above)".to_string()
                    };
                    return Err(fail(format!("reading Secret {namespace}/{name}: {why}"), fix));
                }
            };
            let data = secret.data.unwrap_or_default();
            match data.get(key) {
                Some(v) if !v.0.is_empty() => Ok(()),
                Some(_) => Err(fail(
                    format!("Secret {namespace}/{name} key {key} is empty"),
                    format!("put the {base} into key {key} of Secret {namespace}/{name}"),
                )),
                None => {
                    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                    Err(fail(
                        format!(
                            "Secret {namespace}/{name} has no key {key} (it has: {})",
                            if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
                        ),
                        format!(
                            "add key {key} to Secret {namespace}/{name}, or the config points at the wrong key: \
                             set {base}_secret = \"{namespace}/{name}:KEY\" with one of its keys"
                        ),
                    ))
                }
            }
        }
    }
}

/// Reads a secret for a check (after `check_secrets` passed).
async fn secret_value(
    c: &ClusterConfig,
    r: Option<&SecretRef>,
    base: &str,
) -> Result<Option<String>, Problem> {
    match r {
        None => Ok(None),
        Some(r) => crate::sources::pgbouncer::resolve_secret(c, r)
            .await
            .map(Some)
            .map_err(|e| {
                fail(
                    format!("{base}: {e}"),
                    format!("check where {base} points ({r})"),
                )
            }),
    }
}

/// The fix for an endpoint that cannot be reached.
fn endpoint_fix(ep: &Endpoint) -> String {
    match ep {
        Endpoint::Service {
            namespace,
            name,
            port,
        } => format!(
            "check that Service {namespace}/{name} exists with port {port} and has a Ready pod \
             (kubectl -n {namespace} get svc,endpoints {name}); or correct service = \"namespace/name:port\""
        ),
        Endpoint::Address { host, port } => format!(
            "check that {host}:{port} is reachable from this machine, or use service = \"namespace/name:port\" (through the cluster's API)"
        ),
        Endpoint::Url(u) => format!(
            "check that {u} is reachable from this machine, or use service = \"namespace/name:port\" (through the cluster's API)"
        ),
    }
}

async fn reach(c: &ClusterConfig, ep: &Endpoint, api: &ApiState) -> Result<Endpoint, Problem> {
    if matches!(ep, Endpoint::Service { .. }) && api.client.is_none() {
        return Err(fail(
            format!("{ep}: the cluster's API does not answer, so no port-forward"),
            "fix kubernetes first (above)",
        ));
    }
    crate::sources::reachable_endpoint(c, ep)
        .await
        .map_err(|e| fail(format!("{ep}: {e}"), endpoint_fix(ep)))
}

fn stats_users_fix(user: &str) -> String {
    format!(
        "PgBouncer admits to its console only admin_users and stats_users; the edoburu/pgbouncer image \
         defaults to admin_users = postgres and no stats_users, and its userlist holds only POSTGRES_USER.\n\
         If POSTGRES_USER (database/postgres-secret) is \"postgres\", set user = \"postgres\" here.\n\
         Otherwise add to the pgbouncer Deployment's container env (goapps-infra: base/database/pgbouncer/deployment.yaml):\n\
         \x20 - name: STATS_USERS\n\
         \x20   value: \"{user}\"\n\
         then: kubectl -n database rollout restart deployment/pgbouncer"
    )
}

async fn check_pgbouncer(
    c: &ClusterConfig,
    t: &toml::Table,
    api: &ApiState,
) -> Result<String, Problem> {
    let cfg = PgbouncerConfig::from_table(t)
        .map_err(|e| fail(e, "correct [cluster.pgbouncer]; see `opsdeck config check`"))?;
    check_secrets(c, t, api).await?;
    let password = secret_value(c, cfg.password.as_ref(), "password").await?;
    let ep = reach(c, &cfg.endpoint, api).await?;
    let console = Console::connect(&ep, &cfg.user, password.as_deref())
        .await
        .map_err(|e| match &e {
            PgbouncerError::Auth { detail, .. } => {
                let lower = detail.to_lowercase();
                let fix = if lower.contains("password") && !lower.contains("not allowed") {
                    format!(
                        "the password does not match user {:?}: point password_* at that user's password \
                         (the fleet's: password_secret = \"database/postgres-secret:POSTGRES_PASSWORD\")\n{}",
                        cfg.user,
                        stats_users_fix(&cfg.user)
                    )
                } else {
                    stats_users_fix(&cfg.user)
                };
                fail(format!("{} refused the console to {:?}: {detail}", cfg.endpoint, cfg.user), fix)
            }
            PgbouncerError::Refused { detail, .. } => fail(
                format!("{} refused the console to {:?}: {detail}", cfg.endpoint, cfg.user),
                stats_users_fix(&cfg.user),
            ),
            PgbouncerError::Unreachable { reason, .. } => fail(
                format!("{}: {reason}", cfg.endpoint),
                format!(
                    "{}; the port must be PgBouncer's (5432, named postgresql)",
                    endpoint_fix(&cfg.endpoint)
                ),
            ),
            other => fail(other.to_string(), endpoint_fix(&cfg.endpoint)),
        })?;
    let pools = console
        .show("POOLS")
        .await
        .map_err(|e| fail(e.to_string(), stats_users_fix(&cfg.user)))?;
    Ok(format!(
        "{} as {:?}: SHOW POOLS answered {} pool{}",
        cfg.endpoint,
        cfg.user,
        pools.rows.len(),
        if pools.rows.len() == 1 { "" } else { "s" }
    ))
}

async fn check_redis(
    c: &ClusterConfig,
    t: &toml::Table,
    api: &ApiState,
) -> Result<String, Problem> {
    let mut cfg = RedisConfig::from_table(t)
        .map_err(|e| fail(e, "correct [cluster.redis]; see `opsdeck config check`"))?;
    check_secrets(c, t, api).await?;
    let password = secret_value(c, cfg.password.as_ref(), "password").await?;
    let configured = cfg.endpoint.clone();
    cfg.endpoint = reach(c, &configured, api).await?;
    let mut conn = RedisConn::connect(&cfg, password.as_deref())
        .await
        .map_err(|e| match &e {
            RedisError::Auth { detail, .. } => fail(
                format!("{configured}: login refused: {detail}"),
                "the fleet's Redis has no password: remove user and password_* from [cluster.redis], or point them at the right ones",
            ),
            RedisError::Unreachable { reason, .. } => fail(
                format!("{configured}: {reason}"),
                if cfg.tls {
                    format!("{}; or the server speaks plain TCP: remove tls = true", endpoint_fix(&configured))
                } else {
                    endpoint_fix(&configured)
                },
            ),
            other => fail(format!("{configured}: {other}"), endpoint_fix(&configured)),
        })?;
    let snap = conn.poll().await.map_err(|e| {
        fail(
            format!("{configured}: {e}"),
            format!(
                "{}; the port must be Redis's (6379)",
                endpoint_fix(&configured)
            ),
        )
    })?;
    if snap.version.is_empty() {
        return Err(fail(
            format!(
                "{configured}: the server answered, but not like Redis (INFO has no redis_version)"
            ),
            format!(
                "{}; the port must be Redis's (6379)",
                endpoint_fix(&configured)
            ),
        ));
    }
    let mut detail = format!("{configured}: Redis {}", snap.version);
    if let Some(w) = t.get("workload").and_then(toml::Value::as_str) {
        match workload_exists(api, w).await {
            Ok(true) => detail.push_str(&format!(", workload {w}")),
            Ok(false) => {
                return Err((
                    Level::Warn,
                    format!("Redis answers, but workload {w} was not found (its data volume cannot be shown)"),
                    Some("set workload = \"namespace/deployment|statefulset|daemonset/name\" to the Redis workload (the fleet's: database/deployment/redis)".into()),
                ));
            }
            Err(_) => {}
        }
    }
    Ok(detail)
}

async fn workload_exists(api: &ApiState, w: &str) -> Result<bool, String> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    let Some(client) = api.client.clone() else {
        return Err("no API".into());
    };
    let parts: Vec<&str> = w.split('/').collect();
    let [ns, kind, name] = parts.as_slice() else {
        return Err("bad workload".into());
    };
    let r = match *kind {
        "deployment" => Api::<Deployment>::namespaced(client, ns)
            .get_opt(name)
            .await
            .map(|o| o.is_some()),
        "statefulset" => Api::<StatefulSet>::namespaced(client, ns)
            .get_opt(name)
            .await
            .map(|o| o.is_some()),
        _ => Api::<DaemonSet>::namespaced(client, ns)
            .get_opt(name)
            .await
            .map(|o| o.is_some()),
    };
    r.map_err(|e| e.to_string())
}

/// An HTTP client for probes: any certificate, short timeouts.
fn probe_client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .build()
        .ok()
}

/// When `url` failed: does the same place answer with the other scheme? Returns that URL.
async fn other_scheme_answers(url: &str) -> Option<String> {
    let other = if let Some(rest) = url.strip_prefix("https://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("https://{rest}")
    } else {
        return None;
    };
    let client = probe_client()?;
    let resp = client.get(&other).send().await.ok()?;
    // A plain-HTTP server behind an https:// URL fails the handshake; one behind http:// that
    // really speaks TLS answers 400 to plain text, so only a non-400 answer counts.
    (resp.status() != reqwest::StatusCode::BAD_REQUEST || other.starts_with("https://"))
        .then_some(other)
}

/// When the API root did not answer: does ArgoCD answer under `/argocd` (its --rootpath)?
async fn argocd_under_rootpath(base: &str) -> Option<String> {
    let client = probe_client()?;
    let url = format!("{}/argocd", base.trim_end_matches('/'));
    let resp = client.get(format!("{url}/api/version")).send().await.ok()?;
    let ok = resp.status().is_success()
        && resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
    ok.then_some(url)
}

fn scheme_fix(configured: &Endpoint, working: &str, what: &str) -> String {
    let scheme = if working.starts_with("https://") {
        "HTTPS"
    } else {
        "plain HTTP"
    };
    match configured {
        Endpoint::Url(_) => format!("{what} speaks {scheme} there: set url = \"{working}\""),
        _ if working.starts_with("https://") => format!(
            "{what} behind {configured} speaks HTTPS, but it is dialled with plain HTTP: set tls = true"
        ),
        _ => format!(
            "{what} behind {configured} speaks plain HTTP, but it is dialled with HTTPS: set tls = false \
             (argocd-server with server.insecure: service = \"argocd/argocd-server:80\")"
        ),
    }
}

async fn check_argocd(
    c: &ClusterConfig,
    t: &toml::Table,
    api: &ApiState,
) -> Result<String, Problem> {
    let settings = ArgocdSettings::from_cluster(c).map_err(|e| {
        fail(
            e.to_string(),
            "correct [cluster.argocd]; see `opsdeck config check`",
        )
    })?;
    check_secrets(c, t, api).await?;
    let mut client = ArgocdClient::connect(c).await.map_err(|e| match &e {
        ArgoError::Config(m) if m.contains("service") => fail(
            format!("{}: {m}", settings.endpoint),
            "this opsdeck cannot dial ArgoCD through service = yet; on the VPS use \
             url = \"http://<ClusterIP of argocd/argocd-server>/argocd\" (kubectl -n argocd get svc argocd-server), \
             or a port-forward shortcut's URL",
        ),
        other => fail(other.to_string(), "correct [cluster.argocd]"),
    })?;
    let base = client.base_url().to_string();
    match client.list().await {
        Ok(list) => Ok(format!("{base}: {} applications", list.apps.len())),
        Err(e) => {
            let message = e.to_string();
            let fix = match &e {
                ArgoError::Unauthorized { fix, .. } => fix.clone(),
                ArgoError::Transport { .. } => match other_scheme_answers(&base).await {
                    Some(working) => {
                        let path_fix = argocd_under_rootpath(&working).await;
                        scheme_fix(&settings.endpoint, path_fix.as_deref().unwrap_or(&working), "ArgoCD")
                    }
                    None => endpoint_fix(&settings.endpoint),
                },
                ArgoError::Http { status: 404, .. } | ArgoError::Decode { .. } => {
                    match argocd_under_rootpath(&base).await {
                        Some(url) => match &settings.endpoint {
                            Endpoint::Url(_) => format!(
                                "ArgoCD serves its UI and API under /argocd (--rootpath): set url = \"{url}\" \
                                 (the API is {url}/api/v1/applications)"
                            ),
                            other => format!(
                                "ArgoCD behind {other} serves its UI and API under /argocd (--rootpath): \
                                 set base_path = \"/argocd\" in [cluster.argocd]"
                            ),
                        },
                        None => "check that this is ArgoCD's API server (argocd/argocd-server) and its base path (the fleet's is /argocd)".into(),
                    }
                }
                _ => endpoint_fix(&settings.endpoint),
            };
            Err(fail(message, fix))
        }
    }
}

async fn check_backup_source(
    c: &ClusterConfig,
    cfg: &BackupsConfig,
    src: &SourceConfig,
    table: &toml::Table,
    api: &ApiState,
) -> Result<String, Problem> {
    check_secrets(c, table, api).await?;
    let mut status =
        crate::model::backups::SourceStatus::new(&src.name, src.kind(), src.location());
    let watches = CronJobWatches::default();
    crate::sources::backups::poll_source(c, cfg, src, &mut status, &watches).await;
    if let Some(stale) = &status.stale {
        let fix = match &src.spec {
            SourceSpec::S3 { endpoint, .. } => {
                let base = match endpoint {
                    Endpoint::Url(u) => Some(u.clone()),
                    Endpoint::Service { .. } => {
                        match crate::sources::reachable_endpoint(c, endpoint).await {
                            Ok(Endpoint::Address { host, port }) => {
                                Some(format!("http://{host}:{port}"))
                            }
                            _ => None,
                        }
                    }
                    Endpoint::Address { host, port } => Some(format!("http://{host}:{port}")),
                };
                match base {
                    Some(b) => match other_scheme_answers(&b).await {
                        Some(working) if working.starts_with("https://") => match endpoint {
                            Endpoint::Url(_) => format!(
                                "the server speaks HTTPS only (MinIO: --certs-dir, the public wildcard certificate): set url = \"{working}\""
                            ),
                            _ => format!(
                                "the server behind {endpoint} speaks HTTPS only (MinIO: --certs-dir), but it is dialled with plain HTTP; reach it with url = \"https://...\" (certificate check skipped for the wildcard)"
                            ),
                        },
                        Some(working) => scheme_fix(endpoint, &working, "the server"),
                        None => format!(
                            "{}; check the bucket and the credentials",
                            endpoint_fix(endpoint)
                        ),
                    },
                    None => endpoint_fix(endpoint),
                }
            }
            SourceSpec::Cronjob { namespace, .. } => format!(
                "check the cluster's API (above) and that CronJobs in {namespace} can be listed"
            ),
            SourceSpec::Dir { path, .. } => format!(
                "{} must be readable here (it is the backup disk of the cluster's VPS; host = says which machine)",
                path.display()
            ),
        };
        return Err(fail(stale.reason.clone(), fix));
    }
    if status.not_local {
        return Ok(format!(
            "{}: read only on its host, not checked here",
            src.location()
        ));
    }
    if let SourceSpec::Cronjob {
        namespace, prefix, ..
    } = &src.spec
        && status.cronjobs.is_empty()
    {
        return Err((
            Level::Warn,
            format!("no CronJob matches {}", src.location()),
            Some(format!(
                "the fleet's backup CronJobs are {namespace}/postgres-backup-morning, -afternoon, -night: \
                 set prefix = \"postgres-backup-\" (now {:?}); kubectl -n {namespace} get cronjobs",
                prefix.as_deref().unwrap_or("")
            )),
        ));
    }
    let newest = status
        .newest
        .as_ref()
        .map(|b| format!(", newest {}", b.name))
        .unwrap_or_default();
    Ok(format!(
        "{}: {} found{newest}",
        src.location(),
        status.total
    ))
}
