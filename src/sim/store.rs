//! The object store of one simulated cluster: every object of every kind, keyed by
//! (resource kind, namespace, name), with one monotonically increasing resourceVersion
//! counter and one bounded history of watch events shared by all kinds.
//!
//! Objects are kept as `serde_json::Value` (serialized `k8s_openapi` types) so any kind,
//! including later ones (ArgoCD CRDs), fits the same list/watch machinery.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;
use serde_json::value::RawValue;

/// A resource kind served by the simulated API server.
#[derive(Debug)]
pub struct ResourceKind {
    /// API group; empty for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

impl ResourceKind {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

macro_rules! kind {
    ($g:expr, $v:expr, $p:expr, $s:expr, $k:expr, $ns:expr, $sn:expr) => {
        ResourceKind {
            group: $g,
            version: $v,
            plural: $p,
            singular: $s,
            kind: $k,
            namespaced: $ns,
            short_names: $sn,
        }
    };
}

pub static PODS: ResourceKind = kind!("", "v1", "pods", "pod", "Pod", true, &["po"]);
pub static NODES: ResourceKind = kind!("", "v1", "nodes", "node", "Node", false, &["no"]);
pub static NAMESPACES: ResourceKind = kind!(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    &["ns"]
);
pub static EVENTS: ResourceKind = kind!("", "v1", "events", "event", "Event", true, &["ev"]);
pub static SERVICES: ResourceKind =
    kind!("", "v1", "services", "service", "Service", true, &["svc"]);
pub static SECRETS: ResourceKind = kind!("", "v1", "secrets", "secret", "Secret", true, &[]);
pub static PVCS: ResourceKind = kind!(
    "",
    "v1",
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    true,
    &["pvc"]
);
pub static DEPLOYMENTS: ResourceKind = kind!(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    &["deploy"]
);
pub static STATEFULSETS: ResourceKind = kind!(
    "apps",
    "v1",
    "statefulsets",
    "statefulset",
    "StatefulSet",
    true,
    &["sts"]
);
pub static DAEMONSETS: ResourceKind = kind!(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    true,
    &["ds"]
);
pub static REPLICASETS: ResourceKind = kind!(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
    &["rs"]
);
pub static CRONJOBS: ResourceKind = kind!(
    "batch",
    "v1",
    "cronjobs",
    "cronjob",
    "CronJob",
    true,
    &["cj"]
);
pub static JOBS: ResourceKind = kind!("batch", "v1", "jobs", "job", "Job", true, &[]);
/// Leases: the runbook run lock across machines (`opsdeck-runbook-lock` in `default`).
pub static LEASES: ResourceKind = kind!(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    &[]
);

/// Every kind the simulated API server knows, in discovery order.
pub static KINDS: &[&ResourceKind] = &[
    &PODS,
    &NODES,
    &NAMESPACES,
    &EVENTS,
    &SERVICES,
    &SECRETS,
    &PVCS,
    &DEPLOYMENTS,
    &STATEFULSETS,
    &DAEMONSETS,
    &REPLICASETS,
    &CRONJOBS,
    &JOBS,
    &LEASES,
    &super::networking::INGRESSES,
];

/// Looks a kind up by its API group and plural name.
pub fn find_kind(group: &str, plural: &str) -> Option<&'static ResourceKind> {
    KINDS
        .iter()
        .copied()
        .find(|k| k.group == group && k.plural == plural)
}

/// The API groups (besides core) and their versions, for `/apis`.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for k in KINDS {
        if !k.group.is_empty() && !out.iter().any(|(g, _)| *g == k.group) {
            out.push((k.group, k.version));
        }
    }
    out
}

/// What happened to an object, as a watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One entry of the watch history.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub kind: &'static ResourceKind,
    pub event_type: EventType,
    pub object: Arc<Value>,
}

type Key = (String, String);

struct StoreInner {
    rv: u64,
    objects: HashMap<&'static str, BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<WatchEvent>,
    /// Every event with `rv > floor` is still in `history`.
    floor: u64,
    uid_counter: u64,
}

/// A consistent list snapshot kept for `continue` tokens.
struct Snapshot {
    rv: u64,
    items: Arc<Vec<Arc<Value>>>,
}

/// The object store of one cluster.
pub struct Store {
    inner: RwLock<StoreInner>,
    history_cap: usize,
    changed: tokio::sync::watch::Sender<u64>,
    snapshots: Mutex<(u64, VecDeque<(u64, Snapshot)>)>,
    cluster_tag: u64,
    /// The JSON encoding of stored object versions, by resourceVersion (unique to one version
    /// of one object in a store): lists and watches send an object's bytes without encoding
    /// it again, as kube-apiserver's watch cache does. The bytes are the same.
    encoded: Mutex<HashMap<u64, Arc<RawValue>>>,
}

/// Encoded versions kept before the cache is dropped and refilled on demand.
const ENCODED_CAP: usize = 50_000;

/// What a write expects to find stored under the object's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect<'a> {
    /// Create or replace, whatever is there (an unconditional update).
    Anything,
    /// A create: nothing by that name.
    Absent,
    /// A replace that carried `metadata.resourceVersion`: exactly this version.
    Version(&'a str),
}

/// Why a conditional write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A create found an object by that name (409 AlreadyExists).
    Exists,
    /// Nothing by that name (404 NotFound).
    Missing,
    /// The stored object has another resourceVersion (409 Conflict).
    Conflict { stored: String },
    /// A delete's uid precondition did not match (409 Conflict).
    UidMismatch { stored: String },
}

/// DeleteOptions' `preconditions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub resource_version: Option<String>,
    pub uid: Option<String>,
}

/// Result of looking up a watch start point.
pub enum Since {
    /// Events after the requested resourceVersion (may be empty).
    Events(Vec<WatchEvent>),
    /// The requested resourceVersion is older than the retained history.
    Expired,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    pub fn new(cluster_tag: u64, history_cap: usize) -> Store {
        let (changed, _) = tokio::sync::watch::channel(0);
        Store {
            inner: RwLock::new(StoreInner {
                rv: 1000,
                objects: HashMap::new(),
                history: VecDeque::new(),
                floor: 1000,
                uid_counter: 0,
            }),
            history_cap,
            changed,
            snapshots: Mutex::new((0, VecDeque::new())),
            cluster_tag,
            encoded: Mutex::new(HashMap::new()),
        }
    }

    /// `obj` as JSON, encoded once per resourceVersion.
    pub fn encoded(&self, obj: &Value) -> Arc<RawValue> {
        let lock = || self.encoded.lock().unwrap_or_else(|e| e.into_inner());
        let rv = meta_str(obj, "resourceVersion").parse::<u64>().ok();
        if let Some(hit) = rv.and_then(|rv| lock().get(&rv).cloned()) {
            return hit;
        }
        let raw: Arc<RawValue> = match serde_json::value::to_raw_value(obj) {
            Ok(b) => Arc::from(b),
            Err(_) => Arc::from(RawValue::from_string("null".into()).expect("valid JSON")),
        };
        if let Some(rv) = rv {
            let mut map = lock();
            if map.len() >= ENCODED_CAP {
                map.clear();
            }
            map.insert(rv, raw.clone());
        }
        raw
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, StoreInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, StoreInner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    /// A receiver that changes whenever an event is appended.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Adds or replaces an object, emitting ADDED or MODIFIED. Fills in uid,
    /// creationTimestamp and resourceVersion; returns the stored object.
    pub fn put(&self, kind: &'static ResourceKind, obj: Value) -> Arc<Value> {
        match self.put_expecting(kind, obj, Expect::Anything) {
            Ok(stored) => stored,
            Err(_) => unreachable!("Expect::Anything is never refused"),
        }
    }

    /// [`Store::put`] when what is stored now meets `expect`, checked under the same lock as
    /// the write (the API server's optimistic concurrency: two writers cannot both win).
    pub fn put_expecting(
        &self,
        kind: &'static ResourceKind,
        mut obj: Value,
        expect: Expect<'_>,
    ) -> Result<Arc<Value>, Refusal> {
        let mut inner = self.write();
        let ns = if kind.namespaced {
            meta_str(&obj, "namespace").to_string()
        } else {
            String::new()
        };
        let name = meta_str(&obj, "name").to_string();
        let existing = inner
            .objects
            .get(kind.plural)
            .and_then(|m| m.get(&(ns.clone(), name.clone())))
            .cloned();
        match (&expect, &existing) {
            (Expect::Absent, Some(_)) => return Err(Refusal::Exists),
            (Expect::Version(_), None) => return Err(Refusal::Missing),
            (Expect::Version(want), Some(e)) if meta_str(e, "resourceVersion") != *want => {
                return Err(Refusal::Conflict {
                    stored: meta_str(e, "resourceVersion").to_string(),
                });
            }
            _ => {}
        }
        inner.rv += 1;
        let rv = inner.rv;
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), Value::String(kind.api_version()));
            map.insert("kind".into(), Value::String(kind.kind.into()));
        }
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
            let keep_uid = existing
                .as_ref()
                .and_then(|e| e.get("metadata")?.get("uid").cloned());
            if let Some(uid) = keep_uid {
                meta.entry("uid").or_insert(uid);
            }
            if !meta.contains_key("uid") {
                inner.uid_counter += 1;
                let n = inner.uid_counter;
                meta.insert("uid".into(), Value::String(uid_for(self.cluster_tag, n)));
            }
            if !meta.contains_key("creationTimestamp") {
                let ts = existing
                    .as_ref()
                    .and_then(|e| e.get("metadata")?.get("creationTimestamp").cloned())
                    .unwrap_or_else(|| Value::String(now_rfc3339()));
                meta.insert("creationTimestamp".into(), ts);
            }
        }
        let obj = Arc::new(obj);
        let event_type = if existing.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        inner
            .objects
            .entry(kind.plural)
            .or_default()
            .insert((ns, name), obj.clone());
        self.push_event(&mut inner, kind, event_type, obj.clone());
        drop(inner);
        self.changed.send_replace(rv);
        Ok(obj)
    }

    /// Inserts objects without emitting events (the initial state); each still gets
    /// its own resourceVersion.
    pub fn seed(&self, kind: &'static ResourceKind, objs: Vec<Value>) {
        let mut inner = self.write();
        let mut seeded = Vec::with_capacity(objs.len());
        for mut obj in objs {
            inner.rv += 1;
            inner.uid_counter += 1;
            let (rv, n) = (inner.rv, inner.uid_counter);
            if let Some(map) = obj.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(kind.api_version()));
                map.insert("kind".into(), Value::String(kind.kind.into()));
            }
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
                meta.entry("uid")
                    .or_insert_with(|| Value::String(uid_for(self.cluster_tag, n)));
                meta.entry("creationTimestamp")
                    .or_insert_with(|| Value::String(now_rfc3339()));
            }
            let ns = if kind.namespaced {
                meta_str(&obj, "namespace").to_string()
            } else {
                String::new()
            };
            let name = meta_str(&obj, "name").to_string();
            let obj = Arc::new(obj);
            seeded.push(obj.clone());
            inner
                .objects
                .entry(kind.plural)
                .or_default()
                .insert((ns, name), obj);
        }
        inner.floor = inner.rv;
        drop(inner);
        // Encoded now, as a running API server has its objects ready before the first list.
        for obj in &seeded {
            self.encoded(obj);
        }
        let rv = self.resource_version();
        self.changed.send_replace(rv);
    }

    /// Deletes an object, emitting DELETED. Returns whether it existed.
    pub fn delete(&self, kind: &'static ResourceKind, namespace: &str, name: &str) -> bool {
        self.delete_expecting(kind, namespace, name, &Preconditions::default())
            .is_ok()
    }

    /// Deletes an object whose resourceVersion and uid meet `pre` (DeleteOptions'
    /// preconditions), emitting DELETED; returns the object as it was.
    pub fn delete_expecting(
        &self,
        kind: &'static ResourceKind,
        namespace: &str,
        name: &str,
        pre: &Preconditions,
    ) -> Result<Arc<Value>, Refusal> {
        let mut inner = self.write();
        let key = (
            if kind.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name.to_string(),
        );
        let Some(map) = inner.objects.get_mut(kind.plural) else {
            return Err(Refusal::Missing);
        };
        let Some(current) = map.get(&key) else {
            return Err(Refusal::Missing);
        };
        if let Some(want) = pre.resource_version.as_deref()
            && meta_str(current, "resourceVersion") != want
        {
            return Err(Refusal::Conflict {
                stored: meta_str(current, "resourceVersion").to_string(),
            });
        }
        if let Some(want) = pre.uid.as_deref()
            && meta_str(current, "uid") != want
        {
            return Err(Refusal::UidMismatch {
                stored: meta_str(current, "uid").to_string(),
            });
        }
        let Some(old) = map.remove(&key) else {
            return Err(Refusal::Missing);
        };
        inner.rv += 1;
        let rv = inner.rv;
        let mut obj = (*old).clone();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        self.push_event(&mut inner, kind, EventType::Deleted, Arc::new(obj));
        drop(inner);
        self.changed.send_replace(rv);
        Ok(old)
    }

    fn push_event(
        &self,
        inner: &mut StoreInner,
        kind: &'static ResourceKind,
        event_type: EventType,
        object: Arc<Value>,
    ) {
        inner.history.push_back(WatchEvent {
            rv: inner.rv,
            kind,
            event_type,
            object,
        });
        while inner.history.len() > self.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.floor = old.rv;
            }
        }
    }

    /// One object.
    pub fn get(
        &self,
        kind: &'static ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let ns = if kind.namespaced { namespace } else { "" };
        self.read()
            .objects
            .get(kind.plural)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Every object of a kind (optionally in one namespace), in (namespace, name) order,
    /// with the resourceVersion of that snapshot.
    pub fn list(
        &self,
        kind: &'static ResourceKind,
        namespace: Option<&str>,
    ) -> (u64, Vec<Arc<Value>>) {
        let inner = self.read();
        let items = match inner.objects.get(kind.plural) {
            None => Vec::new(),
            Some(map) => match namespace {
                Some(ns) if kind.namespaced => map
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
                _ => map.values().cloned().collect(),
            },
        };
        (inner.rv, items)
    }

    /// Events of `kind` after resourceVersion `since`, with the current resourceVersion.
    pub fn events_since(&self, kind: &'static ResourceKind, since: u64) -> (Since, u64) {
        let inner = self.read();
        if since < inner.floor {
            return (Since::Expired, inner.rv);
        }
        let start = inner.history.partition_point(|e| e.rv <= since);
        let events = inner
            .history
            .range(start..)
            .filter(|e| e.kind.plural == kind.plural && e.kind.group == kind.group)
            .cloned()
            .collect();
        (Since::Events(events), inner.rv)
    }

    /// Forgets the history: watches from any older resourceVersion get 410 Gone.
    /// The counter moves on by one, so every resourceVersion handed out so far is "old".
    pub fn compact(&self) {
        let mut inner = self.write();
        inner.history.clear();
        inner.rv += 1;
        inner.floor = inner.rv;
    }

    /// Keeps a list snapshot for paging; returns its id.
    pub fn keep_snapshot(&self, rv: u64, items: Arc<Vec<Arc<Value>>>) -> u64 {
        let mut snaps = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        snaps.0 += 1;
        let id = snaps.0;
        snaps.1.push_back((id, Snapshot { rv, items }));
        while snaps.1.len() > 64 {
            snaps.1.pop_front();
        }
        id
    }

    /// A kept list snapshot.
    pub fn snapshot(&self, id: u64) -> Option<(u64, Arc<Vec<Arc<Value>>>)> {
        let snaps = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        snaps
            .1
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| (s.rv, s.items.clone()))
    }
}

fn uid_for(tag: u64, n: u64) -> String {
    let a = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let b = n.wrapping_mul(0x94D0_49BB_1331_11EB) ^ tag;
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (b >> 48 & 0xfff) as u16,
        b & 0xffff_ffff_ffff
    )
}

/// Now, as Kubernetes writes timestamps (second precision, UTC).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

/// A label selector (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`).
#[derive(Debug, Default)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

#[derive(Debug)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                LabelReq::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                LabelReq::NotIn(k.trim().into(), parse_set(v))
            } else if let Some((k, v)) = part.split_once(" in ") {
                LabelReq::In(k.trim().into(), parse_set(v))
            } else if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().into())
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                LabelReq::Exists(part.into())
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            reqs.push(req);
        }
        Ok(LabelSelector { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => get(k) != Some(v.as_str()),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        })
    }
}

/// A field selector over dotted JSON paths (`metadata.name=x,status.phase!=Running`).
#[derive(Debug, Default)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, value) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid field selector: {part:?}"));
            };
            reqs.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path.split('.') {
                cur = cur.and_then(|c| c.get(seg));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Bool(b)) => b.to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, app: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name, "labels": {"app": app}}, "status": {"phase": "Running"}})
    }

    #[test]
    fn mutations_bump_resource_version_and_record_history() {
        let store = Store::new(1, 100);
        store.seed(&PODS, vec![pod("a", "p1", "x")]);
        let start = store.resource_version();
        store.put(&PODS, pod("a", "p2", "y"));
        store.put(&PODS, pod("a", "p1", "z"));
        assert!(store.delete(&PODS, "a", "p2"));
        assert_eq!(store.resource_version(), start + 3);
        let (Since::Events(evs), _) = store.events_since(&PODS, start) else {
            panic!("expired")
        };
        let types: Vec<_> = evs.iter().map(|e| e.event_type).collect();
        assert_eq!(
            types,
            vec![EventType::Added, EventType::Modified, EventType::Deleted]
        );
        store.compact();
        assert!(matches!(store.events_since(&PODS, start).0, Since::Expired));
    }

    #[test]
    fn bounded_history_expires_old_versions() {
        let store = Store::new(1, 2);
        let start = store.resource_version();
        for i in 0..5 {
            store.put(&PODS, pod("a", &format!("p{i}"), "x"));
        }
        assert!(matches!(store.events_since(&PODS, start).0, Since::Expired));
        assert!(matches!(store.events_since(&PODS, start + 3).0, Since::Events(e) if e.len() == 2));
    }

    #[test]
    fn selectors_match_labels_and_fields() {
        let p = pod("ns1", "web-1", "web");
        assert!(LabelSelector::parse("app=web").unwrap().matches(&p));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&p));
        assert!(
            LabelSelector::parse("app in (db, web),!tier")
                .unwrap()
                .matches(&p)
        );
        assert!(
            FieldSelector::parse("metadata.name=web-1,metadata.namespace==ns1")
                .unwrap()
                .matches(&p)
        );
        assert!(
            !FieldSelector::parse("status.phase!=Running")
                .unwrap()
                .matches(&p)
        );
    }
}
