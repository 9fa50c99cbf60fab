//! End-to-end measurements of the release binary in a pseudo-terminal (screen parsed with
//! vt100) against 2 simulated clusters x `BENCH_PODS` heavy pods. Not a criterion bench and
//! not run by CI: `scripts/bench.sh` builds the release binary and runs this with
//! `OPSDECK_BIN=...`; BENCHMARKS.md records the figures.
//!
//! Scenarios (`BENCH_ONLY=launch,idle,latency`, default all):
//! - `launch`: a separate `opsdeck sim --pods N` process (churn on, as shipped); per run, time
//!   from spawning `opsdeck --config PATH` until the first frame and until both clusters' pod
//!   counts are on screen, VmRSS after 10 s and 60 s (`BENCH_RSS_LONG=0` skips the 60 s), and
//!   the wall time of `opsdeck --config PATH status --json`.
//! - `idle`: the fleet in this process with churn paused, behind counting TCP proxies: CPU
//!   (utime+stime), bytes written to the terminal and bytes/requests from the API servers per
//!   30 s window, with nothing changing and then with one pod change per second.
//! - `latency`: a pod turned CrashLoopBackOff in the simulator until its name is on screen,
//!   and back until it is gone.

use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerState, ContainerStateWaiting, Pod};
use opsdeck::sim::{Fleet, SimOptions};
use portable_pty::{Child, CommandBuilder, PtySize, native_pty_system};

const ROWS: u16 = 48;
const COLS: u16 = 160;
const TIMEOUT: Duration = Duration::from_secs(120);

fn env_or<T: std::str::FromStr>(k: &str, default: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------- the console in a PTY

struct Console {
    screen: Arc<Mutex<vt100::Parser>>,
    bytes: Arc<AtomicU64>,
    child: Box<dyn Child + Send + Sync>,
    pid: i32,
    started: Instant,
    _master: Box<dyn portable_pty::MasterPty + Send>,
    _home: tempfile::TempDir,
}

impl Console {
    fn start(bin: &Path, config: &Path) -> Console {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pty");
        let home = tempfile::tempdir().expect("a temp home");
        let mut cmd = CommandBuilder::new(bin);
        cmd.args(["--config".as_ref(), config.as_os_str()]);
        cmd.env("TERM", "xterm-256color");
        cmd.env("HOME", home.path());
        cmd.env("XDG_STATE_HOME", home.path().join("state"));
        cmd.env("XDG_CONFIG_HOME", home.path().join("config"));
        cmd.env_remove("OPSDECK_CONFIG");
        cmd.env_remove("RUST_LOG");
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
        let bytes = Arc::new(AtomicU64::new(0));
        let (s, b) = (screen.clone(), bytes.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                b.fetch_add(n as u64, Ordering::Relaxed);
                s.lock().unwrap().process(&buf[..n]);
            }
        });
        let started = Instant::now();
        let child = pair.slave.spawn_command(cmd).expect("opsdeck starts");
        drop(pair.slave);
        let pid = child.process_id().expect("a pid") as i32;
        Console {
            screen,
            bytes,
            child,
            pid,
            started,
            _master: pair.master,
            _home: home,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Polls the parsed screen every millisecond until `pred` holds; the time it first held.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> Instant {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if pred(&self.contents()) {
                return Instant::now();
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{}", self.contents());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// utime + stime in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the comm: state is field 3, utime 14, stime 15 (1-based over the whole line).
        let get = |i: usize| {
            f.get(i - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        get(14) + get(15)
    }

    fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn stop(mut self) {
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both clusters' "Pods N" lines are on screen with N >= `pods`.
fn both_clusters_on_screen(screen: &str, pods: usize) -> bool {
    screen
        .match_indices("Pods ")
        .filter(|(i, _)| {
            screen[i + 5..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= pods)
        })
        .count()
        >= 2
}

fn first_frame(screen: &str) -> bool {
    screen.contains("staging") && screen.contains("production")
}

// ---------------------------------------------------------------- statistics

fn stats(label: &str, unit: &str, v: &mut [f64]) {
    if v.is_empty() {
        println!("{label}: no samples");
        return;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    println!(
        "| {label} | {} | {:.2} | {:.2} | {:.2} | {unit} |",
        v.len(),
        v[0],
        med,
        v[v.len() - 1]
    );
}

// ---------------------------------------------------------------- counting proxy

#[derive(Default)]
struct Traffic {
    down: AtomicU64,
    up: AtomicU64,
    requests: Mutex<Vec<String>>,
}

/// A TCP proxy on a free loopback port in front of `upstream`, counting bytes each way and
/// noting the request lines the client sends (the API is plain HTTP/1.1 on loopback).
async fn proxy(upstream: String, traffic: Arc<Traffic>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let t = traffic.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    t.up.fetch_add(n as u64, Ordering::Relaxed);
                    for line in String::from_utf8_lossy(&buf[..n]).lines() {
                        if line.starts_with("GET ") || line.starts_with("POST ") {
                            t.requests.lock().unwrap().push(line.to_string());
                        }
                    }
                }
                let _ = sw.shutdown().await;
            });
            let t = traffic.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    t.down.fetch_add(n as u64, Ordering::Relaxed);
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- scenarios

fn launch(bin: &Path, pods: usize, runs: usize) {
    println!("\n## launch (separate `opsdeck sim --pods {pods}` process, churn on)\n");
    let t = Instant::now();
    let mut sim = Command::new(bin)
        .args(["sim", "--pods", &pods.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("opsdeck sim starts");
    let mut config = None;
    for line in BufReader::new(sim.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("config: ") {
            config = Some(PathBuf::from(p));
        }
        if line.starts_with("s3: ") {
            break;
        }
    }
    let config = config.expect("sim printed its config");
    println!(
        "sim ready after {:.1} s; config {}",
        t.elapsed().as_secs_f64(),
        config.display()
    );
    let long = env_or("BENCH_RSS_LONG", 1) == 1;
    let (mut first, mut both, mut rss10, mut rss60) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let c = Console::start(bin, &config);
        let f = c.wait_for("the first frame", first_frame);
        let b = c.wait_for("both clusters' pods", |s| both_clusters_on_screen(s, pods));
        first.push((f - c.started).as_secs_f64() * 1e3);
        both.push((b - c.started).as_secs_f64() * 1e3);
        std::thread::sleep(
            (c.started + Duration::from_secs(10)).saturating_duration_since(Instant::now()),
        );
        rss10.push(c.rss_kib() as f64 / 1024.0);
        if long {
            std::thread::sleep(
                (c.started + Duration::from_secs(60)).saturating_duration_since(Instant::now()),
            );
            rss60.push(c.rss_kib() as f64 / 1024.0);
        }
        eprintln!(
            "run {run}: first frame {:.0} ms, both clusters {:.0} ms, rss10 {:.1} MiB",
            first[run], both[run], rss10[run]
        );
        c.stop();
    }
    let mut status = vec![];
    let mut status_bytes = 0;
    for _ in 0..runs.max(3) {
        let t = Instant::now();
        let out = Command::new(bin)
            .args([
                "--config".as_ref(),
                config.as_os_str(),
                "status".as_ref(),
                "--json".as_ref(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("status runs");
        status.push(t.elapsed().as_secs_f64() * 1e3);
        status_bytes = out.stdout.len();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\"total\":"),
            "status --json said: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    println!("| measure | runs | min | median | max | unit |\n|---|---|---|---|---|---|");
    stats("launch -> first frame", "ms", &mut first);
    stats("launch -> both clusters' pods on screen", "ms", &mut both);
    stats("VmRSS after 10 s", "MiB", &mut rss10);
    stats("VmRSS after 60 s", "MiB", &mut rss60);
    stats("`status --json` wall time", "ms", &mut status);
    println!("(status --json printed {status_bytes} bytes)");
    unsafe {
        libc::kill(sim.id() as i32, libc::SIGTERM);
    }
    let _ = sim.wait();
}

/// The fleet in this process, churn off, each API server behind a counting proxy; returns
/// the fleet, the config to start opsdeck with (in `dir`) and the per-cluster traffic.
async fn proxied_fleet(pods: usize, dir: &Path) -> (Fleet, PathBuf, Vec<Arc<Traffic>>) {
    let fleet = Fleet::start(SimOptions { pods, churn: false })
        .await
        .expect("fleet");
    let mut kubeconfig = std::fs::read_to_string(fleet.kubeconfig_path()).unwrap();
    let mut traffic = vec![];
    for c in fleet.clusters() {
        let t = Arc::new(Traffic::default());
        let url = c.url();
        let upstream = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let addr = proxy(upstream, t.clone()).await;
        kubeconfig = kubeconfig.replace(&url, &format!("http://{addr}"));
        traffic.push(t);
    }
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, kubeconfig).unwrap();
    let config = std::fs::read_to_string(fleet.config_path())
        .unwrap()
        .replace(
            &fleet.kubeconfig_path().display().to_string(),
            &kc.display().to_string(),
        );
    let config = if kube_only() {
        only_kubernetes(&config)
    } else {
        config
    };
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    (fleet, cfg, traffic)
}

/// `BENCH_KUBE_ONLY=1`: the clusters without their PgBouncer, Redis, backups and ArgoCD
/// tables (whose simulators change their figures by themselves, churn or not), so that
/// "nothing changes" holds for everything the console shows.
fn kube_only() -> bool {
    env_or("BENCH_KUBE_ONLY", 0) == 1
}

/// The config text with every table other than `[[cluster]]` dropped.
fn only_kubernetes(config: &str) -> String {
    let mut keep = true;
    let mut out = String::new();
    for line in config.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            keep = t == "[[cluster]]";
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A healthy Running pod of cluster `c` (from the filler `load` pods when there are any).
fn healthy_pods(fleet: &Fleet, cluster: &str, n: usize) -> Vec<(String, String)> {
    let c = fleet.cluster(cluster).unwrap();
    c.pods()
        .into_iter()
        .filter(|p| {
            let st = p.status.as_ref();
            st.and_then(|s| s.phase.as_deref()) == Some("Running")
                && st
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|p| {
            (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            )
        })
        .rev()
        .take(n)
        .collect()
}

fn crash(p: &mut Pod) {
    if let Some(st) = p.status.as_mut() {
        for c in st.conditions.iter_mut().flatten() {
            if c.type_ == "Ready" || c.type_ == "ContainersReady" {
                c.status = "False".into();
            }
        }
        for cs in st.container_statuses.iter_mut().flatten() {
            cs.ready = false;
            cs.restart_count = 9_999;
            cs.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    message: Some("back-off 5m0s restarting failed container".into()),
                }),
                ..Default::default()
            });
        }
    }
}

fn idle_and_latency(bin: &Path, pods: usize, runs: usize, idle: bool, latency: bool) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (fleet, config, traffic) = rt.block_on(proxied_fleet(pods, dir.path()));
    let c = Console::start(bin, &config);
    let b = c.wait_for("both clusters' pods", |s| both_clusters_on_screen(s, pods));
    eprintln!(
        "console up, both clusters after {:.0} ms",
        (b - c.started).as_secs_f64() * 1e3
    );
    std::thread::sleep(Duration::from_secs(5));
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let window = Duration::from_secs(env_or("BENCH_WINDOW_S", 30));
    let measure = |label: &str, change: &dyn Fn(usize)| {
        let (mut cpu, mut out, mut down, mut reqs) = (vec![], vec![], vec![], vec![]);
        for run in 0..runs {
            let (c0, b0) = (c.cpu_ticks(), c.bytes());
            let d0: u64 = traffic.iter().map(|t| t.down.load(Ordering::Relaxed)).sum();
            let r0: Vec<usize> = traffic
                .iter()
                .map(|t| t.requests.lock().unwrap().len())
                .collect();
            let t0 = Instant::now();
            let mut tick = 0;
            while t0.elapsed() < window {
                std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
                change(tick);
                tick += 1;
            }
            let secs = t0.elapsed().as_secs_f64();
            let ticks = c.cpu_ticks() - c0;
            cpu.push(ticks as f64 / hz / secs * 100.0);
            out.push((c.bytes() - b0) as f64 / secs);
            let d1: u64 = traffic.iter().map(|t| t.down.load(Ordering::Relaxed)).sum();
            down.push((d1 - d0) as f64 * 30.0 / secs);
            let mut n = 0;
            for (t, from) in traffic.iter().zip(&r0) {
                let seen = t.requests.lock().unwrap();
                for r in &seen[*from..] {
                    eprintln!("  request during window {run}: {r}");
                    n += 1;
                }
            }
            reqs.push(n as f64);
            eprintln!(
                "{label} window {run}: cpu {:.2} %, terminal {:.1} B/s, api {:.0} B/30 s",
                cpu[run], out[run], down[run]
            );
        }
        println!(
            "\n## {label} ({runs} consecutive {}-s windows, one console, {})\n",
            window.as_secs(),
            if kube_only() {
                "Kubernetes-only config"
            } else {
                "full sim config"
            }
        );
        println!("| measure | runs | min | median | max | unit |\n|---|---|---|---|---|---|");
        stats("CPU (utime+stime)", "% of a core", &mut cpu);
        stats("bytes written to the terminal", "B/s", &mut out);
        stats("bytes from both API servers", "B/30 s", &mut down);
        stats("HTTP requests to both API servers", "per window", &mut reqs);
    };
    if idle {
        measure("idle, churn paused", &|_| {});
        let staging = fleet.cluster("staging").unwrap();
        let victims = healthy_pods(&fleet, "staging", 1);
        let (ns, name) = victims[0].clone();
        measure("one pod change per second (a restart count +1)", &|_| {
            staging.modify_pod(&ns, &name, |p| {
                if let Some(cs) = p
                    .status
                    .as_mut()
                    .and_then(|s| s.container_statuses.as_mut())
                    .and_then(|v| v.first_mut())
                {
                    cs.restart_count += 1;
                }
            });
        });
    }
    if latency {
        let staging = fleet.cluster("staging").unwrap();
        let samples = env_or("BENCH_LATENCY_SAMPLES", 10usize).max(runs);
        let victims = healthy_pods(&fleet, "staging", samples);
        let (mut show, mut hide) = (vec![], vec![]);
        for (ns, name) in &victims {
            let original = staging
                .pods()
                .into_iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                .unwrap();
            // The overview shows `namespace/name`, truncated at the column's width.
            let needle: String = name.chars().take(24).collect();
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            staging.modify_pod(ns, name, crash);
            let t1 = c.wait_for("the crash-looping pod", |s| s.contains(&needle));
            show.push((t1 - t0).as_secs_f64() * 1e3);
            std::thread::sleep(Duration::from_millis(300));
            let t0 = Instant::now();
            let orig = original.clone();
            staging.modify_pod(ns, name, move |p| *p = orig);
            let t1 = c.wait_for("the pod gone from the list", |s| !s.contains(&needle));
            hide.push((t1 - t0).as_secs_f64() * 1e3);
        }
        println!(
            "\n## change-to-screen latency (churn paused, {} samples)\n",
            show.len()
        );
        println!("| measure | runs | min | median | max | unit |\n|---|---|---|---|---|---|");
        stats("pod turns CrashLoopBackOff -> on screen", "ms", &mut show);
        stats("pod healthy again -> off screen", "ms", &mut hide);
    }
    let _ = std::io::stdout().flush();
    c.stop();
    rt.block_on(fleet.shutdown());
}

fn main() {
    let bin = PathBuf::from(
        std::env::var("OPSDECK_BIN").unwrap_or_else(|_| "target/release/opsdeck".into()),
    );
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert!(
        bin.exists(),
        "OPSDECK_BIN={} does not exist (build --release first)",
        bin.display()
    );
    let pods = env_or("BENCH_PODS", 5_000usize);
    let runs = env_or("BENCH_RUNS", 3usize);
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| "launch,idle,latency".into());
    let has = |s: &str| only.split(',').any(|o| o.trim() == s);
    println!(
        "# e2e: {} at 2 clusters x {pods} pods, {COLS}x{ROWS} terminal",
        bin.display()
    );
    if has("launch") {
        launch(&bin, pods, runs);
    }
    if has("idle") || has("latency") {
        idle_and_latency(&bin, pods, runs, has("idle"), has("latency"));
    }
}
