//! A small S3 ListObjectsV2 server for the simulated fleet: path-style `GET /{bucket}?list-type=2`
//! with prefix, max-keys and continuation tokens, SigV4 header signatures checked against the
//! one key pair the fleet config names, and a realistic object history: `backup.sh`'s dumps,
//! `${ENVIRONMENT}_goapps_YYYYMMDD_HHMMSS.sql.gz` stamped in UTC, three times a day (06:00,
//! 14:00, 22:00 WIB) over the last 7 days, 40-60 MB and drifting (target-environment.md,
//! "Backups").
//!
//! Each cluster has its own MinIO, served over **HTTPS only** with the simulator's test CA
//! ([`CA_CERT`]), bucket `postgres-backups`, objects at the top. Backblaze B2 is one store for
//! both: bucket [`super::seed::B2_BUCKET`] with the prefixes `staging/` and `production/`.
//! The hazards: production's B2 copy stopped two runs ago (one destination missing runs), and
//! staging's newest dump is a 20-byte empty gzip everywhere (`pg_dump` failed, no `pipefail`,
//! the Job says Complete).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use jiff::Timestamp;
use tokio::task::JoinHandle;

use super::seed::Env;
use crate::sources::backups::sigv4;

pub const ACCESS_KEY: &str = "OPSDECKSIMACCESSKEY1";
pub const SECRET_KEY: &str = "opsdeck-sim-secret/4f9c2a7e1b";
pub const REGION: &str = "us-east-1";

/// One stored object.
#[derive(Debug, Clone)]
pub struct SimObject {
    pub key: String,
    pub modified: Timestamp,
    pub size: u64,
}

struct Store {
    buckets: BTreeMap<String, Vec<SimObject>>,
}

/// A running simulated S3 store.
pub struct SimS3 {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// The HTTPS listener of a MinIO store.
    tls: Option<(SocketAddr, JoinHandle<()>)>,
}

/// The (MinIO bucket, B2 bucket) of a cluster: MinIO's `postgres-backups` (one per
/// cluster), and the one B2 bucket both clusters upload into under `<env>/`.
pub fn buckets(_env: Env) -> (&'static str, &'static str) {
    ("postgres-backups", super::seed::B2_BUCKET)
}

/// The B2 prefix of a cluster: `staging/` or `production/`.
pub fn b2_prefix(env: Env) -> String {
    format!("{}/", env.name())
}

/// A gzip of nothing: what `pg_dump | gzip` leaves when `pg_dump` fails (20 bytes).
pub const EMPTY_GZIP: [u8; 20] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

/// Whether the newest dump of `env` is the empty one (staging: its `POSTGRES_USER` is
/// `stgapps`, and `backup.sh` dumps with `-U postgres`).
pub fn newest_is_empty(env: Env) -> bool {
    env == Env::Staging
}

/// `backup.sh`'s file name for a run started at `at`: `${ENVIRONMENT}_goapps_` and a UTC stamp.
pub fn dump_name(env: Env, at: Timestamp) -> String {
    format!(
        "{}_goapps_{}.sql.gz",
        env.name(),
        at.strftime("%Y%m%d_%H%M%S")
    )
}

/// The backup runs of the last 7 days (newest last): 06:00, 14:00, 22:00 WIB, the dump named
/// a few seconds after the schedule, the upload landing a minute or two later, sizes drifting
/// around 40-60 MB; the newest of [`newest_is_empty`] clusters is [`EMPTY_GZIP`].
pub fn history(env: Env, now: Timestamp, skip_newest: usize) -> Vec<SimObject> {
    let wib = jiff::tz::TimeZone::fixed(jiff::tz::offset(7));
    let today = now.to_zoned(wib.clone()).date();
    let mut runs = Vec::new();
    for day in (0..8).rev() {
        let Ok(date) = today.checked_sub(jiff::Span::new().days(day)) else {
            continue;
        };
        for hour in [6, 14, 22] {
            let Ok(at) = date.at(hour, 0, 0, 0).to_zoned(wib.clone()) else {
                continue;
            };
            let at = at.timestamp();
            // Leave the newest run a few minutes to land.
            if at.as_second() + 300 <= now.as_second()
                && now.as_second() - at.as_second() <= 7 * 86_400
            {
                runs.push(at);
            }
        }
    }
    let salt: u64 = if env == Env::Production { 0 } else { 7 };
    let n = runs.len();
    runs.into_iter()
        .enumerate()
        .take(n.saturating_sub(skip_newest))
        .map(|(i, at)| {
            let iu = i as u64;
            // A slow upward drift with a wobble: the database grows, dumps vary a little.
            let mut size = 42_000_000 + iu * 650_000 + ((iu * 7 + salt) % 5) * 900_000;
            if i + 1 == n && newest_is_empty(env) {
                size = EMPTY_GZIP.len() as u64;
            }
            let started = Timestamp::from_second(at.as_second() + 2 + ((iu * 5 + salt) % 9) as i64)
                .unwrap_or(at);
            let secs = at.as_second() + 60 + ((iu * 13 + salt) % 50) as i64;
            let modified = Timestamp::from_second(secs).unwrap_or(at);
            SimObject {
                key: dump_name(env, started),
                modified,
                size,
            }
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
        xml_escape(message)
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Body::from(body))
        .unwrap_or_default()
}

fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (sigv4::uri_decode(k, true), sigv4::uri_decode(v, true))
        })
        .collect()
}

/// Checks the request's SigV4 header signature; `Some` is the S3 refusal to answer with.
fn check_signature(
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Option<Response> {
    let denied = |code: &str, msg: &str| Some(error(StatusCode::FORBIDDEN, code, msg));
    let Some(auth) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::parse_authorization)
    else {
        return denied("AccessDenied", "Access Denied: sign the request (SigV4)");
    };
    if auth.access_key != ACCESS_KEY {
        return denied(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        );
    }
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let Some(v) = headers.get(name.as_str()).and_then(|v| v.to_str().ok()) else {
            return denied("SignatureDoesNotMatch", "a signed header is missing");
        };
        signed.push((name.clone(), v.to_string()));
    }
    let date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let payload = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(sigv4::EMPTY_SHA256);
    let expected = sigv4::signature(
        &sigv4::Request {
            method: "GET",
            path,
            query,
            headers: &signed,
            payload_hash: payload,
        },
        date,
        &auth.region,
        &auth.service,
        SECRET_KEY,
    );
    if expected != auth.signature {
        return denied(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        );
    }
    None
}

async fn list(
    State(store): State<Arc<Store>>,
    Path(bucket): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query_pairs(raw.as_deref().unwrap_or(""));
    if let Some(resp) = check_signature(&format!("/{bucket}"), &query, &headers) {
        return resp;
    }
    let get = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    if get("list-type") != Some("2") {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "only ListObjectsV2 (list-type=2) is simulated",
        );
    }
    let Some(objects) = store.buckets.get(&bucket) else {
        return error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    };
    let prefix = get("prefix").unwrap_or("");
    let max = get("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000usize)
        .clamp(1, 1000);
    let start: usize = get("continuation-token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let mut matching: Vec<&SimObject> = objects
        .iter()
        .filter(|o| o.key.starts_with(prefix))
        .collect();
    matching.sort_by(|a, b| a.key.cmp(&b.key));
    let page: Vec<&&SimObject> = matching.iter().skip(start).take(max).collect();
    let truncated = start + page.len() < matching.len();
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        xml_escape(&bucket),
        xml_escape(prefix),
        page.len()
    );
    for o in &page {
        body.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>&quot;{:032x}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            xml_escape(&o.key),
            o.modified.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            o.size,
            o.size
        ));
    }
    if truncated {
        body.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            start + page.len()
        ));
    }
    body.push_str("</ListBucketResult>");
    Response::builder()
        .header("content-type", "application/xml")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// The simulator's test CA (PEM): it signed [`TLS_CERT`]. Trust it, or skip verification as
/// the fleet's in-cluster clients do (`mc --insecure`).
pub const CA_CERT: &str = include_str!("certs/minio-ca.crt");
/// MinIO's server certificate (PEM), for 127.0.0.1, localhost and `minio.minio.svc`; also the
/// `public.crt` of the simulated Secret `minio/minio-tls`.
pub const TLS_CERT: &str = include_str!("certs/minio.crt");
/// Its private key (PEM; a test key, published with the source), `private.key` of `minio-tls`.
pub const TLS_KEY: &str = include_str!("certs/minio.key");

/// TLS connections accepted on a TCP listener (handshakes that fail or stall are dropped).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((sock, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let handshake = self.acceptor.accept(sock);
            match tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => tracing::debug!("sim minio: TLS handshake failed: {e}"),
                Err(_) => tracing::debug!("sim minio: TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn tls_acceptor() -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(TLS_CERT.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| std::io::Error::other(format!("sim minio certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(TLS_KEY.as_bytes())
        .map_err(|e| std::io::Error::other(format!("sim minio key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| std::io::Error::other(format!("sim minio TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| std::io::Error::other(format!("sim minio TLS: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

impl SimS3 {
    /// Starts the Backblaze B2 store: one bucket, each cluster's dumps under `<env>/`.
    /// Production's copy silently stopped two runs ago.
    pub async fn start() -> std::io::Result<SimS3> {
        let now = Timestamp::now();
        let mut objects = Vec::new();
        for env in [Env::Staging, Env::Production] {
            let skip = if env == Env::Production { 2 } else { 0 };
            objects.extend(history(env, now, skip).into_iter().map(|mut o| {
                o.key = format!("{}{}", b2_prefix(env), o.key);
                o
            }));
        }
        let mut store = BTreeMap::new();
        store.insert(super::seed::B2_BUCKET.to_string(), objects);
        Self::serve(store).await
    }

    /// Starts a cluster's MinIO: bucket `postgres-backups` with the dumps at the top, served
    /// over HTTPS ([`SimS3::https_url`]) and, for clients that cannot yet take a CA or skip
    /// verification, over plain HTTP too ([`SimS3::url`]).
    pub async fn start_minio(env: Env) -> std::io::Result<SimS3> {
        let mut store = BTreeMap::new();
        store.insert(
            buckets(env).0.to_string(),
            history(env, Timestamp::now(), 0),
        );
        let mut s = Self::serve(store.clone()).await?;
        let tcp = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let tls_addr = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            acceptor: tls_acceptor()?,
        };
        let app = Router::new()
            .route("/minio/health/live", get(|| async { "" }))
            .route("/{bucket}", get(list))
            .with_state(Arc::new(Store { buckets: store }));
        s.tls = Some((
            tls_addr,
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        ));
        Ok(s)
    }

    /// Starts a store holding exactly these buckets (for tests), over plain HTTP.
    pub async fn serve(buckets: BTreeMap<String, Vec<SimObject>>) -> std::io::Result<SimS3> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/{bucket}", get(list))
            .with_state(Arc::new(Store { buckets }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SimS3 {
            addr,
            task,
            tls: None,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT` for a MinIO store (certificate signed by [`CA_CERT`]).
    pub fn https_url(&self) -> Option<String> {
        self.tls.as_ref().map(|(a, _)| format!("https://{a}"))
    }

    pub fn stop(&self) {
        self.task.abort();
        if let Some((_, t)) = &self.tls {
            t.abort();
        }
    }
}

impl Drop for SimS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The VPS backup directory of a cluster on the real machine (`/goapps-backup/postgres`,
/// `/staging-goapps-backup/postgres`); the simulator keeps it under its own directory.
pub fn disk_dir(env: Env) -> &'static str {
    match env {
        Env::Staging => "/staging-goapps-backup/postgres",
        Env::Production => "/goapps-backup/postgres",
    }
}

/// Writes the cluster's dumps into `dir` as the hostPath destination holds them: the same
/// names, sizes (sparse files) and times as MinIO, the newest empty one a real empty gzip.
pub fn write_disk(env: Env, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for o in history(env, Timestamp::now(), 0) {
        let path = dir.join(&o.key);
        let f = std::fs::File::create(&path)?;
        if o.size == EMPTY_GZIP.len() as u64 {
            use std::io::Write as _;
            (&f).write_all(&EMPTY_GZIP)?;
        } else {
            f.set_len(o.size)?;
        }
        let t = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(o.modified.as_second().max(0) as u64);
        f.set_modified(t)?;
    }
    Ok(())
}

/// The `[cluster.backups]` table of a simulated cluster: the backup CronJobs by the name
/// prefix `postgres-backup-`, MinIO (`minio_url`), B2 (`b2_url`, prefix `<env>/`) and the
/// VPS disk, kept at `disk` by the simulator.
pub fn config_table(
    env: Env,
    minio_url: &str,
    b2_url: &str,
    access_file: &str,
    secret_file: &str,
    disk: &str,
) -> String {
    let (minio, b2) = buckets(env);
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let s3 = |name: &str, url: &str, bucket: &str, prefix: &str| {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("prefix = {}\n", q(prefix))
        };
        format!(
            "[[cluster.backups.source]]\nkind = \"s3\"\nname = \"{name}\"\nurl = {}\nbucket = \"{bucket}\"\n{prefix}region = \"{REGION}\"\naccess_key_file = {}\nsecret_key_file = {}\n",
            q(url),
            q(access_file),
            q(secret_file)
        )
    };
    format!(
        "[cluster.backups]\nmax_age = \"8h30m\"\nretention = \"7d\"\nmissing_after = \"2h\"\n\
         [[cluster.backups.source]]\nkind = \"cronjob\"\nname = \"cronjobs\"\nnamespace = \"database\"\nprefix = \"postgres-backup-\"\n{}{}\
         [[cluster.backups.source]]\nkind = \"dir\"\nname = \"vps-disk\"\npath = {}\npattern = \"*_goapps_*.sql.gz\"\n",
        s3("minio", minio_url, minio, ""),
        s3("b2", b2_url, b2, &b2_prefix(env)),
        q(disk)
    )
}
