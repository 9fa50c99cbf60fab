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
    let shell = Shell::for_pod(&pod, &container, p.tty);
    let v5 = proto.starts_with("v5");
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
