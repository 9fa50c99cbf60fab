//! The simulated kubelet behind `pods/exec`: the remote-command channel protocol over
//! WebSocket (`v5.channel.k8s.io`, or `v4.channel.k8s.io`), as kube-rs's `Api::exec` and
//! `kubectl exec` speak it, into a tiny shell.
//!
//! Framing: every binary message is `[channel, payload...]`. The client sends stdin on 0,
//! terminal sizes on 4 (JSON, ignored here) and, on v5, `[255, 0]` when stdin closes. The
//! server sends stdout on 1, stderr on 2 (merged into stdout with a TTY, as a terminal does),
//! and when the command ends one `Status` on 3 (`Success`, or `NonZeroExitCode` with the code
//! in `details.causes[reason=ExitCode]`), then closes.
//!
//! The shell knows `echo`, `ls`, `env`, `cat /etc/hostname`, `hostname`, `pwd`, `pg_isready`,
//! `true`, `false`, `exit N`, and `;`/`&&` between commands; anything else prints
//! `sh: X: not found` and exits 127. A shell (`sh`, `bash`) without `-c` reads commands from
//! stdin, with a prompt and echo when there is a TTY.
//!
//! **Real PostgreSQL.** In a PostgreSQL pod (`postgres-0`, or a `postgres-backup-*` Job's pod),
//! a command that names `psql`, `pg_dump`, `pg_isready`, `pg_restore`, `createdb` or `dropdb`
//! runs for real when PostgreSQL is installed on this machine (the newest
//! `/usr/lib/postgresql/*/bin`): on first use each simulated cluster starts its own server
//! (initdb into a temp dir, loopback only, run as `postgres` when the simulator is root) with
//! the pod's `POSTGRES_USER` as superuser and a seeded `goapps` database. The command then
//! runs as a local process (`sh -c` included) with the pod's environment, `PGHOST`/`PGPORT`
//! pointing at that server, stdin and stdout streamed as the kubelet would; as `postgres`
//! when the simulator is root. `OPSDECK_SIM_POSTGRES=off` turns this off. Without PostgreSQL
//! such a command fails with a message that says what is missing.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, Request};
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::cluster::ClusterShared;
use super::server::status_error;
use super::store;

/// Subprotocols in preference order: v5 can close stdin alone, v4 cannot.
pub const SUBPROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;
/// How long the server waits for the client to hang up after the Status.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// `(namespace, pod)` when the path is `/api/v1/namespaces/{ns}/pods/{pod}/exec`.
pub fn matches<'a>(segs: &[&'a str]) -> Option<(&'a str, &'a str)> {
    match segs {
        ["api", "v1", "namespaces", ns, "pods", pod, "exec"] => Some((ns, pod)),
        _ => None,
    }
}

/// What the request asked for.
#[derive(Debug, Clone, Default)]
struct ExecParams {
    command: Vec<String>,
    container: Option<String>,
    stdin: bool,
    tty: bool,
}

fn params(query: &[(String, String)]) -> ExecParams {
    let mut p = ExecParams::default();
    let on = |v: &str| v == "true" || v == "1";
    for (k, v) in query {
        match k.as_str() {
            "command" => p.command.push(v.clone()),
            "container" => p.container = Some(v.clone()),
            "stdin" => p.stdin = on(v),
            "tty" => p.tty = on(v),
            _ => {}
        }
    }
    p
}

/// Serves one exec request.
pub async fn handle(shared: Arc<ClusterShared>, req: Request, ns: &str, name: &str) -> Response {
    let query: Vec<(String, String)> = Query::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let p = params(&query);
    let Some(pod) = shared.store.get(&store::PODS, ns, name) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{name}\" not found"),
        );
    };
    let containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match &p.container {
        Some(c) if containers.contains(c) => c.clone(),
        Some(c) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("container {c} is not valid for pod {name}"),
            );
        }
        None => containers.first().cloned().unwrap_or_default(),
    };
    if p.command.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "you must specify at least 1 command",
        );
    }
    let running = pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .is_some_and(|c| c["state"]["running"].is_object());
    if !running || pod["metadata"]["deletionTimestamp"].is_string() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "unable to upgrade connection: container not found (\"{container}\"): the container is not running"
            ),
        );
    }
    let (mut parts, _body) = req.into_parts();
    parts.method = Method::GET;
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u.protocols(SUBPROTOCOLS),
        Err(e) => {
            return status_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("pods/exec needs a WebSocket upgrade (the simulator speaks no SPDY): {e}"),
            );
        }
    };
    let Some(proto) = upgrade
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .map(str::to_string)
    else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "the simulated kubelet speaks exec over {} only",
                SUBPROTOCOLS.join(" or ")
            ),
        );
    };
    let v5 = proto.starts_with("v5");
    if is_postgres_pod(&pod, &container) && wants_real_postgres(&p.command) {
        let env = pod_env(&shared, &pod, &container);
        let pg = shared.realpg.get(&env).await;
        return upgrade
            .on_failed_upgrade(|e| tracing::debug!("sim exec upgrade failed: {e}"))
            .on_upgrade(move |socket| real_session(socket, pg, env, p, v5));
    }
    let shell = Shell::for_pod(&pod, &container, p.tty);
    upgrade
        .on_failed_upgrade(|e| tracing::debug!("sim exec upgrade failed: {e}"))
        .on_upgrade(move |socket| session(socket, shell, p, v5))
}

async fn send(socket: &mut WebSocket, channel: u8, data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    socket.send(Message::Binary(frame.into())).await.is_ok()
}

/// The final Status for an exit code, as the kubelet words it.
pub fn exit_status(code: i32, command: &[String]) -> Value {
    if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    }
}

async fn finish(socket: &mut WebSocket, code: i32, command: &[String]) {
    let status = serde_json::to_vec(&exit_status(code, command)).unwrap_or_default();
    if !send(socket, STATUS, &status).await {
        return;
    }
    let close = axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    if socket.send(Message::Close(Some(close))).await.is_err() {
        return;
    }
    // Keep the connection until the client hangs up: dropping it at once can reset it before
    // the client has read the Status (kube-rs then never ends the output streams).
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn emit(socket: &mut WebSocket, out: &Output, tty: bool) -> bool {
    if tty {
        let mut all = out.stdout.clone();
        all.push_str(&out.stderr);
        send(socket, STDOUT, all.replace('\n', "\r\n").as_bytes()).await
    } else {
        send(socket, STDOUT, out.stdout.as_bytes()).await
            && send(socket, STDERR, out.stderr.as_bytes()).await
    }
}

async fn session(mut socket: WebSocket, mut shell: Shell, p: ExecParams, v5: bool) {
    let argv = &p.command;
    let is_shell = matches!(
        argv[0].rsplit('/').next(),
        Some("sh" | "bash" | "ash" | "dash")
    );
    let script = if is_shell {
        argv.iter()
            .position(|a| a == "-c")
            .and_then(|i| argv.get(i + 1).cloned())
    } else {
        Some(quote_join(argv))
    };
    if let Some(script) = script {
        let out = shell.run(&script);
        if emit(&mut socket, &out, p.tty).await {
            finish(&mut socket, out.exit.unwrap_or(shell.last), argv).await;
        }
        return;
    }
    if !p.stdin {
        // A shell with nothing to read ends at once, as `sh </dev/null` does.
        finish(&mut socket, 0, argv).await;
        return;
    }
    if p.tty && !send(&mut socket, STDOUT, shell.prompt().as_bytes()).await {
        return;
    }
    let mut line: Vec<u8> = Vec::new();
    loop {
        let msg = match socket.recv().await {
            Some(Ok(m)) => m,
            Some(Err(_)) | None => return,
        };
        let data: Vec<u8> = match msg {
            Message::Binary(b) => b.to_vec(),
            // base64 or text framing is not spoken; treat text as a binary frame.
            Message::Text(t) => t.as_bytes().to_vec(),
            Message::Close(_) => return,
            _ => continue,
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            STDIN => {
                for &b in payload {
                    match b {
                        b'\r' | b'\n' => {
                            if p.tty && !send(&mut socket, STDOUT, b"\r\n").await {
                                return;
                            }
                            let text = String::from_utf8_lossy(&line).into_owned();
                            line.clear();
                            let out = shell.run(&text);
                            if !emit(&mut socket, &out, p.tty).await {
                                return;
                            }
                            if let Some(code) = out.exit {
                                finish(&mut socket, code, argv).await;
                                return;
                            }
                            if p.tty && !send(&mut socket, STDOUT, shell.prompt().as_bytes()).await
                            {
                                return;
                            }
                        }
                        // Ctrl-D on an empty line ends the shell.
                        4 if p.tty && line.is_empty() => {
                            let _ = send(&mut socket, STDOUT, b"exit\r\n").await;
                            finish(&mut socket, shell.last, argv).await;
                            return;
                        }
                        0x7f | 8 if p.tty => {
                            if line.pop().is_some()
                                && !send(&mut socket, STDOUT, b"\x08 \x08").await
                            {
                                return;
                            }
                        }
                        _ => {
                            line.push(b);
                            if p.tty && !send(&mut socket, STDOUT, &[b]).await {
                                return;
                            }
                        }
                    }
                }
            }
            CLOSE if v5 && payload.first() == Some(&STDIN) => {
                // End of input: run what is left, then exit with the last status.
                let text = String::from_utf8_lossy(&line).into_owned();
                let out = shell.run(&text);
                if emit(&mut socket, &out, p.tty).await {
                    finish(&mut socket, out.exit.unwrap_or(shell.last), argv).await;
                }
                return;
            }
            _ => {}
        }
    }
}

fn quote_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', ';', '&', '"', '\'']) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What running a line printed, and whether it called `exit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub exit: Option<i32>,
}

/// The simulated container's shell.
#[derive(Debug, Clone)]
pub struct Shell {
    hostname: String,
    env: Vec<(String, String)>,
    /// `$?`.
    pub last: i32,
    is_postgres: bool,
}

impl Shell {
    pub fn for_pod(pod: &Value, container: &str, tty: bool) -> Shell {
        let hostname = pod["metadata"]["name"]
            .as_str()
            .unwrap_or("pod")
            .to_string();
        let spec = pod["spec"]["containers"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container));
        let mut env = vec![
            (
                "PATH".to_string(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ),
            ("HOSTNAME".to_string(), hostname.clone()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        if tty {
            env.push(("TERM".into(), "xterm".into()));
        }
        for e in spec.and_then(|c| c["env"].as_array()).into_iter().flatten() {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                env.push((k.to_string(), v.to_string()));
            }
        }
        let image = spec.and_then(|c| c["image"].as_str()).unwrap_or("");
        Shell {
            hostname,
            env,
            last: 0,
            is_postgres: image.contains("postgres") || image.contains("pgbouncer"),
        }
    }

    fn prompt(&self) -> String {
        format!("{}:/$ ", self.hostname)
    }

    /// Runs one line: commands separated by `;` or `&&`.
    pub fn run(&mut self, line: &str) -> Output {
        let mut out = Output::default();
        for (cmd, needs_success) in split_commands(line) {
            if needs_success && self.last != 0 {
                continue;
            }
            let argv = tokenize(&cmd);
            if argv.is_empty() {
                continue;
            }
            if argv[0] == "exit" {
                let code = argv
                    .get(1)
                    .map_or(Some(self.last), |a| a.parse::<i32>().ok())
                    .unwrap_or(2);
                out.exit = Some(code & 0xff);
                return out;
            }
            self.last = self.command(&argv, &mut out);
        }
        out
    }

    fn command(&self, argv: &[String], out: &mut Output) -> i32 {
        let args = &argv[1..];
        match argv[0].rsplit('/').next().unwrap_or("") {
            "echo" => {
                out.stdout.push_str(&args.join(" "));
                out.stdout.push('\n');
                0
            }
            "true" | ":" => 0,
            "false" => 1,
            "pwd" => {
                out.stdout.push_str("/\n");
                0
            }
            "hostname" => {
                out.stdout.push_str(&self.hostname);
                out.stdout.push('\n');
                0
            }
            "ls" => {
                let listing = match args
                    .iter()
                    .find(|a| !a.starts_with('-'))
                    .map(String::as_str)
                {
                    None | Some("/") => "bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n",
                    Some("/etc" | "/etc/") => "hostname\nhosts\npasswd\nresolv.conf\n",
                    Some("/tmp" | "/tmp/") => "",
                    Some(other) => {
                        out.stderr.push_str(&format!(
                            "ls: cannot access '{other}': No such file or directory\n"
                        ));
                        return 2;
                    }
                };
                out.stdout.push_str(listing);
                0
            }
            "env" | "printenv" => {
                for (k, v) in &self.env {
                    out.stdout.push_str(&format!("{k}={v}\n"));
                }
                0
            }
            "cat" => {
                let mut code = 0;
                for f in args {
                    match f.as_str() {
                        "/etc/hostname" => {
                            out.stdout.push_str(&self.hostname);
                            out.stdout.push('\n');
                        }
                        _ => {
                            out.stderr
                                .push_str(&format!("cat: {f}: No such file or directory\n"));
                            code = 1;
                        }
                    }
                }
                code
            }
            "pg_isready" => {
                if self.is_postgres {
                    out.stdout
                        .push_str("/var/run/postgresql:5432 - accepting connections\n");
                    0
                } else {
                    out.stdout.push_str("localhost:5432 - no response\n");
                    2
                }
            }
            other => {
                out.stderr.push_str(&format!("sh: {other}: not found\n"));
                127
            }
        }
    }
}

/// Splits on `;` and `&&` outside quotes; the flag says "run only if the last one succeeded".
fn split_commands(line: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut after_and = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (None, ';') => {
                out.push((std::mem::take(&mut cur), after_and));
                after_and = false;
            }
            (None, '&') if chars.peek() == Some(&'&') => {
                chars.next();
                out.push((std::mem::take(&mut cur), after_and));
                after_and = true;
            }
            (None, c) => cur.push(c),
        }
    }
    out.push((cur, after_and));
    out
}

/// Words with single and double quotes removed.
fn tokenize(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in cmd.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Real PostgreSQL behind the simulated postgres pods.

/// Programs that make an exec into a PostgreSQL pod run for real.
const PG_TOOLS: [&str; 8] = [
    "psql",
    "pg_dump",
    "pg_dumpall",
    "pg_isready",
    "pg_restore",
    "createdb",
    "dropdb",
    "vacuumdb",
];

/// `postgres-0` (image `postgres:*`) or a `postgres-backup-*` Job's pod; not PgBouncer or the
/// exporter.
fn is_postgres_pod(pod: &Value, container: &str) -> bool {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let image = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("");
    let image_name = image.rsplit('/').next().unwrap_or("");
    name.starts_with("postgres-backup-")
        || (image_name.starts_with("postgres:") || image_name == "postgres")
}

/// Whether the command line names one of [`PG_TOOLS`] as a word.
fn wants_real_postgres(argv: &[String]) -> bool {
    argv.iter().any(|a| {
        a.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| PG_TOOLS.contains(&w))
    })
}

/// Whether a step's text runs one of the Postgres tools (so, in the simulator, needs a real
/// PostgreSQL).
pub fn names_postgres_tool(text: &str) -> bool {
    wants_real_postgres(&[text.to_string()])
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The container's environment: plain values, and `secretKeyRef`s resolved from the store's
/// Secrets when the simulator serves them; `POSTGRES_USER`/`POSTGRES_DB` default to what the
/// official image uses.
fn pod_env(shared: &ClusterShared, pod: &Value, container: &str) -> Vec<(String, String)> {
    let hostname = pod["metadata"]["name"].as_str().unwrap_or("pod");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let mut env = vec![("HOSTNAME".to_string(), hostname.to_string())];
    let spec = pod["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container));
    let secrets = store::find_kind("", "secrets");
    for e in spec.and_then(|c| c["env"].as_array()).into_iter().flatten() {
        let Some(k) = e["name"].as_str() else {
            continue;
        };
        if let Some(v) = e["value"].as_str() {
            env.push((k.to_string(), v.to_string()));
        } else if let (Some(kind), Some(sname), Some(skey)) = (
            secrets,
            e["valueFrom"]["secretKeyRef"]["name"].as_str(),
            e["valueFrom"]["secretKeyRef"]["key"].as_str(),
        ) && let Some(secret) = shared.store.get(kind, ns, sname)
        {
            let v = secret["data"][skey]
                .as_str()
                .and_then(b64_decode)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .or_else(|| secret["stringData"][skey].as_str().map(str::to_string));
            if let Some(v) = v {
                env.push((k.to_string(), v));
            }
        }
    }
    for (k, default) in [
        ("POSTGRES_USER", "postgres"),
        ("POSTGRES_DB", "goapps"),
        ("POSTGRES_PASSWORD", "sim-postgres-password"),
    ] {
        if !env.iter().any(|(n, _)| n == k) {
            env.push((k.to_string(), default.to_string()));
        }
    }
    env
}

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// Where the PostgreSQL binaries are, or why the simulator cannot run a real server.
pub fn postgres_bin_dir() -> Result<std::path::PathBuf, String> {
    if std::env::var("OPSDECK_SIM_POSTGRES").is_ok_and(|v| v == "off" || v == "0") {
        return Err("OPSDECK_SIM_POSTGRES=off".into());
    }
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| {
            ["postgres", "initdb", "psql", "pg_dump"]
                .iter()
                .all(|n| b.join(n).is_file())
        })
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    let dir = found.pop().ok_or_else(|| {
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin with postgres, initdb, psql \
         and pg_dump; on Debian/Ubuntu: apt-get install postgresql)"
            .to_string()
    })?;
    if unsafe { libc::geteuid() } == 0 && server_user().is_none() {
        return Err(
            "the simulator runs as root and there is no user `postgres` to run the server as"
                .into(),
        );
    }
    Ok(dir)
}

/// The uid/gid the server (and, under root, the exec'd commands) run as: `postgres` when root.
fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if pw.is_null() {
        return None;
    }
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn chown(path: &std::path::Path) {
    if let Some((uid, gid)) = server_user()
        && let Ok(p) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
    {
        unsafe { libc::chown(p.as_ptr(), uid, gid) };
    }
}

/// The seeded `goapps`: the schemas of the real database with a few rows each, and the
/// golang-migrate tables of the services.
const SEED_SQL: &str = "\
SET client_min_messages = warning;
CREATE SCHEMA auth; CREATE SCHEMA finance; CREATE SCHEMA hr; CREATE SCHEMA export;
CREATE TABLE auth.users (id serial PRIMARY KEY, email text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO auth.users (email) SELECT 'user' || g || '@mutugading.com' FROM generate_series(1, 25) g;
CREATE TABLE hr.employees (id serial PRIMARY KEY, name text NOT NULL, user_id int REFERENCES auth.users(id));
INSERT INTO hr.employees (name, user_id) SELECT 'Employee ' || g, g FROM generate_series(1, 20) g;
CREATE TABLE finance.invoices (id serial PRIMARY KEY, number text NOT NULL, amount numeric(14,2) NOT NULL, issued_on date NOT NULL);
INSERT INTO finance.invoices (number, amount, issued_on) SELECT 'INV-2026-' || lpad(g::text, 5, '0'), g * 1000.50, date '2026-01-01' + g FROM generate_series(1, 120) g;
CREATE TABLE export.jobs (id serial PRIMARY KEY, kind text NOT NULL, done boolean NOT NULL DEFAULT false);
INSERT INTO export.jobs (kind) VALUES ('invoices'), ('employees'), ('users');
CREATE TABLE public.schema_migrations_iam (version bigint PRIMARY KEY, dirty boolean NOT NULL);
CREATE TABLE public.schema_migrations_finance (version bigint PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO public.schema_migrations_iam VALUES (20260301120000, false);
INSERT INTO public.schema_migrations_finance VALUES (20260315090000, false);
";

/// A running server: stopped (and its directory removed) when dropped.
pub struct RealPg {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    keeper: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for RealPg {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

use std::sync::Mutex;

/// The lazily started server of one simulated cluster (or why there is none).
#[derive(Default)]
pub struct RealPgSlot(tokio::sync::OnceCell<Result<Arc<RealPg>, String>>);

impl RealPgSlot {
    /// The server, started on the first call with the pod's superuser and database.
    pub async fn get(&self, env: &[(String, String)]) -> Result<Arc<RealPg>, String> {
        let user = env_value(env, "POSTGRES_USER").to_string();
        let password = env_value(env, "POSTGRES_PASSWORD").to_string();
        let db = env_value(env, "POSTGRES_DB").to_string();
        self.0
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || start_real_pg(&user, &password, &db))
                    .await
                    .map_err(|e| format!("starting PostgreSQL: {e}"))
                    .and_then(|r| r.map(Arc::new))
            })
            .await
            .clone()
    }
}

fn run_checked(mut c: std::process::Command, what: &str) -> Result<(), String> {
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn as_server_user(bin: &std::path::Path) -> std::process::Command {
    use std::os::unix::process::CommandExt as _;
    let mut c = std::process::Command::new(bin);
    if let Some((uid, gid)) = server_user() {
        c.uid(uid).gid(gid);
    }
    c.stdin(std::process::Stdio::null());
    c
}

fn start_real_pg(user: &str, password: &str, db: &str) -> Result<RealPg, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = postgres_bin_dir()?;
    let dir = tempfile::Builder::new()
        .prefix("opsdeck-sim-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700));
    chown(dir.path());
    let pwfile = dir.path().join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n")).map_err(|e| format!("pwfile: {e}"))?;
    let _ = std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600));
    chown(&pwfile);
    let data = dir.path().join("data");
    let mut initdb = as_server_user(&bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            user,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .args(["--no-sync", "-E", "UTF8", "--locale=C"]);
    run_checked(initdb, "initdb")?;
    let _ = std::fs::remove_file(&pwfile);
    let (tx_ready, rx_ready) = std::sync::mpsc::channel::<Result<u16, String>>();
    let (tx_stop, rx_stop) = std::sync::mpsc::channel::<()>();
    let (sock_dir, postgres) = (dir.path().to_path_buf(), bin.join("postgres"));
    // The keeper thread owns the server process: PR_SET_PDEATHSIG ties the server to the
    // thread that spawned it, so that thread lives exactly as long as the server.
    let keeper = std::thread::Builder::new()
        .name("sim-postgres".into())
        .spawn(move || keep_server(&postgres, &data, &sock_dir, tx_ready, rx_stop))
        .map_err(|e| format!("thread: {e}"))?;
    let port = rx_ready
        .recv_timeout(std::time::Duration::from_secs(60))
        .map_err(|_| "PostgreSQL did not start within 60s".to_string())??;
    let pg = RealPg {
        dir,
        port,
        bin,
        stop: Mutex::new(Some(tx_stop)),
        keeper: Mutex::new(Some(keeper)),
    };
    let psql = |dbname: &str, sql: &str| {
        let mut c = pg.client(&pg.bin.join("psql"));
        c.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            user,
            "-d",
            dbname,
            "-c",
            sql,
        ]);
        c
    };
    run_checked(
        psql(
            "postgres",
            &format!("CREATE DATABASE \"{}\"", db.replace('"', "")),
        ),
        "create database",
    )?;
    run_checked(psql(db, SEED_SQL), "seed database")?;
    tracing::info!(port, "sim: real PostgreSQL started for postgres-0");
    Ok(pg)
}

fn keep_server(
    postgres: &std::path::Path,
    data: &std::path::Path,
    sock_dir: &std::path::Path,
    ready: std::sync::mpsc::Sender<Result<u16, String>>,
    stop: std::sync::mpsc::Receiver<()>,
) {
    use std::os::unix::process::CommandExt as _;
    let mut last_err = String::from("no free port");
    for _ in 0..5 {
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => {
                last_err = e.to_string();
                continue;
            }
        };
        let mut c = as_server_user(postgres);
        c.arg("-D")
            .arg(data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", sock_dir.display()))
            .args(["-c", "fsync=off", "-c", "shared_buffers=16MB"])
            .args(["-c", "max_connections=100", "-c", "timezone=Asia/Jakarta"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = match c.spawn() {
            Ok(ch) => ch,
            Err(e) => {
                let _ = ready.send(Err(format!("postgres: {e}")));
                return;
            }
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut up = false;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        if !up {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            last_err = err.lines().last().unwrap_or("did not listen").to_string();
            continue;
        }
        // Nobody reads the server's log: let it go to /dev/null from now on.
        drop(child.stderr.take());
        let _ = ready.send(Ok(port));
        let _ = stop.recv();
        // Fast shutdown, then kill.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        for _ in 0..100 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let _ = ready.send(Err(format!("postgres did not start: {last_err}")));
}

impl RealPg {
    /// A client command aimed at this server (socket, port), run as `postgres` under root.
    fn client(&self, program: &std::path::Path) -> std::process::Command {
        let mut c = as_server_user(program);
        c.env_clear()
            .env("PATH", self.path_var())
            .env("PGHOST", self.dir.path())
            .env("PGPORT", self.port.to_string())
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path());
        c
    }

    fn path_var(&self) -> String {
        format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin.display())
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Runs the exec'd command as a local process against the cluster's real PostgreSQL.
async fn real_session(
    mut socket: WebSocket,
    pg: Result<Arc<RealPg>, String>,
    env: Vec<(String, String)>,
    p: ExecParams,
    v5: bool,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let argv = &p.command;
    let pg = match pg {
        Ok(pg) => pg,
        Err(why) => {
            let text = format!(
                "opsdeck sim: {} needs a real PostgreSQL, which the simulator cannot start: {why}\n",
                argv.first().map_or("this command", String::as_str)
            );
            let out = Output {
                stderr: text,
                ..Output::default()
            };
            if emit(&mut socket, &out, p.tty).await {
                finish(&mut socket, 127, argv).await;
            }
            return;
        }
    };
    let mut cmd = tokio::process::Command::from(pg.client(std::path::Path::new(&argv[0])));
    cmd.args(&argv[1..]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    cmd.env("PGHOST", pg.dir.path())
        .env("PGPORT", pg.port.to_string())
        .env("PATH", pg.path_var())
        .process_group(0)
        .kill_on_drop(true)
        .stdin(if p.stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let out = Output {
                stderr: format!("sh: {}: {e}\n", argv[0]),
                ..Output::default()
            };
            if emit(&mut socket, &out, p.tty).await {
                finish(&mut socket, 127, argv).await;
            }
            return;
        }
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<(u8, Vec<u8>)>();
    for (chan, reader) in [
        (
            STDOUT,
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
        (
            if p.tty { STDOUT } else { STDERR },
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ),
    ] {
        let Some(mut reader) = reader else { continue };
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 || tx.send((chan, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        });
    }
    drop(out_tx);
    let (in_tx, mut in_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            while let Some(data) = in_rx.recv().await {
                if stdin.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = stdin.shutdown().await;
        });
    }
    let mut in_tx = Some(in_tx);
    loop {
        tokio::select! {
            chunk = out_rx.recv() => match chunk {
                Some((chan, data)) => {
                    let data = if p.tty {
                        String::from_utf8_lossy(&data).replace('\n', "\r\n").into_bytes()
                    } else {
                        data
                    };
                    if !send(&mut socket, chan, &data).await {
                        return;
                    }
                }
                None => break,
            },
            msg = socket.recv() => {
                let data: Vec<u8> = match msg {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                match data.split_first() {
                    Some((&STDIN, payload)) => {
                        if let Some(tx) = &in_tx {
                            let _ = tx.send(payload.to_vec());
                        }
                    }
                    Some((&CLOSE, rest)) if v5 && rest.first() == Some(&STDIN) => in_tx = None,
                    _ => {}
                }
            }
        }
    }
    drop(in_tx);
    let code = match child.wait().await {
        Ok(st) => st.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt as _;
            128 + st.signal().unwrap_or(0)
        }),
        Err(_) => 1,
    };
    finish(&mut socket, code, argv).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell() -> Shell {
        Shell::for_pod(
            &json!({"metadata": {"name": "db-0"}, "spec": {"containers": [{"name": "postgres", "image": "postgres:18",
                "env": [{"name": "PGDATA", "value": "/var/lib/postgresql/data"}]}]}}),
            "postgres",
            false,
        )
    }

    #[test]
    fn shell_runs_the_known_commands() {
        let mut s = shell();
        assert_eq!(s.run("echo hi  'a b'").stdout, "hi a b\n");
        assert_eq!(s.run("cat /etc/hostname").stdout, "db-0\n");
        assert!(
            s.run("env")
                .stdout
                .contains("PGDATA=/var/lib/postgresql/data\n")
        );
        assert!(s.run("pg_isready").stdout.contains("accepting connections"));
        let o = s.run("nope");
        assert_eq!(o.stderr, "sh: nope: not found\n");
        assert_eq!(s.last, 127);
        assert_eq!(s.run("exit 3").exit, Some(3));
        assert_eq!(s.run("false && echo no; echo yes").stdout, "yes\n");
        assert_eq!(s.run("exit").exit, Some(0));
    }

    #[test]
    fn exec_paths_and_params_parse() {
        assert_eq!(
            matches(&["api", "v1", "namespaces", "n", "pods", "p", "exec"]),
            Some(("n", "p"))
        );
        let p = params(&[
            ("command".into(), "sh".into()),
            ("command".into(), "-c".into()),
            ("tty".into(), "true".into()),
        ]);
        assert_eq!(p.command, ["sh", "-c"]);
        assert!(p.tty && !p.stdin);
        assert_eq!(exit_status(3, &[])["details"]["causes"][0]["message"], "3");
    }
}
