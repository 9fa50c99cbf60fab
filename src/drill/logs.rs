//! Live log tails: a task that streams a container's log (follow, previous, tail lines) into a
//! channel until cancelled, and the bounded buffer a view keeps with search within it.

use std::collections::VecDeque;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lines::{LineSplitter, MAX_LINE, next_line};

/// Lines a log view keeps; older ones are dropped.
pub const DEFAULT_CAPACITY: usize = 2_000;

/// Which log to tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    /// `None` lets the API pick (only valid for one-container pods).
    pub container: Option<String>,
    /// The previous (crashed) instance's log instead of the current one; never follows.
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub follow: bool,
}

impl LogRequest {
    /// Follow the current container, starting from the last 200 lines.
    pub fn follow(namespace: &str, pod: &str, container: Option<&str>) -> LogRequest {
        LogRequest {
            namespace: namespace.into(),
            pod: pod.into(),
            container: container.map(str::to_string),
            previous: false,
            tail_lines: Some(200),
            follow: true,
        }
    }
}

/// What the tail task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    Line(String),
    /// The stream ended (the container stopped, or a non-follow read finished).
    Ended,
    /// The stream could not start or broke.
    Error(String),
}

/// Streams the log of `req` into `tx` until the stream ends, `cancel` fires, or the receiver
/// goes away. Always ends with `Ended` or `Error` unless cancelled or the receiver is gone.
pub async fn tail(
    client: kube::Client,
    req: LogRequest,
    tx: mpsc::Sender<LogEvent>,
    cancel: CancellationToken,
) {
    let lp = LogParams {
        container: req.container.clone(),
        follow: req.follow && !req.previous,
        previous: req.previous,
        tail_lines: req.tail_lines,
        ..LogParams::default()
    };
    let api: Api<Pod> = Api::namespaced(client, &req.namespace);
    let what = format!(
        "log of {}/{}{}",
        req.namespace,
        req.pod,
        if req.previous { " (previous)" } else { "" }
    );
    let stream = tokio::select! {
        s = api.log_stream(&req.pod, &lp) => s,
        () = cancel.cancelled() => return,
    };
    let reader = match stream {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(LogEvent::Error(format!("{what}: {e}"))).await;
            return;
        }
    };
    forward_lines(reader, &what, &tx, &cancel).await;
}

/// Sends each line of `reader` as a [`LogEvent::Line`], every line bounded to
/// [`MAX_LINE`](crate::lines::MAX_LINE) bytes (a container printing without newlines costs no
/// memory beyond that), then `Ended` or `Error`; stops early on cancel or a closed receiver.
async fn forward_lines(
    reader: impl futures::AsyncBufRead,
    what: &str,
    tx: &mpsc::Sender<LogEvent>,
    cancel: &CancellationToken,
) {
    let mut reader = Box::pin(reader);
    let mut splitter = LineSplitter::new(MAX_LINE);
    loop {
        let next = tokio::select! {
            l = next_line(&mut reader, &mut splitter) => l,
            () = cancel.cancelled() => return,
            () = tx.closed() => return,
        };
        let ev = match next {
            Ok(Some(l)) => LogEvent::Line(l.into_text()),
            Err(e) => LogEvent::Error(format!("{what}: {e}")),
            Ok(None) => LogEvent::Ended,
        };
        let last = !matches!(ev, LogEvent::Line(_));
        if tx.send(ev).await.is_err() || last {
            return;
        }
    }
}

/// Starts [`tail`] on the runtime; cancel the token to stop it.
pub fn spawn_tail(
    client: kube::Client,
    req: LogRequest,
    tx: mpsc::Sender<LogEvent>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(tail(client, req, tx, cancel.clone()));
    (cancel, task)
}

/// The lines a log view holds: at most `capacity`, oldest dropped first.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: VecDeque<String>,
    capacity: usize,
    /// Lines dropped off the front since the start, so line numbers stay stable.
    dropped: u64,
}

impl Default for LogBuffer {
    fn default() -> Self {
        LogBuffer::new(DEFAULT_CAPACITY)
    }
}

impl LogBuffer {
    pub fn new(capacity: usize) -> LogBuffer {
        LogBuffer {
            lines: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, line: String) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn clear(&mut self) {
        self.dropped += self.lines.len() as u64;
        self.lines.clear();
    }

    pub fn get(&self, i: usize) -> Option<&str> {
        self.lines.get(i).map(String::as_str)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.lines.iter().map(String::as_str)
    }

    /// Indexes of lines containing `query` (case-insensitive when it is all lowercase).
    pub fn search(&self, query: &str) -> Vec<usize> {
        if query.is_empty() {
            return Vec::new();
        }
        let fold = !query.chars().any(char::is_uppercase);
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| {
                if fold {
                    contains_ignore_ascii_case(l, query)
                } else {
                    l.contains(query)
                }
            })
            .map(|(i, _)| i)
            .collect()
    }
}

/// Byte offsets of every match of `needle` in `line` (ASCII case folding when `fold`), for
/// highlighting.
pub fn match_ranges(line: &str, needle: &str, fold: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    if needle.is_empty() || needle.len() > line.len() {
        return out;
    }
    let (h, n) = (line.as_bytes(), needle.as_bytes());
    let mut i = 0;
    while i + n.len() <= h.len() {
        let hit = if fold {
            h[i..i + n.len()].eq_ignore_ascii_case(n)
        } else {
            &h[i..i + n.len()] == n
        };
        if hit && line.is_char_boundary(i) && line.is_char_boundary(i + n.len()) {
            out.push((i, i + n.len()));
            i += n.len();
        } else {
            i += 1;
        }
    }
    out
}

fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.len() <= h.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_log_line_without_end_is_cut_and_the_tail_goes_on() {
        let mut data = vec![b'z'; 5 * MAX_LINE];
        data.extend_from_slice(b"\nnext line\n");
        let reader = futures::io::Cursor::new(data);
        let (tx, mut rx) = mpsc::channel(16);
        forward_lines(reader, "log", &tx, &CancellationToken::new()).await;
        let LogEvent::Line(first) = rx.recv().await.unwrap() else {
            panic!("not a line");
        };
        assert!(first.starts_with("zzz") && first.len() < MAX_LINE + 64);
        assert!(first.ends_with(&crate::lines::cut_marker(4 * MAX_LINE as u64)));
        assert_eq!(rx.recv().await, Some(LogEvent::Line("next line".into())));
        assert_eq!(rx.recv().await, Some(LogEvent::Ended));
    }

    #[test]
    fn buffer_keeps_the_newest_lines() {
        let mut b = LogBuffer::new(3);
        for i in 0..5 {
            b.push(format!("line {i}"));
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(0), Some("line 2"));
        assert_eq!(b.dropped(), 2);
    }

    #[test]
    fn search_is_smart_case() {
        let mut b = LogBuffer::new(10);
        b.push("Connection refused".into());
        b.push("ok".into());
        b.push("connection reset".into());
        assert_eq!(b.search("connection"), [0, 2]);
        assert_eq!(b.search("Connection"), [0]);
        assert!(b.search("").is_empty());
        assert_eq!(match_ranges("a Bb bb", "bb", true), [(2, 4), (5, 7)]);
    }
}
