//! A minimal Redis over RESP2 for the simulated fleet: PING, AUTH, INFO (server, persistence),
//! CONFIG GET and QUIT. Both clusters run as the real fleet does (target-environment.md,
//! "Redis"): `redis:7-alpine` with no config file, so Redis 7's built-in RDB schedule
//! (`save 3600 1 300 100 60 10000`) and AOF off, writing into the emptyDir at `/data` the
//! seeded Deployment declares: data survives a container restart, not a pod replacement.

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::seed::Env;
use crate::sources::redis::{Reply, read_reply};

/// A running simulated Redis.
pub struct SimRedis(super::LoopbackServer);

impl std::ops::Deref for SimRedis {
    type Target = super::LoopbackServer;
    fn deref(&self) -> &super::LoopbackServer {
        &self.0
    }
}

impl SimRedis {
    pub async fn start(env: Env) -> std::io::Result<SimRedis> {
        SimRedis::start_with_clock(env, super::Clock::new(true)).await
    }

    /// Serves a Redis whose uptime and change counter follow `clock`.
    pub async fn start_with_clock(env: Env, clock: super::Clock) -> std::io::Result<SimRedis> {
        let started = clock.now() - env_uptime(env);
        let server = super::LoopbackServer::start("redis", move |sock| {
            session(sock, started, clock.clone())
        })
        .await?;
        Ok(SimRedis(server))
    }
}

/// Plausible uptimes: staging restarts more often.
fn env_uptime(env: Env) -> i64 {
    match env {
        Env::Staging => 3 * 3600 + 25 * 60,
        Env::Production => 12 * 86_400 + 5 * 3600,
    }
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

/// Redis 7's built-in RDB schedule (no config file): what `CONFIG GET save` answers.
pub const SAVE_SCHEDULE: &str = "3600 1 300 100 60 10000";

/// Seconds between the simulated background saves (the `300 100` rule under steady writes).
const SAVE_EVERY: i64 = 300;

/// The INFO text of Redis 7.4 with the default RDB schedule: a BGSAVE every few minutes
/// (`rdb_saves` counts them, `rdb_last_save_time` is the newest), AOF off.
pub fn info_text(section: &str, started: i64, now: i64) -> String {
    let uptime = (now - started).max(0);
    let saves = uptime / SAVE_EVERY;
    let last_save = if saves > 0 {
        started + saves * SAVE_EVERY
    } else {
        started
    };
    let server = format!(
        "# Server\r\nredis_version:7.4.2\r\nredis_mode:standalone\r\nos:Linux 6.1.0 x86_64\r\n\
         process_id:1\r\ntcp_port:6379\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
        uptime / 86_400
    );
    let persistence = format!(
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\n\
         current_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\n\
         current_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:0\r\n\
         rdb_last_save_time:{last_save}\r\nrdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:{}\r\n\
         rdb_current_bgsave_time_sec:-1\r\nrdb_saves:{saves}\r\nrdb_last_cow_size:0\r\n\
         rdb_last_load_keys_expired:0\r\nrdb_last_load_keys_loaded:0\r\naof_enabled:0\r\n\
         aof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:-1\r\n\
         aof_current_rewrite_time_sec:-1\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\n\
         aof_rewrites_consecutive_failures:0\r\naof_last_write_status:ok\r\naof_last_cow_size:0\r\n\
         module_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        (now - last_save).max(0) * 3,
        if saves > 0 { 0 } else { -1 }
    );
    match section {
        "server" => server,
        "persistence" => persistence,
        _ => format!("{server}\r\n{persistence}"),
    }
}

async fn session(sock: TcpStream, started: i64, clock: super::Clock) -> std::io::Result<()> {
    let mut io = BufReader::new(sock);
    loop {
        let Reply::Array(Some(args)) = read_reply(&mut io).await? else {
            io.get_mut().write_all(b"-ERR Protocol error\r\n").await?;
            return Ok(());
        };
        let args: Vec<String> = args
            .iter()
            .map(|a| match a {
                Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect();
        let cmd = args.first().map(|s| s.to_uppercase()).unwrap_or_default();
        let reply: Vec<u8> = match cmd.as_str() {
            "PING" => b"+PONG\r\n".to_vec(),
            "AUTH" => b"+OK\r\n".to_vec(),
            "QUIT" => {
                io.get_mut().write_all(b"+OK\r\n").await?;
                return Ok(());
            }
            "INFO" => bulk(&info_text(
                &args.get(1).map(|s| s.to_lowercase()).unwrap_or_default(),
                started,
                clock.now(),
            )),
            "CONFIG" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case("GET")) => {
                let name = args.get(2).map(|s| s.to_lowercase()).unwrap_or_default();
                match name.as_str() {
                    "save" => [b"*2\r\n".to_vec(), bulk("save"), bulk(SAVE_SCHEDULE)].concat(),
                    "appendonly" => [b"*2\r\n".to_vec(), bulk("appendonly"), bulk("no")].concat(),
                    _ => b"*0\r\n".to_vec(),
                }
            }
            _ => format!("-ERR unknown command '{cmd}'\r\n").into_bytes(),
        };
        io.get_mut().write_all(&reply).await?;
    }
}
