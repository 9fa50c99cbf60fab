//! A small S3 ListObjectsV2 server for the simulated fleet: path-style `GET /{bucket}?list-type=2`
//! with prefix, max-keys and continuation tokens, SigV4 header signatures checked against the
//! one key pair the fleet config names, and a realistic object history: `pg_dump` files three
//! times a day (06:00, 14:00, 22:00 WIB) over the last 7 days, 40-60 MB and drifting. Production's
//! off-site bucket stopped receiving backups two runs ago: the fleet's known silent failure.

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
}

/// The (MinIO bucket, B2 bucket) of a cluster.
pub fn buckets(env: Env) -> (&'static str, &'static str) {
    match env {
        Env::Staging => ("postgres-backups-staging", "stgapps-pg-offsite"),
        Env::Production => ("postgres-backups", "goapps-pg-offsite"),
    }
}

/// The backup runs of the last 7 days (newest last): 06:00, 14:00, 22:00 WIB, each upload
/// landing a minute or two later, sizes drifting around 40-60 MB.
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
            if at <= now && now.as_second() - at.as_second() <= 7 * 86_400 {
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
            let i = i as u64;
            // A slow upward drift with a wobble: the database grows, dumps vary a little.
            let size = 42_000_000 + i * 650_000 + ((i * 7 + salt) % 5) * 900_000;
            let secs = at.as_second() + 60 + ((i * 13 + salt) % 50) as i64;
            let modified = Timestamp::from_second(secs).unwrap_or(at);
            let name = at
                .to_zoned(wib.clone())
                .strftime("backup_%Y%m%d_%H%M%S.sql.gz")
                .to_string();
            SimObject {
                key: name,
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

impl SimS3 {
    /// Starts the store with the fleet's buckets.
    pub async fn start() -> std::io::Result<SimS3> {
        let now = Timestamp::now();
        let mut store = BTreeMap::new();
        for env in [Env::Staging, Env::Production] {
            let (minio, b2) = buckets(env);
            store.insert(minio.to_string(), history(env, now, 0));
            // Production's off-site copy silently stopped two runs ago.
            let skip = if env == Env::Production { 2 } else { 0 };
            store.insert(b2.to_string(), history(env, now, skip));
        }
        Self::serve(store).await
    }

    /// Starts a store holding exactly these buckets (for tests).
    pub async fn serve(buckets: BTreeMap<String, Vec<SimObject>>) -> std::io::Result<SimS3> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/{bucket}", get(list))
            .with_state(Arc::new(Store { buckets }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SimS3 { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for SimS3 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `[cluster.backups]` table of a simulated cluster.
pub fn config_table(env: Env, url: &str, access_file: &str, secret_file: &str) -> String {
    let (minio, b2) = buckets(env);
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let (host, dir) = match env {
        Env::Staging => ("stg-vps", "/mnt/stgapps-backup/postgres"),
        Env::Production => ("prod-vps", "/mnt/goapps-backup/postgres"),
    };
    let s3 = |name: &str, bucket: &str| {
        format!(
            "[[cluster.backups.source]]\nkind = \"s3\"\nname = \"{name}\"\nurl = {}\nbucket = \"{bucket}\"\nregion = \"{REGION}\"\naccess_key_file = {}\nsecret_key_file = {}\n",
            q(url),
            q(access_file),
            q(secret_file)
        )
    };
    format!(
        "[cluster.backups]\nmax_age = \"8h30m\"\nretention = \"7d\"\nmissing_after = \"2h\"\n\
         [[cluster.backups.source]]\nkind = \"cronjob\"\nname = \"cronjobs\"\nnamespace = \"database\"\nprefix = \"postgres-backup-\"\n{}{}\
         [[cluster.backups.source]]\nkind = \"dir\"\nname = \"vps-disk\"\npath = \"{dir}\"\npattern = \"*.sql.gz\"\nhost = \"{host}\"\n",
        s3("minio", minio),
        s3("b2", b2)
    )
}
