//! PgBouncer pools: the rows of the admin console's `SHOW POOLS`, `SHOW STATS`,
//! `SHOW DATABASES` and `SHOW VERSION`, parsed **by column name** so every PgBouncer from 1.17
//! to 1.25 reads the same (protocols.md section 1), the waiting-clients history the tile draws
//! as sparklines, and the health rules that turn a snapshot into findings.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::findings::{RawFinding, Severity};

/// The `source` of PgBouncer findings and the key in `status --json`.
pub const SOURCE: &str = "pgbouncer";

/// How many history samples a snapshot keeps (about four minutes at the default 2 s poll).
pub const HISTORY: usize = 120;

/// Waiting clients for longer than this are critical whatever `maxwait` says.
pub const WAITING_CRIT_AFTER: Duration = Duration::from_secs(60);

/// One result set of a simple query, all values as text (the admin console sends text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultTable {
    fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A column the parser needs is absent: the PgBouncer is older or newer than anything known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "SHOW {command} has no column {column:?} (columns: {columns}); PgBouncer 1.17 to 1.25 are supported"
    )]
    MissingColumn {
        command: &'static str,
        column: &'static str,
        columns: String,
    },
    #[error("SHOW {command}: column {column:?} holds {value:?}, not a number")]
    NotANumber {
        command: &'static str,
        column: &'static str,
        value: String,
    },
    #[error("SHOW VERSION returned no row")]
    NoVersion,
}

/// Reads one row by column name.
struct Reader<'a> {
    table: &'a ResultTable,
    command: &'static str,
}

impl<'a> Reader<'a> {
    fn col(&self, name: &'static str) -> Result<usize, ParseError> {
        self.table
            .index(name)
            .ok_or_else(|| ParseError::MissingColumn {
                command: self.command,
                column: name,
                columns: self.table.columns.join(", "),
            })
    }

    fn text(&self, row: &'a [Option<String>], name: &'static str) -> Result<String, ParseError> {
        let i = self.col(name)?;
        Ok(row.get(i).cloned().flatten().unwrap_or_default())
    }

    fn opt_text(&self, row: &'a [Option<String>], name: &str) -> Option<String> {
        let i = self.table.index(name)?;
        row.get(i).cloned().flatten()
    }

    fn num(&self, row: &[Option<String>], name: &'static str) -> Result<u64, ParseError> {
        let i = self.col(name)?;
        self.parse_num(row.get(i).and_then(|v| v.as_deref()), name)
    }

    /// A column that only some versions have: 0 when absent.
    fn opt_num(&self, row: &[Option<String>], name: &'static str) -> Result<u64, ParseError> {
        match self.table.index(name) {
            Some(i) => self.parse_num(row.get(i).and_then(|v| v.as_deref()), name),
            None => Ok(0),
        }
    }

    fn parse_num(&self, v: Option<&str>, name: &'static str) -> Result<u64, ParseError> {
        let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(0);
        };
        // Negative numbers do not occur in these columns; treat them as 0 rather than fail.
        if let Ok(n) = v.parse::<i64>() {
            return Ok(n.max(0) as u64);
        }
        v.parse::<f64>()
            .map(|f| f.max(0.0) as u64)
            .map_err(|_| ParseError::NotANumber {
                command: self.command,
                column: name,
                value: v.to_string(),
            })
    }
}

/// One row of `SHOW POOLS`: a (database, user) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    pub database: String,
    pub user: String,
    pub cl_active: u64,
    pub cl_waiting: u64,
    pub sv_active: u64,
    pub sv_idle: u64,
    pub sv_used: u64,
    pub sv_tested: u64,
    pub sv_login: u64,
    /// `sv_active_cancel + sv_being_canceled` (1.18+; 0 before).
    pub sv_canceling: u64,
    /// `maxwait + maxwait_us / 1e6`: how long the oldest queued client has waited.
    pub maxwait_s: f64,
    pub pool_mode: String,
    /// Since when this pool has had clients waiting without a break (carried across polls).
    pub waiting_since: Option<Timestamp>,
}

impl PoolRow {
    /// Every server connection the pool holds, in any state.
    pub fn server_connections(&self) -> u64 {
        self.sv_active
            + self.sv_idle
            + self.sv_used
            + self.sv_tested
            + self.sv_login
            + self.sv_canceling
    }
}

/// One row of `SHOW DATABASES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseRow {
    pub name: String,
    pub host: String,
    pub port: String,
    pub database: String,
    pub pool_size: u64,
    /// `reserve_pool` before 1.24, `reserve_pool_size` from 1.24.
    pub reserve_pool: u64,
    pub pool_mode: String,
    pub max_connections: u64,
    pub current_connections: u64,
    pub paused: bool,
    pub disabled: bool,
}

/// One row of `SHOW STATS`; times in microseconds as PgBouncer reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    pub database: String,
    pub total_xact_count: u64,
    pub total_query_count: u64,
    /// Per second over the last `stats_period`.
    pub avg_xact_count: u64,
    pub avg_query_count: u64,
    pub avg_xact_time_us: u64,
    pub avg_query_time_us: u64,
    pub avg_wait_time_us: u64,
}

/// One point of the tile's sparklines: totals over every pool at one poll.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub at: Timestamp,
    pub cl_waiting: u64,
    pub maxwait_s: f64,
}

/// When waiting clients become findings (`wait_warn`, `wait_crit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub wait_warn: Duration,
    pub wait_crit: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            wait_warn: Duration::from_secs(1),
            wait_crit: Duration::from_secs(5),
        }
    }
}

/// Everything one poll of the admin console saw.
#[derive(Debug, Clone, PartialEq)]
pub struct PgbouncerSnapshot {
    /// As `SHOW VERSION` says it, e.g. `PgBouncer 1.18.0`.
    pub version: String,
    /// Without the console's own `pgbouncer` pool.
    pub pools: Vec<PoolRow>,
    pub databases: Vec<DatabaseRow>,
    pub stats: Vec<StatsRow>,
    /// Oldest first, at most [`HISTORY`] samples.
    pub history: Vec<Sample>,
    pub taken_at: Timestamp,
    pub thresholds: Thresholds,
    /// Set when the admin console turned the configured user away (not in `admin_users` or
    /// `stats_users`): pools and databases are then empty, and the tile says what to change.
    pub refused: Option<ConsoleRefusal>,
    /// Connections as Postgres sees them (`pg_stat_activity`), when `[cluster.pgbouncer.postgres]`
    /// is configured: shows the services that bypass PgBouncer.
    pub postgres: Option<PostgresConnections>,
}

/// The admin console's refusal of a user it does not list (`not allowed`, `no such user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleRefusal {
    pub user: String,
    /// What PgBouncer said.
    pub detail: String,
}

impl ConsoleRefusal {
    /// The change that lets `user` read the console: the edoburu/pgbouncer image writes
    /// `stats_users` from `STATS_USERS` (its default is `admin_users = postgres` and no
    /// `stats_users`).
    pub fn fix(&self) -> String {
        stats_users_snippet(&self.user)
    }
}

/// The Deployment snippet that lets `user` read PgBouncer's console (read-only `SHOW`s).
pub fn stats_users_snippet(user: &str) -> String {
    format!(
        "in the pgbouncer Deployment's container add
  env:
  - name: STATS_USERS
    value: \"{user}\"
and roll it out (the user must be in userlist.txt, as POSTGRES_USER is)"
    )
}

/// Client connections of one application from one address, from `pg_stat_activity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgClients {
    /// Empty when the client set none.
    pub application_name: String,
    /// `local` for a Unix socket.
    pub client_addr: String,
    pub count: u64,
}

/// What Postgres says about its connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConnections {
    /// Where it was read, for people (`database/postgres:5432`).
    pub endpoint: String,
    pub max_connections: u64,
    /// Client backends now (every row of `clients` summed).
    pub total: u64,
    /// Most connections first.
    pub clients: Vec<PgClients>,
    /// Set when Postgres could not be read this poll (the rest is then empty).
    pub error: Option<String>,
}

/// Above this share of `max_connections` in use, a warning; at [`PG_CRIT_PCT`] critical.
pub const PG_WARN_PCT: u64 = 80;
pub const PG_CRIT_PCT: u64 = 95;

impl PostgresConnections {
    /// Percent of `max_connections` in use (0 when unknown).
    pub fn used_pct(&self) -> u64 {
        (self.total * 100)
            .checked_div(self.max_connections)
            .unwrap_or(0)
    }

    /// Parses `application_name | client_addr | count` rows and `max_connections`.
    pub fn from_rows(
        endpoint: &str,
        max_connections: u64,
        rows: &[Vec<Option<String>>],
    ) -> PostgresConnections {
        let mut clients: Vec<PgClients> = rows
            .iter()
            .map(|r| {
                let cell = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                PgClients {
                    application_name: cell(0),
                    client_addr: match cell(1) {
                        a if a.is_empty() => "local".into(),
                        a => a,
                    },
                    count: cell(2).parse().unwrap_or(0),
                }
            })
            .collect();
        clients.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.application_name.cmp(&b.application_name))
                .then_with(|| a.client_addr.cmp(&b.client_addr))
        });
        PostgresConnections {
            endpoint: endpoint.to_string(),
            max_connections,
            total: clients.iter().map(|c| c.count).sum(),
            clients,
            error: None,
        }
    }

    /// `iam-service@10.42.0.17 x40`-style names of the top clients.
    pub fn top(&self, n: usize) -> String {
        self.clients
            .iter()
            .take(n)
            .map(|c| {
                let app = if c.application_name.is_empty() {
                    "(no name)"
                } else {
                    &c.application_name
                };
                format!("{app}@{} x{}", c.client_addr, c.count)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl PgbouncerSnapshot {
    /// A snapshot for a console that refused the login: no PgBouncer data, only the refusal
    /// and what Postgres says.
    pub fn refused(
        refusal: ConsoleRefusal,
        postgres: Option<PostgresConnections>,
        now: Timestamp,
        thresholds: Thresholds,
    ) -> PgbouncerSnapshot {
        PgbouncerSnapshot {
            version: String::new(),
            pools: Vec::new(),
            databases: Vec::new(),
            stats: Vec::new(),
            history: Vec::new(),
            taken_at: now,
            thresholds,
            refused: Some(refusal),
            postgres,
        }
    }
}

/// Parses `SHOW VERSION` (one column, `version`).
pub fn parse_version(t: &ResultTable) -> Result<String, ParseError> {
    let r = Reader {
        table: t,
        command: "VERSION",
    };
    let row = t.rows.first().ok_or(ParseError::NoVersion)?;
    r.text(row, "version")
}

/// Parses `SHOW POOLS`, leaving out the admin console's own `pgbouncer` pool.
pub fn parse_pools(t: &ResultTable) -> Result<Vec<PoolRow>, ParseError> {
    let r = Reader {
        table: t,
        command: "POOLS",
    };
    let mut out = Vec::new();
    for row in &t.rows {
        let database = r.text(row, "database")?;
        let user = r.text(row, "user")?;
        if database == "pgbouncer" {
            continue;
        }
        let maxwait = r.num(row, "maxwait")?;
        let maxwait_us = r.opt_num(row, "maxwait_us")?;
        out.push(PoolRow {
            database,
            user,
            cl_active: r.num(row, "cl_active")?,
            cl_waiting: r.num(row, "cl_waiting")?,
            sv_active: r.num(row, "sv_active")?,
            sv_idle: r.num(row, "sv_idle")?,
            sv_used: r.num(row, "sv_used")?,
            sv_tested: r.opt_num(row, "sv_tested")?,
            sv_login: r.opt_num(row, "sv_login")?,
            sv_canceling: r.opt_num(row, "sv_active_cancel")?
                + r.opt_num(row, "sv_being_canceled")?,
            maxwait_s: maxwait as f64 + maxwait_us as f64 / 1e6,
            pool_mode: r.text(row, "pool_mode")?,
            waiting_since: None,
        });
    }
    Ok(out)
}

/// Parses `SHOW DATABASES` (the `reserve_pool` column was renamed `reserve_pool_size` in 1.24).
pub fn parse_databases(t: &ResultTable) -> Result<Vec<DatabaseRow>, ParseError> {
    let r = Reader {
        table: t,
        command: "DATABASES",
    };
    let reserve = if t.index("reserve_pool_size").is_some() {
        "reserve_pool_size"
    } else {
        "reserve_pool"
    };
    let mut out = Vec::new();
    for row in &t.rows {
        let name = r.text(row, "name")?;
        if name == "pgbouncer" {
            continue;
        }
        out.push(DatabaseRow {
            name,
            host: r.opt_text(row, "host").unwrap_or_default(),
            port: r.opt_text(row, "port").unwrap_or_default(),
            database: r.text(row, "database")?,
            pool_size: r.num(row, "pool_size")?,
            reserve_pool: r.opt_num(row, reserve)?,
            pool_mode: r.opt_text(row, "pool_mode").unwrap_or_default(),
            max_connections: r.num(row, "max_connections")?,
            current_connections: r.num(row, "current_connections")?,
            paused: r.num(row, "paused")? != 0,
            disabled: r.num(row, "disabled")? != 0,
        });
    }
    Ok(out)
}

/// Parses `SHOW STATS`.
pub fn parse_stats(t: &ResultTable) -> Result<Vec<StatsRow>, ParseError> {
    let r = Reader {
        table: t,
        command: "STATS",
    };
    let mut out = Vec::new();
    for row in &t.rows {
        let database = r.text(row, "database")?;
        if database == "pgbouncer" {
            continue;
        }
        out.push(StatsRow {
            database,
            total_xact_count: r.num(row, "total_xact_count")?,
            total_query_count: r.num(row, "total_query_count")?,
            avg_xact_count: r.num(row, "avg_xact_count")?,
            avg_query_count: r.num(row, "avg_query_count")?,
            avg_xact_time_us: r.num(row, "avg_xact_time")?,
            avg_query_time_us: r.num(row, "avg_query_time")?,
            avg_wait_time_us: r.num(row, "avg_wait_time")?,
        });
    }
    Ok(out)
}

/// Builds a snapshot from one poll, carrying the waiting-since times and the history of the
/// previous snapshot forward.
pub fn build(
    prev: Option<&PgbouncerSnapshot>,
    version: String,
    mut pools: Vec<PoolRow>,
    databases: Vec<DatabaseRow>,
    stats: Vec<StatsRow>,
    now: Timestamp,
    thresholds: Thresholds,
) -> PgbouncerSnapshot {
    for p in &mut pools {
        p.waiting_since = if p.cl_waiting == 0 {
            None
        } else {
            let before = prev.and_then(|s| {
                s.pools
                    .iter()
                    .find(|q| q.database == p.database && q.user == p.user)
                    .and_then(|q| q.waiting_since)
            });
            Some(before.unwrap_or(now))
        };
    }
    let mut history = prev.map(|s| s.history.clone()).unwrap_or_default();
    history.push(Sample {
        at: now,
        cl_waiting: pools.iter().map(|p| p.cl_waiting).sum(),
        maxwait_s: pools.iter().map(|p| p.maxwait_s).fold(0.0, f64::max),
    });
    if history.len() > HISTORY {
        history.drain(..history.len() - HISTORY);
    }
    PgbouncerSnapshot {
        version,
        pools,
        databases,
        stats,
        history,
        taken_at: now,
        thresholds,
        refused: None,
        postgres: None,
    }
}

fn pool_name(p: &PoolRow) -> String {
    format!("{}/{}", p.database, p.user)
}

/// The health rules (issue 4): clients waiting, pool saturated, database paused or disabled.
/// A console that cannot be reached or refuses the login is reported by [`failing`].
pub fn findings(snap: &PgbouncerSnapshot, now: Timestamp) -> Vec<RawFinding> {
    let t = snap.thresholds;
    let mut out = Vec::new();
    console_and_postgres_findings(snap, &mut out);
    let databases: BTreeMap<&str, &DatabaseRow> = snap
        .databases
        .iter()
        .map(|d| (d.name.as_str(), d))
        .collect();
    for p in &snap.pools {
        if p.cl_waiting == 0 {
            continue;
        }
        let waited_for = p
            .waiting_since
            .map(|s| super::age_secs(now, s))
            .unwrap_or(0);
        let crit = p.maxwait_s >= t.wait_crit.as_secs_f64()
            || waited_for as u64 > WAITING_CRIT_AFTER.as_secs();
        let warn = p.maxwait_s >= t.wait_warn.as_secs_f64()
            || waited_for as u64 >= t.wait_warn.as_secs().max(1);
        if crit || warn {
            let mut msg = format!(
                "{} client(s) waiting for a server in pool {} (oldest {:.1}s",
                p.cl_waiting,
                pool_name(p),
                p.maxwait_s
            );
            if waited_for >= 60 {
                msg.push_str(&format!(", queueing for {}", super::format_age(waited_for)));
            }
            msg.push_str(
                "): the server pool is not keeping up; check slow queries or raise pool_size",
            );
            let sev = if crit { Severity::Crit } else { Severity::Warn };
            out.push(RawFinding::new(
                sev,
                SOURCE,
                format!("waiting/{}", pool_name(p)),
                msg,
            ));
        }
        if let Some(db) = databases.get(p.database.as_str())
            && db.pool_size > 0
            && p.server_connections() >= db.pool_size
        {
            out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                format!("saturated/{}", pool_name(p)),
                format!(
                    "pool {} is saturated: {} of {} server connections in use with {} client(s) waiting; raise pool_size or find what holds the connections",
                    pool_name(p),
                    p.server_connections(),
                    db.pool_size,
                    p.cl_waiting
                ),
            ));
        }
    }
    for d in &snap.databases {
        if d.paused {
            out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                format!("paused/{}", d.name),
                format!(
                    "database {} is paused: clients queue until RESUME {} is run on the admin console",
                    d.name, d.name
                ),
            ));
        }
        if d.disabled {
            out.push(RawFinding::new(
                Severity::Crit,
                SOURCE,
                format!("disabled/{}", d.name),
                format!(
                    "database {} is disabled: new clients are rejected until ENABLE {} is run on the admin console",
                    d.name, d.name
                ),
            ));
        }
    }
    out
}

/// The findings of the refusal and of Postgres's connections (part of [`findings`]).
fn console_and_postgres_findings(snap: &PgbouncerSnapshot, out: &mut Vec<RawFinding>) {
    if let Some(r) = &snap.refused {
        out.push(RawFinding::new(
            Severity::Warn,
            SOURCE,
            "console-refused",
            format!(
                "PgBouncer's admin console refuses user {:?} ({}): it admits only admin_users and stats_users. To see pools, set STATS_USERS {}",
                r.user,
                r.detail,
                r.fix()
            ),
        ));
    }
    let Some(pg) = &snap.postgres else {
        return;
    };
    if let Some(e) = &pg.error {
        out.push(RawFinding::new(
            Severity::Warn,
            SOURCE,
            "postgres",
            format!(
                "Postgres connections at {} cannot be read: {e}",
                pg.endpoint
            ),
        ));
        return;
    }
    let pct = pg.used_pct();
    if pg.max_connections > 0 && pct > PG_WARN_PCT {
        let sev = if pct >= PG_CRIT_PCT {
            Severity::Crit
        } else {
            Severity::Warn
        };
        out.push(RawFinding::new(
            sev,
            SOURCE,
            "postgres-connections",
            format!(
                "Postgres has {} of max_connections {} in use ({pct}%); most from {}: services connecting directly bypass PgBouncer's pool",
                pg.total,
                pg.max_connections,
                pg.top(3)
            ),
        ));
    }
}

/// The finding for a failing console: `reason` is the source's `FeatureFailing` reason, which
/// already says whether it was unreachable or refused the login.
pub fn failing(reason: &str) -> RawFinding {
    RawFinding::new(Severity::Crit, SOURCE, "console", reason.to_string())
}

/// The `pgbouncer` object of `status --json` (interfaces.md; no `stale` key).
pub fn to_json(snap: &PgbouncerSnapshot) -> Value {
    let mut v = to_json_console(snap);
    if let Some(r) = &snap.refused {
        v["console_refused"] = json!({"user": r.user, "detail": r.detail, "fix": r.fix()});
    }
    if let Some(pg) = &snap.postgres {
        v["postgres"] = json!({
            "endpoint": pg.endpoint,
            "max_connections": pg.max_connections,
            "total": pg.total,
            "clients": pg.clients.iter().map(|c| json!({
                "application_name": c.application_name,
                "client_addr": c.client_addr,
                "count": c.count,
            })).collect::<Vec<_>>(),
            "error": pg.error,
        });
    }
    v
}

fn to_json_console(snap: &PgbouncerSnapshot) -> Value {
    json!({
        "version": snap.version,
        "pools": snap.pools.iter().map(|p| json!({
            "database": p.database,
            "user": p.user,
            "cl_active": p.cl_active,
            "cl_waiting": p.cl_waiting,
            "sv_active": p.sv_active,
            "sv_idle": p.sv_idle,
            "sv_used": p.sv_used,
            "maxwait_s": p.maxwait_s,
            "pool_mode": p.pool_mode,
        })).collect::<Vec<_>>(),
        "databases": snap.databases.iter().map(|d| json!({
            "name": d.name,
            "host": d.host,
            "port": d.port,
            "database": d.database,
            "pool_size": d.pool_size,
            "pool_mode": d.pool_mode,
            "max_connections": d.max_connections,
            "current_connections": d.current_connections,
            "paused": d.paused,
            "disabled": d.disabled,
        })).collect::<Vec<_>>(),
    })
}

/// Reads the recorded fixtures format (`tests/fixtures/pgbouncer/*.txt`): sections headed
/// `# SHOW NAME`, then a `|`-separated header line and rows; an empty cell is NULL.
pub fn parse_fixture(text: &str) -> BTreeMap<String, ResultTable> {
    let mut out: BTreeMap<String, ResultTable> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("# SHOW ") {
            current = Some(cmd.trim().to_string());
            continue;
        }
        let Some(cmd) = &current else { continue };
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let t = out.entry(cmd.clone()).or_default();
        if t.columns.is_empty() {
            t.columns = cells.iter().map(|c| c.to_string()).collect();
        } else {
            t.rows.push(
                cells
                    .iter()
                    .map(|c| (!c.is_empty()).then(|| c.to_string()))
                    .collect(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &[(&str, &str)] = &[
        (
            "1.17",
            include_str!("../../tests/fixtures/pgbouncer/pgbouncer-1.17.txt"),
        ),
        (
            "1.18",
            include_str!("../../tests/fixtures/pgbouncer/pgbouncer-1.18.txt"),
        ),
        (
            "1.23",
            include_str!("../../tests/fixtures/pgbouncer/pgbouncer-1.23.txt"),
        ),
        (
            "1.24",
            include_str!("../../tests/fixtures/pgbouncer/pgbouncer-1.24.txt"),
        ),
        (
            "1.25",
            include_str!("../../tests/fixtures/pgbouncer/pgbouncer-1.25.txt"),
        ),
    ];

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn snapshot_of(text: &str, now: Timestamp) -> PgbouncerSnapshot {
        let f = parse_fixture(text);
        build(
            None,
            parse_version(&f["VERSION"]).unwrap(),
            parse_pools(&f["POOLS"]).unwrap(),
            parse_databases(&f["DATABASES"]).unwrap(),
            parse_stats(&f["STATS"]).unwrap(),
            now,
            Thresholds::default(),
        )
    }

    #[test]
    fn every_recorded_version_parses_to_the_same_numbers() {
        for (version, text) in FIXTURES {
            let s = snapshot_of(text, ts(1000));
            assert!(s.version.contains(version), "{version}: {}", s.version);
            assert_eq!(
                s.pools.len(),
                2,
                "{version}: the pgbouncer pool row is left out"
            );
            let p = &s.pools[0];
            assert_eq!((p.database.as_str(), p.user.as_str()), ("goapps", "app"));
            assert_eq!((p.cl_active, p.cl_waiting), (20, 4), "{version}");
            assert_eq!((p.sv_active, p.sv_idle, p.sv_used), (20, 0, 0), "{version}");
            assert!(
                (p.maxwait_s - 2.5).abs() < 1e-9,
                "{version}: {}",
                p.maxwait_s
            );
            assert_eq!(p.pool_mode, "transaction");
            assert_eq!(s.databases.len(), 1, "{version}");
            let d = &s.databases[0];
            assert_eq!((d.pool_size, d.reserve_pool), (20, 5), "{version}");
            assert!(!d.paused && !d.disabled);
            assert_eq!(s.stats.len(), 1, "{version}");
            assert_eq!(s.stats[0].avg_query_count, 120, "{version}");
            assert_eq!(s.stats[0].avg_wait_time_us, 15000, "{version}");
        }
    }

    #[test]
    fn waiting_clients_raise_warning_and_a_full_pool_is_saturated() {
        let s = snapshot_of(FIXTURES[1].1, ts(1000));
        let f = findings(&s, ts(1000));
        let waiting = f.iter().find(|f| f.key == "waiting/goapps/app").unwrap();
        assert_eq!(waiting.severity, Severity::Warn);
        assert!(
            waiting.message.contains("4 client(s) waiting"),
            "{}",
            waiting.message
        );
        assert!(
            f.iter()
                .any(|f| f.key == "saturated/goapps/app" && f.severity == Severity::Crit)
        );
        assert!(
            !f.iter().any(|f| f.key.contains("reporting")),
            "idle pool has no finding"
        );
    }

    #[test]
    fn waiting_over_a_minute_or_past_wait_crit_is_critical() {
        let first = snapshot_of(FIXTURES[1].1, ts(1000));
        let f = parse_fixture(FIXTURES[1].1);
        let later = build(
            Some(&first),
            "PgBouncer 1.18.0".into(),
            parse_pools(&f["POOLS"]).unwrap(),
            vec![],
            vec![],
            ts(1070),
            Thresholds::default(),
        );
        assert_eq!(later.pools[0].waiting_since, Some(ts(1000)));
        assert_eq!(later.history.len(), 2);
        let w = findings(&later, ts(1070));
        assert_eq!(w[0].severity, Severity::Crit, "{:?}", w[0]);
        assert!(w[0].message.contains("queueing for 1m"), "{}", w[0].message);

        let mut hot = first.clone();
        hot.pools[0].maxwait_s = 6.0;
        assert_eq!(findings(&hot, ts(1000))[0].severity, Severity::Crit);
        let mut calm = first.clone();
        calm.pools[0].maxwait_s = 0.2;
        calm.databases.clear();
        assert!(
            findings(&calm, ts(1000)).is_empty(),
            "a brief queue is normal"
        );
    }

    #[test]
    fn paused_and_disabled_databases_are_reported() {
        let mut s = snapshot_of(FIXTURES[4].1, ts(1000));
        s.pools.clear();
        s.databases[0].paused = true;
        s.databases[0].disabled = true;
        let keys: Vec<String> = findings(&s, ts(1000)).into_iter().map(|f| f.key).collect();
        assert_eq!(keys, ["paused/goapps", "disabled/goapps"]);
    }

    #[test]
    fn missing_column_names_it() {
        let t = ResultTable {
            columns: vec!["database".into(), "user".into()],
            rows: vec![vec![Some("goapps".into()), Some("app".into())]],
        };
        let e = parse_pools(&t).unwrap_err().to_string();
        assert!(e.starts_with("SHOW POOLS has no column \"maxwait\""), "{e}");
    }

    #[test]
    fn history_keeps_the_last_samples() {
        let mut s = snapshot_of(FIXTURES[0].1, ts(0));
        for i in 1..=(HISTORY as i64 + 10) {
            s = build(
                Some(&s),
                s.version.clone(),
                s.pools.clone(),
                vec![],
                vec![],
                ts(i),
                s.thresholds,
            );
        }
        assert_eq!(s.history.len(), HISTORY);
        assert_eq!(s.history.last().unwrap().at, ts(HISTORY as i64 + 10));
    }

    #[test]
    fn json_has_the_documented_keys() {
        let s = snapshot_of(FIXTURES[1].1, ts(1000));
        let j = to_json(&s);
        assert_eq!(j["version"], "PgBouncer 1.18.0");
        let pool = &j["pools"][0];
        for k in [
            "database",
            "user",
            "cl_active",
            "cl_waiting",
            "sv_active",
            "sv_idle",
            "sv_used",
            "maxwait_s",
            "pool_mode",
        ] {
            assert!(pool.get(k).is_some(), "{k}");
        }
        assert!(pool["maxwait_s"].is_f64());
        assert!(j.get("stale").is_none());
        assert_eq!(j["databases"][0]["name"], "goapps");
    }

    #[test]
    fn a_refused_console_says_what_to_change_and_postgres_shows_direct_clients() {
        let rows = vec![
            vec![
                Some("iam-service".into()),
                Some("10.42.0.17".into()),
                Some("70".into()),
            ],
            vec![
                Some("finance-service".into()),
                Some("10.42.0.18".into()),
                Some("15".into()),
            ],
            vec![None, None, Some("1".into())],
        ];
        let pg = PostgresConnections::from_rows("database/postgres:5432", 100, &rows);
        assert_eq!((pg.total, pg.used_pct()), (86, 86));
        let snap = PgbouncerSnapshot::refused(
            ConsoleRefusal {
                user: "stgapps".into(),
                detail: "not allowed (08P01)".into(),
            },
            Some(pg),
            Timestamp::from_second(1_800_000_000).unwrap(),
            Thresholds::default(),
        );
        let f = findings(&snap, snap.taken_at);
        let keys: Vec<(&str, Severity)> = f.iter().map(|f| (f.key.as_str(), f.severity)).collect();
        assert_eq!(
            keys,
            [
                ("console-refused", Severity::Warn),
                ("postgres-connections", Severity::Warn)
            ]
        );
        assert!(
            f[0].message
                .contains("env:\n  - name: STATS_USERS\n    value: \"stgapps\""),
            "{}",
            f[0].message
        );
        assert!(
            f[1].message.contains("86 of max_connections 100"),
            "{}",
            f[1].message
        );
        assert!(
            f[1].message.contains("iam-service@10.42.0.17 x70"),
            "{}",
            f[1].message
        );
        let j = to_json(&snap);
        assert_eq!(j["console_refused"]["user"], "stgapps");
        assert_eq!(j["postgres"]["total"], 86);
        assert_eq!(j["postgres"]["clients"][2]["client_addr"], "local");
        assert_eq!(j["pools"], json!([]));
    }
}
