//! The PgBouncer source: polls one cluster's admin console (database `pgbouncer`) with the
//! simple query protocol only (the console refuses the extended one), reads `SHOW VERSION`,
//! `SHOW POOLS`, `SHOW STATS` and `SHOW DATABASES` by column name, and publishes whole
//! [`PgbouncerSnapshot`]s. Also owns the two steps both database-ish sources share: reaching
//! an [`Endpoint`] ([`connect_endpoint`]) and reading a secret ([`resolve_secret`]).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_postgres::SimpleQueryMessage;
use tokio_util::sync::CancellationToken;

use super::{Feature, FeatureData, SourceEvent};
use crate::config::{ClusterConfig, Endpoint, SecretRef, parse_duration};
use crate::model::pgbouncer::{self, PgbouncerSnapshot, ResultTable, Thresholds};

/// How long one connect or one poll may take before it counts as a failure.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to the admin console; the text is what the panel shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgbouncerError {
    #[error("PgBouncer config: {0}")]
    Config(String),
    #[error(
        "PgBouncer console at {addr} is unreachable: {reason}; check that PgBouncer runs and the address is right"
    )]
    Unreachable { addr: String, reason: String },
    #[error(
        "PgBouncer console at {addr} refused user {user:?}: authentication failed ({detail}); check the password and that the user is in admin_users or stats_users"
    )]
    Auth {
        addr: String,
        user: String,
        detail: String,
    },
    #[error("PgBouncer console at {addr}: {what} failed: {detail}")]
    Query {
        addr: String,
        what: String,
        detail: String,
    },
    #[error("PgBouncer console at {addr}: {0}", addr = .1)]
    Parse(pgbouncer::ParseError, String),
    /// The login was right but the console admits only `admin_users`/`stats_users`.
    #[error(
        "PgBouncer console at {addr} refused user {user:?}: {detail}; it admits only admin_users and stats_users: set STATS_USERS in the pgbouncer Deployment"
    )]
    Refused {
        addr: String,
        user: String,
        detail: String,
    },
}

/// `[cluster.pgbouncer.postgres]`: the Postgres behind PgBouncer, read for `pg_stat_activity`
/// (who holds connections, PgBouncer or direct) and `max_connections`.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresTarget {
    pub endpoint: Endpoint,
    /// Default `postgres`.
    pub user: String,
    pub password: Option<SecretRef>,
    /// Default `postgres`.
    pub database: String,
}

impl PostgresTarget {
    fn from_table(t: &toml::Table) -> Result<PostgresTarget, String> {
        let get = |k: &str, d: &str| {
            t.get(k)
                .and_then(toml::Value::as_str)
                .unwrap_or(d)
                .to_string()
        };
        Ok(PostgresTarget {
            endpoint: Endpoint::from_table(t)?.ok_or(
                "postgres: needs an endpoint: address = \"host:port\" or service = \"database/postgres:5432\"",
            )?,
            user: get("user", "postgres"),
            password: SecretRef::from_table(t, "password").map_err(|e| format!("postgres: {e}"))?,
            database: get("database", "postgres"),
        })
    }
}

/// The `[cluster.pgbouncer]` table, read.
#[derive(Debug, Clone, PartialEq)]
pub struct PgbouncerConfig {
    pub endpoint: Endpoint,
    pub user: String,
    pub password: Option<SecretRef>,
    pub poll: Duration,
    pub thresholds: Thresholds,
    pub postgres: Option<PostgresTarget>,
}

impl PgbouncerConfig {
    /// Reads the table (already checked by `config check`); defaults: user `postgres` (the
    /// only user the edoburu/pgbouncer image admits to its console unless STATS_USERS or
    /// ADMIN_USERS is set), poll 2s, wait_warn 1s, wait_crit 5s.
    pub fn from_table(t: &toml::Table) -> Result<PgbouncerConfig, String> {
        let endpoint = Endpoint::from_table(t)?
            .ok_or("needs an endpoint: address = \"host:port\" or service = \"ns/name:port\"")?;
        let dur = |key: &str, default: u64| -> Result<Duration, String> {
            match t.get(key).and_then(toml::Value::as_str) {
                Some(s) => parse_duration(s).map_err(|e| format!("{key}: {e}")),
                None => Ok(Duration::from_secs(default)),
            }
        };
        Ok(PgbouncerConfig {
            endpoint,
            user: t
                .get("user")
                .and_then(toml::Value::as_str)
                .unwrap_or("postgres")
                .to_string(),
            password: SecretRef::from_table(t, "password")?,
            poll: dur("poll", 2)?.max(Duration::from_millis(100)),
            thresholds: Thresholds {
                wait_warn: dur("wait_warn", 1)?,
                wait_crit: dur("wait_crit", 5)?,
            },
            postgres: match t.get("postgres").and_then(toml::Value::as_table) {
                Some(p) => Some(PostgresTarget::from_table(p)?),
                None => None,
            },
        })
    }
}

/// Whether the cluster has a `[cluster.pgbouncer]` table.
pub fn configured(cluster: &ClusterConfig) -> bool {
    cluster.pgbouncer.is_some()
}

/// Opens a TCP connection to an endpoint: the one place that decides how a server is reached.
pub async fn connect_endpoint(endpoint: &Endpoint) -> Result<TcpStream, String> {
    match endpoint {
        Endpoint::Address { host, port } => {
            match tokio::time::timeout(TIMEOUT, TcpStream::connect((host.as_str(), *port))).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    Ok(s)
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Err("connection refused".into())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
            }
        }
        Endpoint::Url(url) => {
            // `tcp://host:port` or a bare authority after the scheme: take the authority.
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let (host, port) = authority
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("url {url} names no port"))?;
            Box::pin(connect_endpoint(&Endpoint::Address {
                host: host.to_string(),
                port,
            }))
            .await
        }
        // The sources turn these into a local forward first (`sources::reachable_endpoint`).
        Endpoint::Service { .. } => {
            Err("a service endpoint must be resolved through a port-forward first".into())
        }
    }
}

/// Reads a secret from the environment, a file or the cluster's Kubernetes API. Errors name
/// where the secret is, never its value.
pub async fn resolve_secret(cluster: &ClusterConfig, secret: &SecretRef) -> Result<String, String> {
    let SecretRef::Kube {
        namespace,
        name,
        key,
    } = secret
    else {
        return secret.resolve_local();
    };
    let client = crate::sources::kube::client_for(cluster).await?;
    let api: kube::Api<Secret> = kube::Api::namespaced(client, namespace);
    let s = tokio::time::timeout(TIMEOUT, api.get(name))
        .await
        .map_err(|_| {
            format!(
                "reading secret {namespace}/{name}: no answer within {}s",
                TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| match e {
            kube::Error::Api(s) => {
                format!("reading secret {namespace}/{name}: {} {}", s.code, s.reason)
            }
            other => format!("reading secret {namespace}/{name}: {other}"),
        })?;
    let bytes = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .ok_or_else(|| format!("secret {namespace}/{name} has no key {key}"))?;
    String::from_utf8(bytes.0.clone())
        .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|_| format!("secret {namespace}/{name}:{key} is not UTF-8 text"))
}

/// Turns a simple-query reply into tables, one per statement: the columns come from the
/// RowDescription (sent even when there are no rows), values as text.
pub fn tables(messages: &[SimpleQueryMessage]) -> Vec<ResultTable> {
    let mut out: Vec<ResultTable> = Vec::new();
    let mut current: Option<ResultTable> = None;
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                current = Some(ResultTable {
                    columns: cols.iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                });
            }
            SimpleQueryMessage::Row(row) => {
                let t = current.get_or_insert_with(|| ResultTable {
                    columns: row.columns().iter().map(|c| c.name().to_string()).collect(),
                    rows: Vec::new(),
                });
                t.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(_) => {
                out.extend(current.take());
            }
            _ => {}
        }
    }
    out.extend(current);
    out
}

/// An open admin console session.
pub struct Console {
    client: tokio_postgres::Client,
    addr: String,
}

impl Console {
    /// Connects and logs in to the admin console (database `pgbouncer`).
    pub async fn connect(
        endpoint: &Endpoint,
        user: &str,
        password: Option<&str>,
    ) -> Result<Console, PgbouncerError> {
        let addr = endpoint.to_string();
        let stream =
            connect_endpoint(endpoint)
                .await
                .map_err(|reason| PgbouncerError::Unreachable {
                    addr: addr.clone(),
                    reason,
                })?;
        let mut config = tokio_postgres::Config::new();
        config
            .user(user)
            .dbname("pgbouncer")
            .application_name("opsdeck");
        if let Some(p) = password {
            config.password(p);
        }
        let connected =
            tokio::time::timeout(TIMEOUT, config.connect_raw(stream, tokio_postgres::NoTls)).await;
        let (client, connection) = match connected {
            Err(_) => {
                return Err(PgbouncerError::Unreachable {
                    addr,
                    reason: format!("no login answer within {}s", TIMEOUT.as_secs()),
                });
            }
            Ok(Err(e)) => return Err(classify_login(&e, addr, user)),
            Ok(Ok(c)) => c,
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "pgbouncer console connection ended");
            }
        });
        Ok(Console { client, addr })
    }

    /// Runs one `SHOW` command and returns its table.
    pub async fn show(&self, what: &str) -> Result<ResultTable, PgbouncerError> {
        let q = format!("SHOW {what}");
        let err = |detail: String| PgbouncerError::Query {
            addr: self.addr.clone(),
            what: q.clone(),
            detail,
        };
        let messages = tokio::time::timeout(TIMEOUT, self.client.simple_query(&q))
            .await
            .map_err(|_| err(format!("no answer within {}s", TIMEOUT.as_secs())))?
            .map_err(|e| err(describe(&e)))?;
        tables(&messages)
            .into_iter()
            .next()
            .ok_or_else(|| err("no result set".into()))
    }

    /// One poll: the four SHOW commands, parsed.
    pub async fn poll(
        &self,
        prev: Option<&PgbouncerSnapshot>,
        thresholds: Thresholds,
    ) -> Result<PgbouncerSnapshot, PgbouncerError> {
        let parse = |e| PgbouncerError::Parse(e, self.addr.clone());
        let version = pgbouncer::parse_version(&self.show("VERSION").await?).map_err(parse)?;
        let pools = pgbouncer::parse_pools(&self.show("POOLS").await?).map_err(parse)?;
        let stats = pgbouncer::parse_stats(&self.show("STATS").await?).map_err(parse)?;
        let databases =
            pgbouncer::parse_databases(&self.show("DATABASES").await?).map_err(parse)?;
        Ok(pgbouncer::build(
            prev,
            version,
            pools,
            databases,
            stats,
            jiff::Timestamp::now(),
            thresholds,
        ))
    }

    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                msg = s.to_string();
                src = s.source();
            }
            msg
        }
    }
}

/// Tells a refused login apart from a console that cannot be talked to.
fn classify_login(e: &tokio_postgres::Error, addr: String, user: &str) -> PgbouncerError {
    let detail = describe(e);
    let lower = detail.to_lowercase();
    let auth = e
        .as_db_error()
        .is_some_and(|db| db.code().code().starts_with("28"))
        || ["authentication", "password", "not allowed", "no such user"]
            .iter()
            .any(|w| lower.contains(w));
    // PgBouncer says `not allowed` to a user that logged in but is in neither admin_users nor
    // stats_users, and `no such user` when it is not in the auth file either (1.2x).
    let refused = ["not allowed", "no such user"]
        .iter()
        .any(|w| lower.contains(w));
    if refused {
        PgbouncerError::Refused {
            addr,
            user: user.to_string(),
            detail,
        }
    } else if auth {
        PgbouncerError::Auth {
            addr,
            user: user.to_string(),
            detail,
        }
    } else {
        PgbouncerError::Unreachable {
            addr,
            reason: detail,
        }
    }
}

/// The PgBouncer source between polls: its console connection and the last snapshot (for
/// the waiting history).
struct PgbouncerPoller {
    cluster: ClusterConfig,
    config: PgbouncerConfig,
    console: Option<Console>,
    prev: Option<Arc<PgbouncerSnapshot>>,
    postgres: Option<tokio_postgres::Client>,
}

/// Who holds Postgres's connections: client backends by application and address.
const PG_ACTIVITY: &str = "SELECT coalesce(application_name, ''), coalesce(host(client_addr), ''), count(*) \
     FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2";

/// Connects to Postgres (`[cluster.pgbouncer.postgres]`).
async fn connect_postgres(
    cluster: &ClusterConfig,
    target: &PostgresTarget,
) -> Result<tokio_postgres::Client, String> {
    let password = match &target.password {
        Some(s) => Some(
            resolve_secret(cluster, s)
                .await
                .map_err(|e| format!("password: {e}"))?,
        ),
        None => None,
    };
    let endpoint = super::reachable_endpoint(cluster, &target.endpoint).await?;
    let stream = connect_endpoint(&endpoint).await?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(&target.user)
        .dbname(&target.database)
        .application_name("opsdeck");
    if let Some(p) = &password {
        config.password(p);
    }
    let (client, connection) =
        tokio::time::timeout(TIMEOUT, config.connect_raw(stream, tokio_postgres::NoTls))
            .await
            .map_err(|_| format!("no login answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|e| describe(&e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

/// One read of `max_connections` and `pg_stat_activity` (the console's own connection
/// included: it is one of them).
async fn read_postgres(
    client: &tokio_postgres::Client,
    endpoint: &str,
) -> Result<pgbouncer::PostgresConnections, String> {
    let q = format!("SHOW max_connections; {PG_ACTIVITY}");
    let messages = tokio::time::timeout(TIMEOUT, client.simple_query(&q))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| describe(&e))?;
    let t = tables(&messages);
    let max = t
        .first()
        .and_then(|t| t.rows.first())
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .ok_or("SHOW max_connections gave no number")?;
    let rows = t.get(1).map(|t| t.rows.as_slice()).unwrap_or_default();
    Ok(pgbouncer::PostgresConnections::from_rows(
        endpoint, max, rows,
    ))
}

impl PgbouncerPoller {
    /// Postgres's connections when configured; a failure is kept in the data, not raised.
    async fn postgres(&mut self) -> Option<pgbouncer::PostgresConnections> {
        let target = self.config.postgres.clone()?;
        let where_ = target.endpoint.to_string();
        if self.postgres.as_ref().is_none_or(|c| c.is_closed()) {
            match connect_postgres(&self.cluster, &target).await {
                Ok(c) => self.postgres = Some(c),
                Err(e) => return Some(postgres_error(&where_, e)),
            }
        }
        let client = self.postgres.as_ref()?;
        match read_postgres(client, &where_).await {
            Ok(p) => Some(p),
            Err(e) => {
                self.postgres = None;
                Some(postgres_error(&where_, e))
            }
        }
    }
}

fn postgres_error(endpoint: &str, e: String) -> pgbouncer::PostgresConnections {
    pgbouncer::PostgresConnections {
        endpoint: endpoint.to_string(),
        max_connections: 0,
        total: 0,
        clients: Vec::new(),
        error: Some(e),
    }
}

impl super::Poller for PgbouncerPoller {
    fn reset(&mut self) {
        self.console = None;
    }

    async fn poll(&mut self) -> Result<FeatureData, String> {
        let result = async {
            if self.console.as_ref().is_none_or(Console::is_closed) {
                let password = match &self.config.password {
                    Some(s) => Some(
                        resolve_secret(&self.cluster, s)
                            .await
                            .map_err(|e| PgbouncerError::Config(format!("password: {e}")))?,
                    ),
                    None => None,
                };
                let endpoint = super::reachable_endpoint(&self.cluster, &self.config.endpoint)
                    .await
                    .map_err(|reason| PgbouncerError::Unreachable {
                        addr: self.config.endpoint.to_string(),
                        reason,
                    })?;
                self.console = Some(
                    Console::connect(&endpoint, &self.config.user, password.as_deref()).await?,
                );
            }
            match &self.console {
                Some(c) => c.poll(self.prev.as_deref(), self.config.thresholds).await,
                None => Err(PgbouncerError::Config("no console".into())),
            }
        }
        .await;
        let result = match result {
            Err(PgbouncerError::Refused { user, detail, .. }) => Ok(PgbouncerSnapshot::refused(
                pgbouncer::ConsoleRefusal { user, detail },
                None,
                jiff::Timestamp::now(),
                self.config.thresholds,
            )),
            other => other,
        };
        let result = match result {
            Ok(mut snap) => {
                snap.postgres = self.postgres().await;
                Ok(snap)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(snap) => {
                let snap = Arc::new(snap);
                self.prev = Some(snap.clone());
                Ok(FeatureData::Pgbouncer(snap))
            }
            Err(e) => {
                self.console = None;
                Err(e.to_string())
            }
        }
    }
}

/// Runs the PgBouncer source of cluster `index` until `cancel` fires.
pub async fn run(
    index: usize,
    cluster: ClusterConfig,
    tx: UnboundedSender<SourceEvent>,
    cancel: CancellationToken,
) {
    let Some(table) = cluster.pgbouncer.as_ref() else {
        return;
    };
    let config = match PgbouncerConfig::from_table(table) {
        Ok(c) => c,
        Err(e) => {
            let reason = PgbouncerError::Config(e).to_string();
            super::report_failure(&tx, index, Feature::Pgbouncer, reason);
            return;
        }
    };
    let every = config.poll;
    let poller = PgbouncerPoller {
        cluster,
        config,
        console: None,
        prev: None,
        postgres: None,
    };
    super::poll_loop(index, Feature::Pgbouncer, every, &tx, &cancel, poller).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_sub_table_and_default_user() {
        let t: toml::Table = toml::from_str(
            "service = \"database/pgbouncer:5432\"\n[postgres]\nservice = \"database/postgres:5432\"\npassword_secret = \"database/postgres-secret:POSTGRES_PASSWORD\"\n",
        )
        .unwrap();
        let c = PgbouncerConfig::from_table(&t).unwrap();
        assert_eq!(c.user, "postgres");
        let pg = c.postgres.expect("postgres");
        assert_eq!(pg.endpoint.to_string(), "database/postgres:5432");
        assert_eq!(
            (pg.user.as_str(), pg.database.as_str()),
            ("postgres", "postgres")
        );
        assert!(pg.password.is_some());
    }
}
