//! The Redis source: a tiny RESP2 client (AUTH, INFO, CONFIG GET; optional TLS through
//! tokio-rustls) that polls one cluster's Redis for its persistence state, plus the
//! Kubernetes cross-check of the data volume the configured workload mounts. Publishes whole
//! [`RedisSnapshot`]s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::pgbouncer::{TIMEOUT, connect_endpoint, resolve_secret};
use super::watched::Watched;
use super::{Feature, FeatureData, SourceEvent};
use crate::config::{ClusterConfig, Endpoint, SecretRef};
use crate::model::redis::{ConfigValue, RedisSnapshot, VolumeCheck, parse_info};

/// How often the server is polled (the issue gives no key for it).
pub const POLL: Duration = Duration::from_secs(5);
/// Replies larger than this are refused rather than buffered (INFO is a few KiB).
const MAX_REPLY: usize = 4 << 20;

/// What went wrong talking to Redis; the text is what the panel shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    #[error("Redis config: {0}")]
    Config(String),
    #[error(
        "Redis at {addr} is unreachable: {reason}; check that Redis runs and the address is right"
    )]
    Unreachable { addr: String, reason: String },
    #[error("Redis at {addr} refused the login: {detail}; check user and password")]
    Auth { addr: String, detail: String },
    #[error("Redis at {addr}: {what} failed: {detail}")]
    Protocol {
        addr: String,
        what: String,
        detail: String,
    },
}

/// One RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply (RESP2, plus the RESP3 scalars a server might still send).
pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Reply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    if !line.ends_with(b"\r\n") || line.len() < 3 {
        return Err(bad("malformed reply line"));
    }
    let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
    match line[0] {
        b'+' => Ok(Reply::Simple(body)),
        b'-' => Ok(Reply::Error(body)),
        b':' => body
            .parse()
            .map(Reply::Integer)
            .map_err(|_| bad("bad integer")),
        b'$' => {
            let len: i64 = body.parse().map_err(|_| bad("bad bulk length"))?;
            if len < 0 {
                return Ok(Reply::Bulk(None));
            }
            let len = usize::try_from(len).map_err(|_| bad("bad bulk length"))?;
            if len > MAX_REPLY {
                return Err(bad("reply too large"));
            }
            let mut buf = vec![0; len + 2];
            r.read_exact(&mut buf).await?;
            buf.truncate(len);
            Ok(Reply::Bulk(Some(buf)))
        }
        b'*' => {
            let len: i64 = body.parse().map_err(|_| bad("bad array length"))?;
            if len < 0 {
                return Ok(Reply::Array(None));
            }
            let len = usize::try_from(len).map_err(|_| bad("bad array length"))?;
            if len > 1_000_000 {
                return Err(bad("array too long"));
            }
            let mut items = Vec::with_capacity(len.min(64));
            for _ in 0..len {
                items.push(Box::pin(read_reply(r)).await?);
            }
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(bad("unknown reply type")),
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open connection to one Redis server.
pub struct RedisConn {
    io: BufReader<Box<dyn Stream>>,
    addr: String,
}

/// The `[cluster.redis]` table, read.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConfig {
    pub endpoint: Endpoint,
    pub user: Option<String>,
    pub password: Option<SecretRef>,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// `(namespace, kind, name)` of the workload running Redis.
    pub workload: Option<(String, String, String)>,
    pub poll: Duration,
}

impl RedisConfig {
    pub fn from_table(t: &toml::Table) -> Result<RedisConfig, String> {
        let endpoint = Endpoint::from_table(t)?
            .ok_or("needs an endpoint: address = \"host:port\" or service = \"ns/name:port\"")?;
        let s = |k: &str| t.get(k).and_then(toml::Value::as_str).map(str::to_string);
        let workload = match s("workload") {
            None => None,
            Some(w) => {
                let parts: Vec<&str> = w.split('/').collect();
                let [ns, kind, name] = parts.as_slice() else {
                    return Err(format!("workload {w:?}: expected namespace/kind/name"));
                };
                Some((ns.to_string(), kind.to_string(), name.to_string()))
            }
        };
        let poll = match s("poll") {
            Some(p) => crate::config::parse_duration(&p).map_err(|e| format!("poll: {e}"))?,
            None => POLL,
        };
        Ok(RedisConfig {
            endpoint,
            user: s("user"),
            password: SecretRef::from_table(t, "password")?,
            tls: t.get("tls").and_then(toml::Value::as_bool).unwrap_or(false),
            ca_file: s("ca_file").map(PathBuf::from),
            workload,
            poll: poll.max(Duration::from_millis(100)),
        })
    }
}

/// Whether the cluster has a `[cluster.redis]` table.
pub fn configured(cluster: &ClusterConfig) -> bool {
    cluster.redis.is_some()
}

fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            return Err(
                "tls = true needs ca_file = \"PATH\" (the CA that signed the Redis certificate)"
                    .into(),
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

impl RedisConn {
    /// Connects (with TLS when asked) and logs in.
    pub async fn connect(
        config: &RedisConfig,
        password: Option<&str>,
    ) -> Result<RedisConn, RedisError> {
        let addr = config.endpoint.to_string();
        let tcp =
            connect_endpoint(&config.endpoint)
                .await
                .map_err(|reason| RedisError::Unreachable {
                    addr: addr.clone(),
                    reason,
                })?;
        let stream: Box<dyn Stream> = if config.tls {
            let connector = tls_connector(config.ca_file.as_deref()).map_err(RedisError::Config)?;
            let host = match &config.endpoint {
                Endpoint::Address { host, .. } => host.clone(),
                _ => "localhost".to_string(),
            };
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| RedisError::Config(format!("TLS server name: {e}")))?;
            let tls = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| RedisError::Unreachable {
                    addr: addr.clone(),
                    reason: "no TLS handshake within 5s".into(),
                })?
                .map_err(|e| RedisError::Unreachable {
                    addr: addr.clone(),
                    reason: format!("TLS: {e}"),
                })?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut conn = RedisConn {
            io: BufReader::new(stream),
            addr,
        };
        if let Some(p) = password {
            let reply = match &config.user {
                Some(u) => conn.command(&[b"AUTH", u.as_bytes(), p.as_bytes()]).await?,
                None => conn.command(&[b"AUTH", p.as_bytes()]).await?,
            };
            if let Reply::Error(e) = reply {
                return Err(RedisError::Auth {
                    addr: conn.addr.clone(),
                    detail: e,
                });
            }
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply (one in flight at a time).
    pub async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        let what = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        let addr = self.addr.clone();
        let err = |detail: String| RedisError::Protocol {
            addr: addr.clone(),
            what: what.clone(),
            detail,
        };
        let exchange = async {
            self.io.get_mut().write_all(&encode(args)).await?;
            self.io.get_mut().flush().await?;
            read_reply(&mut self.io).await
        };
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| err(format!("no answer within {}s", TIMEOUT.as_secs())))?
            .map_err(|e| err(e.to_string()))
    }

    /// `INFO section` as parsed fields.
    pub async fn info(&mut self, section: &str) -> Result<BTreeMap<String, String>, RedisError> {
        match self.command(&[b"INFO", section.as_bytes()]).await? {
            Reply::Error(e) if e.starts_with("NOAUTH") || e.starts_with("NOPERM") => {
                Err(RedisError::Auth {
                    addr: self.addr.clone(),
                    detail: e,
                })
            }
            Reply::Error(e) => Err(RedisError::Protocol {
                addr: self.addr.clone(),
                what: format!("INFO {section}"),
                detail: e,
            }),
            r => Ok(parse_info(&r.text().unwrap_or_default())),
        }
    }

    /// `CONFIG GET name`, degrading to [`ConfigValue::Unknown`] when CONFIG is renamed or
    /// denied (the poll goes on without it).
    pub async fn config_get(&mut self, name: &str) -> Result<ConfigValue, RedisError> {
        Ok(
            match self.command(&[b"CONFIG", b"GET", name.as_bytes()]).await? {
                Reply::Array(Some(items)) => match items.get(1).and_then(Reply::text) {
                    Some(v) => ConfigValue::Known(v),
                    None => ConfigValue::Unknown(format!("CONFIG GET {name} returned nothing")),
                },
                Reply::Error(e) if e.starts_with("NOPERM") => {
                    ConfigValue::Unknown("CONFIG GET is not allowed for this user".into())
                }
                Reply::Error(e) if e.to_lowercase().contains("unknown command") => {
                    ConfigValue::Unknown("CONFIG is renamed or disabled".into())
                }
                Reply::Error(e) => ConfigValue::Unknown(format!("CONFIG GET {name}: {e}")),
                other => {
                    ConfigValue::Unknown(format!("CONFIG GET {name}: unexpected reply {other:?}"))
                }
            },
        )
    }

    /// One poll of the server (the volume check is added by the caller).
    pub async fn poll(&mut self) -> Result<RedisSnapshot, RedisError> {
        let mut info = self.info("server").await?;
        info.extend(self.info("persistence").await?);
        let save = self.config_get("save").await?;
        let appendonly = self.config_get("appendonly").await?;
        Ok(RedisSnapshot::from_info(
            &info,
            save,
            appendonly,
            None,
            jiff::Timestamp::now(),
        ))
    }
}

/// Picks the data volume of a pod template: the one mounted at `/data`, else one whose name
/// says data, else the only one; returns `(name, kind)`.
pub fn data_volume(
    template: &PodTemplateSpec,
    claim_templates: &[String],
) -> Option<(String, String)> {
    let spec = template.spec.as_ref()?;
    let volumes = spec.volumes.clone().unwrap_or_default();
    let mounted_at_data = spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| m.mount_path.trim_end_matches('/') == "/data")
        .map(|m| m.name.clone());
    let name = mounted_at_data
        .or_else(|| {
            volumes
                .iter()
                .map(|v| v.name.clone())
                .chain(claim_templates.iter().cloned())
                .find(|n| n.contains("data"))
        })
        .or_else(|| (volumes.len() == 1).then(|| volumes[0].name.clone()))?;
    if claim_templates.contains(&name) {
        return Some((name, "persistentVolumeClaim".into()));
    }
    let v = volumes.iter().find(|v| v.name == name)?;
    let json = serde_json::to_value(v).ok()?;
    let kind = json
        .as_object()?
        .keys()
        .find(|k| *k != "name")
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    Some((name, kind))
}

/// The workload named in the config, watched by name.
enum WorkloadWatch {
    StatefulSet(Watched<StatefulSet>),
    DaemonSet(Watched<DaemonSet>),
    Deployment(Watched<Deployment>),
}

/// The watches behind the volume check, started at the first check and kept while the
/// source runs: later checks read them and send nothing to the API server.
pub struct VolumeWatch {
    workload: WorkloadWatch,
    /// The workload's pods (by its selector), watched once the template is found not to
    /// say which volume holds `/data`.
    pods: Option<(String, Watched<Pod>)>,
}

impl VolumeWatch {
    fn start(client: kube::Client, ns: &str, kind: &str, name: &str) -> VolumeWatch {
        let by_name = format!("metadata.name={name}");
        let by_name = Some(by_name.as_str());
        let workload = match kind {
            "statefulset" => WorkloadWatch::StatefulSet(Watched::start(
                Api::namespaced(client, ns),
                None,
                by_name,
            )),
            "daemonset" => {
                WorkloadWatch::DaemonSet(Watched::start(Api::namespaced(client, ns), None, by_name))
            }
            _ => WorkloadWatch::Deployment(Watched::start(
                Api::namespaced(client, ns),
                None,
                by_name,
            )),
        };
        VolumeWatch {
            workload,
            pods: None,
        }
    }

    /// The workload's pod template, claim templates and selector; None when it does not exist.
    async fn template(
        &self,
    ) -> Result<Option<(PodTemplateSpec, Vec<String>, LabelSelector)>, String> {
        Ok(match &self.workload {
            WorkloadWatch::StatefulSet(w) => w.items(TIMEOUT).await?.first().map(|s| {
                let spec = s.spec.clone();
                let claims = spec
                    .volume_claim_templates
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .collect();
                (spec.template, claims, spec.selector)
            }),
            WorkloadWatch::DaemonSet(w) => w.items(TIMEOUT).await?.first().map(|d| {
                let spec = d.spec.clone();
                (spec.template, vec![], spec.selector)
            }),
            WorkloadWatch::Deployment(w) => w.items(TIMEOUT).await?.first().map(|d| {
                let spec = d.spec.clone();
                (spec.template, vec![], spec.selector)
            }),
        })
    }
}

/// Reads the workload's pod template (and, when the template does not say, its pods) from
/// watches on the cluster's Kubernetes API, starting them on the first call.
pub async fn check_volume(
    cluster: &ClusterConfig,
    workload: &(String, String, String),
    watch: &mut Option<VolumeWatch>,
) -> VolumeCheck {
    let (ns, kind, name) = workload;
    let mut check = VolumeCheck {
        workload: format!("{ns}/{kind}/{name}"),
        name: None,
        kind: None,
        error: None,
    };
    let result: Result<Option<(String, String)>, String> = async {
        if watch.is_none() {
            let client = crate::sources::kube::client_for(cluster).await?;
            *watch = Some(VolumeWatch::start(client, ns, kind, name));
        }
        let Some(w) = watch.as_mut() else {
            return Err("no watch".into());
        };
        let (template, claims, selector) = w
            .template()
            .await
            .map_err(|e| format!("reading {kind} {ns}/{name}: {e}"))?
            .ok_or_else(|| format!("reading {kind} {ns}/{name}: not found"))?;
        if let Some(found) = data_volume(&template, &claims) {
            w.pods = None;
            return Ok(Some(found));
        }
        // A template without the volume (some generated manifests, the simulator): the
        // pods that run say what is actually mounted.
        let labels = selector
            .match_labels
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        if w.pods.as_ref().is_none_or(|(l, _)| *l != labels) {
            let client = crate::sources::kube::client_for(cluster).await?;
            let pods = Watched::start(Api::namespaced(client, ns), Some(&labels), None);
            w.pods = Some((labels, pods));
        }
        let Some((_, pods)) = &w.pods else {
            return Err("no watch".into());
        };
        let pods = pods
            .items(TIMEOUT)
            .await
            .map_err(|e| format!("reading the pods of {kind} {ns}/{name}: {e}"))?;
        let mut pods: Vec<_> = pods.iter().collect();
        pods.sort_by_key(|p| p.metadata.name.clone());
        Ok(pods.into_iter().find_map(|p| {
            let t = PodTemplateSpec {
                metadata: None,
                spec: p.spec.clone(),
            };
            data_volume(&t, &claims)
        }))
    }
    .await;
    match result {
        Ok(Some((n, k))) => {
            check.name = Some(n);
            check.kind = Some(k);
        }
        Ok(None) => check.error = Some("no data volume found in the pod template".into()),
        Err(e) => check.error = Some(e),
    }
    check
}

/// The Redis source between polls: its connection and the volume check's watches.
struct RedisPoller {
    cluster: ClusterConfig,
    config: RedisConfig,
    conn: Option<RedisConn>,
    volume_watch: Option<VolumeWatch>,
}

impl super::Poller for RedisPoller {
    fn reset(&mut self) {
        self.conn = None;
    }

    async fn poll(&mut self) -> Result<FeatureData, String> {
        let result = async {
            if self.conn.is_none() {
                let password = match &self.config.password {
                    Some(s) => Some(
                        resolve_secret(&self.cluster, s)
                            .await
                            .map_err(|e| RedisError::Config(format!("password: {e}")))?,
                    ),
                    None => None,
                };
                let mut dial = self.config.clone();
                dial.endpoint = super::reachable_endpoint(&self.cluster, &self.config.endpoint)
                    .await
                    .map_err(|reason| RedisError::Unreachable {
                        addr: self.config.endpoint.to_string(),
                        reason,
                    })?;
                self.conn = Some(RedisConn::connect(&dial, password.as_deref()).await?);
            }
            let mut snap = match self.conn.as_mut() {
                Some(c) => c.poll().await?,
                None => return Err(RedisError::Config("no connection".into())),
            };
            if let Some(w) = &self.config.workload {
                snap.volume = Some(check_volume(&self.cluster, w, &mut self.volume_watch).await);
            }
            Ok(snap)
        }
        .await;
        result
            .map(|snap| FeatureData::Redis(Arc::new(snap)))
            .map_err(|e| {
                self.conn = None;
                e.to_string()
            })
    }
}

/// Runs the Redis source of cluster `index` until `cancel` fires.
pub async fn run(
    index: usize,
    cluster: ClusterConfig,
    tx: UnboundedSender<SourceEvent>,
    cancel: CancellationToken,
) {
    let Some(table) = cluster.redis.as_ref() else {
        return;
    };
    let config = match RedisConfig::from_table(table) {
        Ok(c) => c,
        Err(e) => {
            let reason = RedisError::Config(e).to_string();
            super::report_failure(&tx, index, Feature::Redis, reason);
            return;
        }
    };
    let every = config.poll;
    let poller = RedisPoller {
        cluster,
        config,
        conn: None,
        volume_watch: None,
    };
    super::poll_loop(index, Feature::Redis, every, &tx, &cancel, poller).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_are_decoded() {
        let bytes: &[u8] = b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n-NOPERM no\r\n:5\r\n$-1\r\n";
        let mut r = BufReader::new(bytes);
        assert_eq!(
            read_reply(&mut r).await.unwrap(),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"save".to_vec())),
                Reply::Bulk(Some(vec![]))
            ]))
        );
        assert_eq!(
            read_reply(&mut r).await.unwrap(),
            Reply::Error("NOPERM no".into())
        );
        assert_eq!(read_reply(&mut r).await.unwrap(), Reply::Integer(5));
        assert_eq!(read_reply(&mut r).await.unwrap(), Reply::Bulk(None));
        assert!(read_reply(&mut r).await.is_err());
    }

    #[test]
    fn commands_are_encoded_as_bulk_arrays() {
        assert_eq!(
            encode(&[b"CONFIG", b"GET", b"save"]),
            b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n"
        );
    }

    #[test]
    fn the_volume_mounted_at_data_is_the_data_volume() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "redis", "volumeMounts": [{"name": "redis-data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "conf", "configMap": {"name": "c"}}, {"name": "redis-data", "emptyDir": {}}]}
        }))
        .unwrap();
        assert_eq!(
            data_volume(&t, &[]),
            Some(("redis-data".into(), "emptyDir".into()))
        );
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "redis", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}
        }))
        .unwrap();
        assert_eq!(
            data_volume(&t, &["data".into()]),
            Some(("data".into(), "persistentVolumeClaim".into()))
        );
    }
}
