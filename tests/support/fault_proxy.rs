//! A fault-injecting TCP proxy for HTTP/1.1 servers, put between a source and a simulated
//! server to see what the console shows when the network or the server misbehaves.
//!
//! Each client connection carries one request (the proxy asks the server to close after it,
//! and the server's answer says so), so every request can be inspected for the HTTP-level
//! faults. Faults:
//! - `Stall`: new and established connections stay open, nothing is forwarded either way
//!   (what a SIGSTOPped server or a black-holed route looks like); bytes held back flow on
//!   when the stall ends, as after SIGCONT;
//! - `Refuse`: the listener is closed (connections refused); the port is bound again after;
//! - `cut()`: resets every established connection (RST);
//! - `Answer500`, `Answer401`: every request is answered by the proxy with that status;
//! - `GoneOnWatch`: every request with `watch=true` in its query is answered `410 Gone`;
//!   `ExpiredOnWatch`: the same as a watch event (`ERROR` with a 410 Status), as a real API
//!   server says it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Stall,
    Refuse,
    Answer500,
    Answer401,
    GoneOnWatch,
    /// Every watch request is answered the way a real API server says its resourceVersion
    /// is too old: `200` and one `ERROR` event carrying a 410 Status, then the end.
    ExpiredOnWatch,
}

struct Shared {
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Bumped to reset every established connection.
    cut: watch::Sender<u64>,
    /// Requests seen (the request line), for counting what a client asks.
    requests: Mutex<Vec<(std::time::Instant, String)>>,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(t) = self.accept.lock().unwrap().take() {
            t.abort();
        }
        self.shared.cut.send_modify(|g| *g += 1);
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            fault: watch::Sender::new(Fault::None),
            cut: watch::Sender::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let p = FaultProxy {
            addr,
            shared,
            accept: Mutex::new(None),
        };
        p.serve(listener);
        p
    }

    /// For a URL such as `http://127.0.0.1:1234`.
    pub async fn for_url(url: &str) -> FaultProxy {
        let hostport = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        FaultProxy::start(hostport.parse().expect("upstream address")).await
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(connection(shared.clone(), sock));
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches a fault on, or off with `Fault::None`.
    pub fn set(&self, fault: Fault) {
        let before = self.shared.fault.send_replace(fault);
        if fault == Fault::Refuse
            && before != Fault::Refuse
            && let Some(t) = self.accept.lock().unwrap().take()
        {
            t.abort();
        }
        if before == Fault::Refuse && fault != Fault::Refuse {
            let mut last = None;
            for _ in 0..50 {
                match bind(self.addr) {
                    Ok(l) => {
                        self.serve(l);
                        return;
                    }
                    Err(e) => last = Some(e),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("proxy cannot bind {} again: {last:?}", self.addr);
        }
    }

    /// Resets every established connection.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|g| *g += 1);
    }

    /// Request lines seen so far, with when.
    pub fn requests(&self) -> Vec<(std::time::Instant, String)> {
        self.shared.requests.lock().unwrap().clone()
    }
}

/// Waits while the proxy is stalled; false when the connection is to be reset meanwhile.
async fn unstalled(fault: &mut watch::Receiver<Fault>, cut: &mut watch::Receiver<u64>) -> bool {
    loop {
        if *fault.borrow_and_update() != Fault::Stall {
            return true;
        }
        tokio::select! {
            r = fault.changed() => if r.is_err() { return false },
            _ = cut.changed() => return false,
        }
    }
}

fn reset(sock: &TcpStream) {
    let _ = sock.set_zero_linger();
}

fn canned(code: u16, reason: &str, status_reason: &str, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": status_reason, "code": code
    })
    .to_string();
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn connection(shared: Arc<Shared>, mut client: TcpStream) {
    let mut fault = shared.fault.subscribe();
    let mut cut = shared.cut.subscribe();
    cut.borrow_and_update();
    // Read the request head (GET requests carry no body).
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        tokio::select! {
            r = client.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            },
            _ = cut.changed() => { reset(&client); return; }
        }
    }
    if !unstalled(&mut fault, &mut cut).await {
        reset(&client);
        return;
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or("").to_string();
    shared
        .requests
        .lock()
        .unwrap()
        .push((std::time::Instant::now(), line.clone()));
    let answer = match *fault.borrow() {
        Fault::Answer500 => Some(canned(
            500,
            "Internal Server Error",
            "InternalError",
            "etcdserver: request timed out",
        )),
        Fault::Answer401 => Some(canned(401, "Unauthorized", "Unauthorized", "Unauthorized")),
        Fault::GoneOnWatch if line.contains("watch=true") || line.contains("watch=1") => {
            Some(canned(410, "Gone", "Expired", "too old resource version"))
        }
        Fault::ExpiredOnWatch if line.contains("watch=true") || line.contains("watch=1") => {
            let event = serde_json::json!({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: 1 (2)", "reason": "Expired", "code": 410}})
            .to_string()
                + "\n";
            Some(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{event}",
                    event.len()
                )
                .into_bytes(),
            )
        }
        _ => None,
    };
    if let Some(a) = answer {
        let _ = client.write_all(&a).await;
        let _ = client.shutdown().await;
        return;
    }
    // One request per connection: ask the server to close after answering.
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    lines.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
    // Right after the request line.
    lines.insert(1, "Connection: close");
    let head = lines.join("\r\n");
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else {
        reset(&client);
        return;
    };
    if server.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let mut up = [0u8; 16384];
    let mut down = [0u8; 65536];
    let mut fault2 = fault.clone();
    let mut cut2 = cut.clone();
    let pump = async {
        loop {
            tokio::select! {
                r = sr.read(&mut down) => {
                    let n = match r { Ok(0) | Err(_) => return true, Ok(n) => n };
                    if !unstalled(&mut fault2, &mut cut2).await { return false; }
                    if cw.write_all(&down[..n]).await.is_err() { return true; }
                }
                r = cr.read(&mut up) => {
                    let n = match r { Ok(0) | Err(_) => return true, Ok(n) => n };
                    if !unstalled(&mut fault2, &mut cut2).await { return false; }
                    if sw.write_all(&up[..n]).await.is_err() { return true; }
                }
                _ = cut2.changed() => return false,
            }
        }
    };
    let clean = pump.await;
    if !clean {
        reset(&client);
        reset(&server);
    }
}
