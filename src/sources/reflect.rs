//! One Kubernetes kind kept equal to the server by list + watch, written so that the
//! result is correct by construction, plus the liveness rules every Kubernetes source shares.
//!
//! The contract (checked by a property test below):
//! - a complete list (every page) **replaces** the kind's table in one step, so whatever the
//!   table held before (from an older list, a watch that broke, a server that was replaced)
//!   cannot survive a relist;
//! - a watch resumes from the last resourceVersion only after a clean end (the server's own
//!   timeout); after a 410, a broken connection, an error answer or a resourceVersion that goes
//!   backwards (a replaced API server) the kind is listed again;
//! - each kind has its own table: a relist of one kind never touches another;
//! - objects are decoded one by one: one that does not decode is one bad row, never a failed
//!   list.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::Client;
use kube::api::{ListParams, WatchParams};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::mpsc::UnboundedSender;

pub use crate::model::kube::Undecodable;

/// After this long without a word from the API server (no event, no bookmark, no page), the
/// source asks it something cheap on the same client.
pub const PROBE_AFTER: Duration = Duration::from_secs(12);
/// After this long without a word, despite the probe, the cluster is marked stale:
/// `no answer from the API for 15s`.
pub const STALE_AFTER: Duration = Duration::from_secs(15);
/// How long one probe may take; while stale, a probe is sent this often too, so a recovered
/// server is noticed within a few seconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The server ends each watch after this long (a clean end: the watch resumes).
const WATCH_TIMEOUT_S: u32 = 290;
/// A watch that says nothing at all (not even a bookmark) for this long is ended and the
/// kind relisted: a connection can die without either side being told.
const WATCH_SILENCE_MAX: Duration = Duration::from_secs(300);
/// Objects asked for per page of a list.
pub const PAGE_SIZE: u32 = 250;
/// The longest wait between retries of a failing list or watch: a server that comes back is
/// listed again within this long.
const MAX_RETRY: Duration = Duration::from_secs(4);

/// `no answer from the API for 15s`.
pub fn no_answer_reason() -> String {
    format!(
        "no answer from the API for {}s",
        STALE_AFTER.as_secs_f64().round()
    )
}

/// One object of a list or a watch event: decoded, or why not (with what could be read of
/// its metadata).
pub struct Lenient<K>(pub Result<K, Undecodable>);

#[derive(Deserialize, Default)]
struct MetaOnly {
    #[serde(default)]
    metadata: MetaNames,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaNames {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

impl<K: DeserializeOwned> Lenient<K> {
    /// Decodes one object; `kind` names it in the bad row.
    pub fn decode(kind: &str, raw: &str) -> Lenient<K> {
        match serde_json::from_str::<K>(raw) {
            Ok(k) => Lenient(Ok(k)),
            Err(e) => {
                let m: MetaOnly = serde_json::from_str(raw).unwrap_or_default();
                Lenient(Err(Undecodable {
                    kind: kind.to_string(),
                    namespace: m.metadata.namespace.unwrap_or_default(),
                    name: m.metadata.name.unwrap_or_default(),
                    resource_version: m.metadata.resource_version,
                    reason: e.to_string(),
                }))
            }
        }
    }
}

/// One list page, its items left undecoded until each is decoded on its own.
#[derive(Deserialize)]
struct RawList {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default)]
    items: Vec<Box<RawValue>>,
}

/// One line of a watch.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    object: Box<RawValue>,
}

/// A change to one kind's table.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// A complete list: the whole table, replacing what was there.
    Replace {
        items: HashMap<String, T>,
        bad: HashMap<String, Undecodable>,
    },
    Put(String, T),
    /// An object changed into something that does not decode: its row becomes a bad row.
    PutBad(String, Undecodable),
    Delete(String),
}

/// One kind's objects as the source holds them.
#[derive(Debug, Clone)]
pub struct Table<T> {
    pub live: HashMap<String, T>,
    pub bad: HashMap<String, Undecodable>,
    /// A complete list has arrived.
    pub complete: bool,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            live: HashMap::new(),
            bad: HashMap::new(),
            complete: false,
        }
    }
}

impl<T: PartialEq> Table<T> {
    /// Applies one step; returns true when the contents changed.
    pub fn apply(&mut self, step: Step<T>) -> bool {
        match step {
            Step::Replace { items, bad } => {
                let changed = !self.complete || self.live != items || self.bad != bad;
                self.live = items;
                self.bad = bad;
                self.complete = true;
                changed
            }
            Step::Put(k, v) => {
                let bad = self.bad.remove(&k).is_some();
                let same = self.live.get(&k) == Some(&v);
                self.live.insert(k, v);
                bad || !same
            }
            Step::PutBad(k, b) => {
                let live = self.live.remove(&k).is_some();
                live | self.bad.insert(k, b).is_none()
            }
            Step::Delete(k) => {
                let live = self.live.remove(&k).is_some();
                live | self.bad.remove(&k).is_some()
            }
        }
    }
}

/// Where a kind's watch stands: the resourceVersion to resume from, or none (list next).
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    resume: Option<String>,
}

impl Cursor {
    /// The resourceVersion to watch from; `None` means list first.
    pub fn resume_from(&self) -> Option<&str> {
        self.resume.as_deref()
    }

    /// A complete list at `rv`.
    pub fn listed(&mut self, rv: String) {
        self.resume = Some(rv);
    }

    /// An event or bookmark at `rv`. False when `rv` is older than what was already seen: the
    /// server lost history (a replaced API server), so the kind must be listed again.
    pub fn saw(&mut self, rv: Option<&str>) -> bool {
        let Some(rv) = rv else { return true };
        if let (Some(new), Some(old)) = (
            rv.parse::<u64>().ok(),
            self.resume.as_deref().and_then(|r| r.parse::<u64>().ok()),
        ) && new < old
        {
            self.resume = None;
            return false;
        }
        self.resume = Some(rv.to_string());
        true
    }

    /// The watch cannot be resumed (410, a broken connection, an error): list again.
    pub fn relist(&mut self) {
        self.resume = None;
    }
}

/// What a kind's task tells the source.
#[derive(Debug)]
pub enum Signal<P> {
    /// The server said something (a page, a bookmark): it is alive.
    Heard,
    /// The table changes.
    Change(P),
    /// A watch is open: the kind is current (clears `Failed`).
    Live,
    /// The kind cannot be kept current: why.
    Failed(String),
}

/// Where one kind lives and how to read it.
pub struct KindSpec {
    /// `Pod`, `Deployment`: names the kind in bad rows and logs.
    pub kind: &'static str,
    /// `/api/v1/pods`.
    pub path: String,
    pub labels: Option<String>,
    pub fields: Option<String>,
}

fn retry_wait(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    (Duration::from_millis(250) * 2u32.saturating_pow(failures.min(10) - 1)).min(MAX_RETRY)
}

/// Keeps one kind's table equal to the server until `out` is closed (or the task is
/// aborted). `highest` collects the highest resourceVersion seen, for the source's probe.
pub async fn run_kind<K, T>(
    client: Client,
    spec: KindSpec,
    summarise: impl Fn(&K) -> T + Send,
    out: UnboundedSender<Signal<Step<T>>>,
    highest: Arc<AtomicU64>,
) where
    K: DeserializeOwned + Send,
    T: Send,
{
    let send = |s: Signal<Step<T>>| out.send(s).is_ok();
    let note_rv = |rv: Option<&str>| {
        if let Some(n) = rv.and_then(|r| r.parse::<u64>().ok()) {
            highest.fetch_max(n, Ordering::SeqCst);
        }
    };
    let mut cursor = Cursor::default();
    let mut failures: u32 = 0;
    loop {
        if failures > 0 {
            tokio::time::sleep(retry_wait(failures)).await;
        }
        if cursor.resume_from().is_none() {
            match list_all(&client, &spec, &summarise, &send).await {
                Ok(None) => return,
                Ok(Some((rv, step))) => {
                    note_rv(Some(&rv));
                    cursor.listed(rv);
                    if !send(Signal::Change(step)) {
                        return;
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(kind = spec.kind, error = %e, "list failed");
                    if !send(Signal::Failed(describe_error(&e))) {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(rv) = cursor.resume_from().map(str::to_string) else {
            continue;
        };
        let mut wp = WatchParams::default().timeout(WATCH_TIMEOUT_S);
        if let Some(l) = &spec.labels {
            wp = wp.labels(l);
        }
        if let Some(f) = &spec.fields {
            wp = wp.fields(f);
        }
        let mut req = match kube::core::Request::new(spec.path.clone()).watch(&wp, &rv) {
            Ok(r) => r,
            Err(e) => {
                let _ = send(Signal::Failed(format!("building a watch request: {e}")));
                return;
            }
        };
        // One JSON event per line, uncompressed (see kube's request_events).
        req.headers_mut().insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
        let body = match client.request_stream(req).await {
            Ok(b) => b,
            Err(kube::Error::Api(s)) if s.code == 410 => {
                // Too old (as an answer rather than a watch event): list again.
                failures += 1;
                cursor.relist();
                continue;
            }
            Err(e) => {
                failures += 1;
                cursor.relist();
                if !send(Signal::Failed(describe_error(&e))) {
                    return;
                }
                continue;
            }
        };
        if !send(Signal::Live) {
            return;
        }
        let mut lines = std::pin::pin!(body.lines());
        loop {
            let line = match tokio::time::timeout(WATCH_SILENCE_MAX, lines.next()).await {
                Err(_) => {
                    cursor.relist();
                    break;
                }
                // The server's own timeout: resume where it stopped.
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    // A connection that broke mid-watch may hide lost events: list again.
                    tracing::debug!(kind = spec.kind, error = %e, "watch broke");
                    cursor.relist();
                    break;
                }
                Ok(Some(Ok(l))) => l,
            };
            if line.trim().is_empty() {
                continue;
            }
            let ev: RawEvent = match serde_json::from_str(&line) {
                Ok(ev) => ev,
                Err(e) => {
                    failures += 1;
                    cursor.relist();
                    let _ = send(Signal::Failed(format!(
                        "the API server sent an unreadable watch event for {}: {e}",
                        spec.kind
                    )));
                    break;
                }
            };
            let signal = match ev.kind.as_str() {
                "BOOKMARK" => {
                    let m: MetaOnly = serde_json::from_str(ev.object.get()).unwrap_or_default();
                    let rv = m.metadata.resource_version;
                    if !cursor.saw(rv.as_deref()) {
                        break;
                    }
                    note_rv(rv.as_deref());
                    Signal::Heard
                }
                "ERROR" => {
                    let status: kube::core::Status =
                        serde_json::from_str(ev.object.get()).unwrap_or_default();
                    cursor.relist();
                    if status.code == 410 {
                        break;
                    }
                    failures += 1;
                    let _ = send(Signal::Failed(describe_status(&status)));
                    break;
                }
                t @ ("ADDED" | "MODIFIED" | "DELETED") => {
                    let obj = Lenient::<K>::decode(spec.kind, ev.object.get());
                    let m: MetaOnly = serde_json::from_str(ev.object.get()).unwrap_or_default();
                    let rv = m.metadata.resource_version;
                    if !cursor.saw(rv.as_deref()) {
                        break;
                    }
                    note_rv(rv.as_deref());
                    let key = format!(
                        "{}/{}",
                        m.metadata.namespace.unwrap_or_default(),
                        m.metadata.name.unwrap_or_default()
                    );
                    failures = 0;
                    Signal::Change(match (t, obj.0) {
                        ("DELETED", _) => Step::Delete(key),
                        (_, Ok(k)) => Step::Put(key, summarise(&k)),
                        (_, Err(b)) => Step::PutBad(key, b),
                    })
                }
                _ => Signal::Heard,
            };
            if !send(signal) {
                return;
            }
        }
    }
}

/// Lists every page; `Ok(None)` when nobody listens any more.
#[allow(clippy::type_complexity)]
async fn list_all<K, T>(
    client: &Client,
    spec: &KindSpec,
    summarise: &impl Fn(&K) -> T,
    send: &impl Fn(Signal<Step<T>>) -> bool,
) -> Result<Option<(String, Step<T>)>, kube::Error>
where
    K: DeserializeOwned,
{
    let mut items = HashMap::new();
    let mut bad = HashMap::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE_SIZE);
        if let Some(l) = &spec.labels {
            lp = lp.labels(l);
        }
        if let Some(f) = &spec.fields {
            lp = lp.fields(f);
        }
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let req = kube::core::Request::new(spec.path.clone())
            .list(&lp)
            .map_err(kube::Error::BuildRequest)?;
        let text = client.request_text(req).await?;
        let page: RawList = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
        drop(text);
        for raw in &page.items {
            let obj = Lenient::<K>::decode(spec.kind, raw.get());
            match obj.0 {
                Ok(k) => {
                    let m: MetaOnly = serde_json::from_str(raw.get()).unwrap_or_default();
                    let key = format!(
                        "{}/{}",
                        m.metadata.namespace.unwrap_or_default(),
                        m.metadata.name.unwrap_or_default()
                    );
                    items.insert(key, summarise(&k));
                }
                Err(b) => {
                    tracing::warn!(kind = spec.kind, namespace = %b.namespace, name = %b.name, reason = %b.reason, "object does not decode");
                    bad.insert(format!("{}/{}", b.namespace, b.name), b);
                }
            }
        }
        if !send(Signal::Heard) {
            return Ok(None);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => token = Some(c),
            None => {
                let rv = page.metadata.resource_version.unwrap_or_default();
                return Ok(Some((rv, Step::Replace { items, bad })));
            }
        }
    }
}

/// What an API error answer says: `answered 500 InternalError: boom`.
pub fn describe_status(s: &kube::core::Status) -> String {
    let reason = if s.reason.is_empty() || s.reason == "Failed to parse error data" {
        http::StatusCode::from_u16(s.code)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("")
            .replace(' ', "")
    } else {
        s.reason.clone()
    };
    let hint = match s.code {
        401 => " (the credentials in the kubeconfig were rejected)",
        403 => " (the kubeconfig's user may not read this)",
        _ => "",
    };
    format!(
        "API server answered {} {reason}: {}{hint}",
        s.code,
        s.message.trim()
    )
}

/// A short, human reason for a failed request: what the server answered, or why it could
/// not be reached (`unreachable: connection refused`).
pub fn describe_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => describe_status(s),
        kube::Error::SerdeError(e) => format!("the API server sent something unreadable: {e}"),
        other => {
            let mut msg = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(s) = src {
                msg = s.to_string();
                src = s.source();
            }
            if msg.contains("Connection refused") {
                "unreachable: connection refused".to_string()
            } else {
                format!("unreachable: {msg}")
            }
        }
    }
}

/// The probe: one small list on the same client; answers the server's current
/// resourceVersion.
pub async fn probe(client: &Client) -> Result<Option<u64>, kube::Error> {
    let req = kube::core::Request::new("/api/v1/nodes")
        .list(&ListParams::default().limit(1))
        .map_err(kube::Error::BuildRequest)?;
    let text = client.request_text(req).await?;
    let page: RawList = serde_json::from_str(&text).map_err(kube::Error::SerdeError)?;
    Ok(page
        .metadata
        .resource_version
        .and_then(|r| r.parse::<u64>().ok()))
}

/// The streams of several kinds, merged; each signal tagged with its kind's index.
pub type Tagged<T> = (usize, Signal<T>);

/// Wraps a kind's signals into the merged enum of a source.
pub fn forward<T: Send + 'static, U: Send + 'static>(
    index: usize,
    wrap: fn(Step<T>) -> U,
    out: UnboundedSender<Tagged<U>>,
) -> UnboundedSender<Signal<Step<T>>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Signal<Step<T>>>();
    tokio::spawn(async move {
        while let Some(s) = rx.recv().await {
            let s = match s {
                Signal::Heard => Signal::Heard,
                Signal::Live => Signal::Live,
                Signal::Failed(r) => Signal::Failed(r),
                Signal::Change(step) => Signal::Change(wrap(step)),
            };
            if out.send((index, s)).is_err() {
                return;
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A tiny API server: objects with versions, a bounded history of events, compaction.
    #[derive(Debug, Clone, Default)]
    struct Server {
        rv: u64,
        objects: BTreeMap<String, u64>,
        /// (rv, key, Some(value) | None for a delete)
        history: Vec<(u64, String, Option<u64>)>,
        /// Events at or below this rv are gone (410).
        floor: u64,
    }

    impl Server {
        fn put(&mut self, key: String, value: u64) {
            self.rv += 1;
            self.objects.insert(key.clone(), value);
            self.history.push((self.rv, key, Some(value)));
        }
        fn delete(&mut self, key: &str) {
            if self.objects.remove(key).is_some() {
                self.rv += 1;
                self.history.push((self.rv, key.to_string(), None));
            }
        }
        fn compact(&mut self) {
            self.floor = self.rv;
            self.history.clear();
        }
        /// A replaced server: same objects (or fewer), resourceVersions restarting lower.
        fn replace(&mut self, keep: usize) {
            let kept: BTreeMap<String, u64> = self.objects.clone().into_iter().take(keep).collect();
            *self = Server::default();
            self.rv = 1;
            for (k, v) in kept {
                self.put(k, v);
            }
            self.floor = 0;
        }
        fn list(&self) -> (String, HashMap<String, u64>) {
            (
                self.rv.to_string(),
                self.objects.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            )
        }
        /// Events after `rv`, or None for 410.
        fn since(&self, rv: u64) -> Option<Vec<(u64, String, Option<u64>)>> {
            if rv < self.floor {
                return None;
            }
            Some(
                self.history
                    .iter()
                    .filter(|(r, _, _)| *r > rv)
                    .cloned()
                    .collect(),
            )
        }
    }

    /// The client: the same `Cursor` and `Table` the source uses, driven the way `run_kind`
    /// drives them. `watching` is the resourceVersion of the last event the open watch has
    /// delivered; the watch delivers the server's history after it, in order.
    #[derive(Default)]
    struct Client {
        cursor: Cursor,
        table: Table<u64>,
        watching: Option<u64>,
    }

    impl Client {
        fn connect(&mut self, s: &Server) {
            if self.cursor.resume_from().is_none() {
                let (rv, items) = s.list();
                self.cursor.listed(rv);
                self.table.apply(Step::Replace {
                    items,
                    bad: HashMap::new(),
                });
            }
            let rv: u64 = self.cursor.resume_from().unwrap().parse().unwrap();
            match s.since(rv) {
                // 410: list again (on the next connect).
                None => self.cursor.relist(),
                Some(_) => self.watching = Some(rv),
            }
        }
        fn read_one(&mut self, s: &Server) {
            let Some(at) = self.watching else { return };
            let Some((rv, key, v)) = s.since(at).and_then(|e| e.into_iter().next()) else {
                return;
            };
            self.watching = Some(rv);
            if !self.cursor.saw(Some(&rv.to_string())) {
                self.watching = None;
                return;
            }
            self.table.apply(match v {
                Some(v) => Step::Put(key, v),
                None => Step::Delete(key),
            });
        }
        fn bookmark(&mut self, s: &Server) {
            if let Some(at) = self.watching
                && s.since(at).is_some_and(|e| e.is_empty())
                && !self.cursor.saw(Some(&s.rv.to_string()))
            {
                self.watching = None;
            }
        }
        /// The server ended the watch cleanly (its timeout): resume from the cursor.
        fn clean_end(&mut self) {
            self.watching = None;
        }
        /// A broken connection: list again.
        fn broken(&mut self) {
            self.watching = None;
            self.cursor.relist();
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u64),
        Delete(u8),
        Read(u8),
        Connect,
        CleanEnd,
        Broken,
        Compact,
        Replace(u8),
        Bookmark,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..8, any::<u64>()).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..8).prop_map(Op::Delete),
            4 => (1u8..5).prop_map(Op::Read),
            2 => Just(Op::Connect),
            1 => Just(Op::CleanEnd),
            1 => Just(Op::Broken),
            1 => Just(Op::Compact),
            1 => (0u8..8).prop_map(Op::Replace),
            1 => Just(Op::Bookmark),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any sequence of changes, reads, clean ends, broken connections, 410s (compaction)
        /// and replaced servers ends, once the client has caught up, equal to the server.
        #[test]
        fn any_history_ends_equal_to_the_server(ops in proptest::collection::vec(op(), 0..80)) {
            let mut s = Server { rv: 100, ..Server::default() };
            let mut c = Client::default();
            c.connect(&s);
            for op in ops {
                match op {
                    Op::Put(k, v) => s.put(format!("ns/o{k}"), v),
                    Op::Delete(k) => s.delete(&format!("ns/o{k}")),
                    Op::Read(n) => for _ in 0..n { c.read_one(&s) },
                    Op::Connect => if c.watching.is_none() { c.connect(&s) },
                    Op::CleanEnd => c.clean_end(),
                    Op::Broken => c.broken(),
                    // The simulator ends open watches when it compacts; a resume then gets 410.
                    Op::Compact => { s.compact(); c.clean_end(); }
                    // The connections to a replaced server break.
                    Op::Replace(keep) => { s.replace(keep as usize); c.broken(); }
                    Op::Bookmark => c.bookmark(&s),
                }
            }
            // Settle: reconnect and read until the watch is open with nothing left to read,
            // and a bookmark has come (a real server sends one within a minute).
            for _ in 0..10 {
                if c.watching.is_none() { c.connect(&s); }
                for _ in 0..200 { c.read_one(&s); }
                c.bookmark(&s);
                if c.watching.is_some() { break; }
            }
            prop_assert!(c.watching.is_some());
            let truth: HashMap<String, u64> = s.list().1;
            prop_assert_eq!(&c.table.live, &truth);
        }
    }

    #[test]
    fn a_relist_replaces_the_table_whole() {
        let mut t = Table::<u32>::default();
        t.apply(Step::Put("a/x".into(), 1));
        t.apply(Step::Replace {
            items: HashMap::from([("a/y".into(), 2)]),
            bad: HashMap::new(),
        });
        assert_eq!(t.live, HashMap::from([("a/y".to_string(), 2)]));
    }

    #[test]
    fn a_resource_version_that_goes_back_asks_for_a_relist() {
        let mut c = Cursor::default();
        c.listed("500".into());
        assert!(c.saw(Some("501")));
        assert!(!c.saw(Some("12")));
        assert!(c.resume_from().is_none());
    }

    #[test]
    fn one_bad_object_is_one_bad_row() {
        #[derive(Deserialize, Debug)]
        struct K {
            #[allow(dead_code)]
            n: u32,
        }
        let bad = Lenient::<K>::decode(
            "Thing",
            r#"{"n": "x", "metadata": {"name": "b", "namespace": "ns"}}"#,
        );
        let b = bad.0.unwrap_err();
        assert_eq!(
            (b.kind.as_str(), b.namespace.as_str(), b.name.as_str()),
            ("Thing", "ns", "b")
        );
        assert!(Lenient::<K>::decode("Thing", r#"{"n": 1}"#).0.is_ok());
    }
}
