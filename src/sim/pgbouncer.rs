//! A minimal PgBouncer admin console over the PostgreSQL wire protocol: startup, cleartext
//! password auth, and simple `Query` -> RowDescription/DataRow/CommandComplete/ReadyForQuery
//! for `SHOW POOLS|STATS|DATABASES|VERSION` with PgBouncer 1.18's columns. Production shows
//! clients queueing; staging is calm.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::seed::Env;

/// The admin user and password the simulated consoles accept (written into the fleet config).
/// The real fleet sets no `ADMIN_USERS`/`STATS_USERS`, so the edoburu image's default
/// `admin_users = postgres` applies: only a user literally named `postgres` gets in
/// (target-environment.md, "PgBouncer").
pub const USER: &str = "postgres";
pub const PASSWORD: &str = "sim-pgbouncer";

/// Users in `userlist.txt` besides `postgres`: they authenticate, and the `pgbouncer`
/// admin database then turns them away, as staging's `stgapps` is.
pub const OTHER_USERS: &[&str] = &["stgapps", "goapps_admin"];

/// What PgBouncer answers a user who is neither in `admin_users` nor in `stats_users`
/// when it asks for the `pgbouncer` database (`admin.c`: "not allowed").
pub const NOT_ALLOWED: &str = "not allowed";

pub const POOLS_COLUMNS: &[&str] = &[
    "database",
    "user",
    "cl_active",
    "cl_waiting",
    "cl_active_cancel_req",
    "cl_waiting_cancel_req",
    "sv_active",
    "sv_active_cancel",
    "sv_being_canceled",
    "sv_idle",
    "sv_used",
    "sv_tested",
    "sv_login",
    "maxwait",
    "maxwait_us",
    "pool_mode",
];
pub const STATS_COLUMNS: &[&str] = &[
    "database",
    "total_xact_count",
    "total_query_count",
    "total_received",
    "total_sent",
    "total_xact_time",
    "total_query_time",
    "total_wait_time",
    "avg_xact_count",
    "avg_query_count",
    "avg_recv",
    "avg_sent",
    "avg_xact_time",
    "avg_query_time",
    "avg_wait_time",
];
pub const DATABASES_COLUMNS: &[&str] = &[
    "name",
    "host",
    "port",
    "database",
    "force_user",
    "pool_size",
    "min_pool_size",
    "reserve_pool",
    "pool_mode",
    "max_connections",
    "current_connections",
    "paused",
    "disabled",
];

/// A running simulated console (`addr`, `stop` through [`super::LoopbackServer`]).
pub struct SimPgbouncer(super::LoopbackServer);

impl std::ops::Deref for SimPgbouncer {
    type Target = super::LoopbackServer;
    fn deref(&self) -> &super::LoopbackServer {
        &self.0
    }
}

impl SimPgbouncer {
    pub async fn start(env: Env) -> std::io::Result<SimPgbouncer> {
        SimPgbouncer::start_with_clock(env, super::Clock::new(true)).await
    }

    /// Serves a console whose queue follows `clock`.
    pub async fn start_with_clock(env: Env, clock: super::Clock) -> std::io::Result<SimPgbouncer> {
        let server = super::LoopbackServer::start("pgbouncer", move |sock| {
            session(sock, env, clock.clone())
        })
        .await?;
        Ok(SimPgbouncer(server))
    }
}

fn message(tag: u8, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(body.len() + 5);
    b.put_u8(tag);
    b.put_i32(body.len() as i32 + 4);
    b.put_slice(body);
    b
}

fn cstr(b: &mut BytesMut, s: &str) {
    b.put_slice(s.as_bytes());
    b.put_u8(0);
}

fn error(code: &str, msg: &str) -> BytesMut {
    let mut b = BytesMut::new();
    for (k, v) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', msg)] {
        b.put_u8(k);
        cstr(&mut b, v);
    }
    b.put_u8(0);
    message(b'E', &b)
}

fn ready() -> BytesMut {
    message(b'Z', b"I")
}

async fn read_len_prefixed(sock: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = sock.read_i32().await?;
    if !(4..=1 << 20).contains(&len) {
        return Err(std::io::Error::other("bad message length"));
    }
    let mut buf = vec![0; len as usize - 4];
    sock.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn session(mut sock: TcpStream, env: Env, clock: super::Clock) -> std::io::Result<()> {
    // Startup, possibly after an SSLRequest we decline.
    let mut startup = read_len_prefixed(&mut sock).await?;
    if startup.len() == 4 && startup[..4] == [0x04, 0xd2, 0x16, 0x2f] {
        sock.write_all(b"N").await?;
        startup = read_len_prefixed(&mut sock).await?;
    }
    let params: Vec<&[u8]> = startup
        .get(4..)
        .unwrap_or_default()
        .split(|b| *b == 0)
        .collect();
    let mut user = String::new();
    let mut database = String::new();
    for kv in params.chunks(2) {
        if let [k, v] = kv {
            match *k {
                b"user" => user = String::from_utf8_lossy(v).into_owned(),
                b"database" => database = String::from_utf8_lossy(v).into_owned(),
                _ => {}
            }
        }
    }
    sock.write_all(&message(b'R', &3i32.to_be_bytes())).await?;
    let tag = sock.read_u8().await?;
    let body = read_len_prefixed(&mut sock).await?;
    let password = body.strip_suffix(&[0]).unwrap_or(&body);
    let known = user == USER || OTHER_USERS.contains(&user.as_str());
    if tag != b'p' || !known || password != PASSWORD.as_bytes() {
        // What PgBouncer itself says.
        sock.write_all(&error("08P01", "password authentication failed"))
            .await?;
        return Ok(());
    }
    if database != "pgbouncer" {
        sock.write_all(&error("08P01", "no such database")).await?;
        return Ok(());
    }
    if user != USER {
        sock.write_all(&error("08P01", NOT_ALLOWED)).await?;
        return Ok(());
    }
    let mut out = message(b'R', &0i32.to_be_bytes());
    for (k, v) in [
        ("server_version", "1.18.0/bouncer"),
        ("client_encoding", "UTF8"),
        ("server_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("standard_conforming_strings", "on"),
    ] {
        let mut b = BytesMut::new();
        cstr(&mut b, k);
        cstr(&mut b, v);
        out.extend_from_slice(&message(b'S', &b));
    }
    out.extend_from_slice(&message(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
    out.extend_from_slice(&ready());
    sock.write_all(&out).await?;
    loop {
        let tag = sock.read_u8().await?;
        let body = read_len_prefixed(&mut sock).await?;
        match tag {
            b'Q' => {
                let q = String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body))
                    .trim()
                    .trim_end_matches(';')
                    .to_uppercase();
                let mut out = match answer(&q, env, clock.now()) {
                    Some((cols, rows)) => result(&cols, &rows),
                    None => error("08P01", &format!("unsupported command: {q}")),
                };
                out.extend_from_slice(&ready());
                sock.write_all(&out).await?;
            }
            b'X' => return Ok(()),
            _ => {
                sock.write_all(&error(
                    "08P01",
                    "extended query protocol not supported by admin console",
                ))
                .await?;
                return Ok(());
            }
        }
    }
}

fn result(cols: &[&str], rows: &[Vec<String>]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(cols.len() as i16);
    for c in cols {
        cstr(&mut b, c);
        b.put_i32(0);
        b.put_i16(0);
        b.put_i32(25); // text
        b.put_i16(-1);
        b.put_i32(-1);
        b.put_i16(0);
    }
    let mut out = message(b'T', &b);
    for r in rows {
        let mut b = BytesMut::new();
        b.put_i16(r.len() as i16);
        for v in r {
            b.put_i32(v.len() as i32);
            b.put_slice(v.as_bytes());
        }
        out.extend_from_slice(&message(b'D', &b));
    }
    let mut c = BytesMut::new();
    cstr(&mut c, "SHOW");
    out.extend_from_slice(&message(b'C', &c));
    out
}

fn row(cols: &[&str], values: &[(&str, String)]) -> Vec<String> {
    cols.iter()
        .map(|c| {
            values
                .iter()
                .find(|(k, _)| k == c)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "0".into())
        })
        .collect()
}

/// The console's answers. Production's `goapps/app` pool is full with clients queueing; the
/// queue breathes with the clock so the sparkline moves.
fn answer(q: &str, env: Env, secs: i64) -> Option<(Vec<&'static str>, Vec<Vec<String>>)> {
    let (waiting, maxwait_us, active) = match env {
        Env::Production => (
            3 + (secs / 4 % 5) as u64,
            400_000 + (secs % 7) as u64 * 200_000,
            20u64,
        ),
        Env::Staging => (0, 0, 2),
    };
    let s = |v: &str| v.to_string();
    match q {
        "SHOW VERSION" => Some((vec!["version"], vec![vec![s("PgBouncer 1.18.0")]])),
        "SHOW POOLS" => Some((
            POOLS_COLUMNS.to_vec(),
            vec![
                row(
                    POOLS_COLUMNS,
                    &[
                        ("database", s("pgbouncer")),
                        ("user", s("pgbouncer")),
                        ("cl_active", s("1")),
                        ("pool_mode", s("statement")),
                    ],
                ),
                row(
                    POOLS_COLUMNS,
                    &[
                        ("database", s("goapps")),
                        ("user", s("goapps")),
                        ("cl_active", active.to_string()),
                        ("cl_waiting", waiting.to_string()),
                        ("sv_active", active.to_string()),
                        ("sv_idle", s(if waiting > 0 { "0" } else { "3" })),
                        ("sv_used", s("1")),
                        ("maxwait", (maxwait_us / 1_000_000).to_string()),
                        ("maxwait_us", (maxwait_us % 1_000_000).to_string()),
                        ("pool_mode", s("transaction")),
                    ],
                ),
            ],
        )),
        "SHOW STATS" => Some((
            STATS_COLUMNS.to_vec(),
            vec![
                row(STATS_COLUMNS, &[("database", s("pgbouncer"))]),
                row(
                    STATS_COLUMNS,
                    &[
                        ("database", s("goapps")),
                        ("total_xact_count", (secs % 100_000 * 40).to_string()),
                        ("total_query_count", (secs % 100_000 * 160).to_string()),
                        (
                            "avg_xact_count",
                            s(if env == Env::Production { "42" } else { "3" }),
                        ),
                        (
                            "avg_query_count",
                            s(if env == Env::Production { "168" } else { "12" }),
                        ),
                        ("avg_xact_time", s("35000")),
                        ("avg_query_time", s("6500")),
                        ("avg_wait_time", (maxwait_us / 4).to_string()),
                    ],
                ),
            ],
        )),
        "SHOW DATABASES" => Some((
            DATABASES_COLUMNS.to_vec(),
            vec![
                row(
                    DATABASES_COLUMNS,
                    &[
                        ("name", s("goapps")),
                        ("host", s("postgres.database.svc.cluster.local")),
                        ("port", s("5432")),
                        ("database", s("goapps")),
                        ("force_user", s("")),
                        ("pool_size", s("20")),
                        ("reserve_pool", s("0")),
                        ("pool_mode", s("")),
                        ("current_connections", (active + 1).to_string()),
                    ],
                ),
                row(
                    DATABASES_COLUMNS,
                    &[
                        ("name", s("pgbouncer")),
                        ("host", s("")),
                        ("port", s("5432")),
                        ("database", s("pgbouncer")),
                        ("force_user", s("pgbouncer")),
                        ("pool_size", s("2")),
                        ("pool_mode", s("statement")),
                    ],
                ),
            ],
        )),
        _ => None,
    }
}
