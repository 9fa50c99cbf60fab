//! The ArgoCD source: lists one cluster's applications over the REST API (reqwest + rustls
//! with the ring provider), follows `GET /api/v1/stream/applications` for live changes
//! (falling back to polling the list when the stream is unavailable), and publishes a whole
//! [`ArgocdSnapshot`] of compact per-app summaries on every change. Also owns the actions
//! (refresh, sync, rollback) the console runs after its confirm modal, and the wire types that
//! mirror the swagger's field names ([`wire`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use jiff::Timestamp;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{FeatureData, SourceEvent, SourceUpdate};
use crate::config::{ClusterConfig, Endpoint, SecretRef, parse_duration};
use crate::lines::LineSplitter;
use crate::model::argocd::{
    AppSummary, ArgoAction, ArgocdSnapshot, Condition, FollowMode, Health, HistoryEntry, Operation,
    OperationPhase, ResourceRow, SyncStatus,
};

/// How often the list is polled when the stream is unavailable (config `poll`).
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);
/// While polling, how often opening the stream is tried again.
const STREAM_RETRY: Duration = Duration::from_secs(30);
/// A stream silent this long is re-opened (a half-open connection would never end by itself).
const STREAM_IDLE: Duration = Duration::from_secs(300);
/// After this long without a byte on the stream (ArgoCD sends nothing while no app changes),
/// one cheap request (`GET /api/version`) asks whether the server is still there.
pub const PROBE_AFTER: Duration = Duration::from_secs(12);
/// After this long without a word from ArgoCD (stream, list or probe), the panel is marked
/// stale: `no answer from ArgoCD for 15s`.
pub const STALE_AFTER: Duration = Duration::from_secs(15);
/// How long one probe may take; while stale, a probe is sent this often, so a server that
/// comes back is noticed within a few seconds.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `no answer from ArgoCD for 15s`.
pub fn no_answer_reason() -> String {
    format!("no answer from ArgoCD for {}s", STALE_AFTER.as_secs())
}
/// A stream that ends sooner than this counts as a failure (backoff), so a server that
/// closes at once is not reconnected to in a tight loop.
const STREAM_MIN_LIFE: Duration = Duration::from_secs(2);
/// Login sessions last 24h by default (`users.session.duration`); renew well before.
const SESSION_RENEW: Duration = Duration::from_secs(12 * 3600);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A refresh blocks until the controller has reconciled the app.
const ACTION_TIMEOUT: Duration = Duration::from_secs(90);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Everything that can go wrong talking to ArgoCD. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgoError {
    #[error("{0}")]
    Config(String),
    #[error("ArgoCD at {url} rejected the token (401): {message}; {fix}")]
    Unauthorized {
        url: String,
        message: String,
        fix: String,
    },
    #[error("ArgoCD at {url} answered {status} to {what}: {message}")]
    Http {
        url: String,
        status: u16,
        what: String,
        message: String,
    },
    #[error("ArgoCD at {url} did not answer {what}: {reason}")]
    Transport {
        url: String,
        what: String,
        reason: String,
    },
    #[error("ArgoCD at {url} sent {what} that cannot be read: {reason}")]
    Decode {
        url: String,
        what: String,
        reason: String,
    },
}

/// Where the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthSpec {
    /// No credentials configured (an anonymous-enabled ArgoCD).
    Anonymous,
    Token(SecretRef),
    Login {
        user: String,
        password: SecretRef,
    },
}

/// The `[cluster.argocd]` table, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgocdSettings {
    pub endpoint: Endpoint,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub poll: Duration,
    /// `base_path = "/argocd"`: the server's `--rootpath`. Unset: found at connect time (see
    /// [`probe_root_path`]).
    pub base_path: Option<String>,
    /// `tls = true|false` for an `address`/`service` endpoint; see [`endpoint_tls`].
    pub tls: Option<bool>,
    /// `ci_sync = "GLOB"`: the apps CI also syncs on every push (shown in the app detail).
    pub ci_sync: String,
    auth: AuthSpec,
}

impl ArgocdSettings {
    /// Reads a cluster's `[cluster.argocd]`; errors name the key.
    pub fn from_cluster(cluster: &ClusterConfig) -> Result<ArgocdSettings, ArgoError> {
        let cfg = |m: String| ArgoError::Config(format!("cluster {} argocd: {m}", cluster.name));
        let t = cluster
            .argocd
            .as_ref()
            .ok_or_else(|| cfg("no [cluster.argocd] table".into()))?;
        let endpoint = Endpoint::from_table(t).map_err(cfg)?.ok_or_else(|| {
            cfg("needs url = \"http(s)://...\" or service = \"argocd/argocd-server:80\"".into())
        })?;
        let ca_file = t.get("ca_file").and_then(|v| v.as_str()).map(PathBuf::from);
        let insecure_skip_verify = t
            .get("insecure_skip_verify")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        let poll = match t.get("poll").and_then(|v| v.as_str()) {
            Some(s) => parse_duration(s).map_err(|m| cfg(format!("poll: {m}")))?,
            None => DEFAULT_POLL,
        }
        .max(Duration::from_secs(1));
        let token = SecretRef::from_table(t, "token").map_err(cfg)?;
        let password = SecretRef::from_table(t, "password").map_err(cfg)?;
        let user = t.get("user").and_then(|v| v.as_str()).map(str::to_string);
        let auth = match (token, user, password) {
            (Some(token), None, None) => AuthSpec::Token(token),
            (None, Some(user), Some(password)) => AuthSpec::Login { user, password },
            (None, None, None) => AuthSpec::Anonymous,
            (Some(_), _, _) => {
                return Err(cfg(
                    "give either a token or user + password, not both".into()
                ));
            }
            (None, Some(_), None) => {
                return Err(cfg(
                    "user needs password_env, password_file or password_secret".into(),
                ));
            }
            (None, None, Some(_)) => {
                return Err(cfg("a password needs a user (e.g. user = \"admin\")".into()));
            }
        };
        let base_path = t
            .get("base_path")
            .and_then(|v| v.as_str())
            .map(normalize_base_path);
        let tls = t.get("tls").and_then(toml::Value::as_bool);
        let ci_sync = t
            .get("ci_sync")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        Ok(ArgocdSettings {
            endpoint,
            ca_file,
            insecure_skip_verify,
            poll,
            base_path,
            tls,
            ci_sync,
            auth,
        })
    }
}

/// True when the cluster has an `[cluster.argocd]` table.
pub fn configured(cluster: &ClusterConfig) -> bool {
    cluster.argocd.is_some()
}

/// `"argocd"`, `"/argocd/"` → `"/argocd"`; `"/"` and `""` → `""`.
pub fn normalize_base_path(p: &str) -> String {
    let p = p.trim().trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

/// Whether an `address`/`service` endpoint is dialled with TLS. `tls = true|false` decides
/// when given; otherwise port 80 (or a port named `http`) is plain HTTP, as the argo-cd chart's
/// Service maps it with `server.insecure=true` (the goapps fleet), and any other port HTTPS.
/// A `url` carries its own scheme.
pub fn endpoint_tls(endpoint: &Endpoint, tls: Option<bool>) -> bool {
    use crate::config::PortRef;
    if let Some(t) = tls {
        return t;
    }
    let port = match endpoint {
        Endpoint::Url(u) => return u.starts_with("https://"),
        Endpoint::Address { port, .. } => PortRef::Number(*port),
        Endpoint::Service { port, .. } => port.clone(),
    };
    !matches!(port, PortRef::Number(80)) && !matches!(&port, PortRef::Name(n) if n == "http")
}

/// The base URL for an endpoint, without the root path: the one place that turns
/// configuration into a place to connect to. A `service` is reached through the port-forward
/// machinery (a local address).
pub async fn connect_url(
    cluster: &ClusterConfig,
    endpoint: &Endpoint,
    tls: Option<bool>,
) -> Result<String, ArgoError> {
    let scheme = if endpoint_tls(endpoint, tls) {
        "https"
    } else {
        "http"
    };
    let reached = super::reachable_endpoint(cluster, endpoint)
        .await
        .map_err(|reason| ArgoError::Transport {
            url: endpoint.to_string(),
            what: "the port-forward".into(),
            reason,
        })?;
    match reached {
        Endpoint::Url(u) => Ok(u.trim_end_matches('/').to_string()),
        Endpoint::Address { host, port } if host.contains(':') => {
            Ok(format!("{scheme}://[{host}]:{port}"))
        }
        Endpoint::Address { host, port } => Ok(format!("{scheme}://{host}:{port}")),
        Endpoint::Service { .. } => Err(ArgoError::Config(format!(
            "{endpoint}: the port-forward gave no local address"
        ))),
    }
}

/// ArgoCD's `--rootpath` when `base_path` is not configured: the API answers (anything but
/// 404, e.g. 401 to an anonymous caller) at `BASE/api/version` without one, and at
/// `BASE/argocd/api/version` with the goapps fleet's `--rootpath=/argocd` (only `/healthz`
/// sits at the root then). A URL that already holds a path is taken as it is.
pub async fn probe_root_path(http: &reqwest::Client, base: &str) -> String {
    let has_path = reqwest::Url::parse(base).is_ok_and(|u| !u.path().trim_matches('/').is_empty());
    if has_path {
        return String::new();
    }
    let status = |path: &'static str| {
        let req = http
            .get(format!("{base}{path}/api/version"))
            .timeout(Duration::from_secs(5));
        async move { req.send().await.ok().map(|r| r.status().as_u16()) }
    };
    if status("").await == Some(404) && status("/argocd").await.is_some_and(|s| s != 404) {
        "/argocd".into()
    } else {
        String::new()
    }
}

mod tls {
    //! rustls with the ring provider, built here so the HTTP client never looks for (or
    //! panics without) a process-wide default provider.
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, Error, SignatureScheme};

    /// Accepts any certificate (`insecure_skip_verify = true`), still checking signatures.
    #[derive(Debug)]
    struct SkipVerify(Arc<CryptoProvider>);

    impl ServerCertVerifier for SkipVerify {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The client TLS config: a private CA from `ca_file` when given (only it is trusted),
    /// else the webpki roots; or no certificate check at all when asked.
    pub fn config(
        ca_file: Option<&std::path::Path>,
        insecure: bool,
    ) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        if insecure {
            return Ok(builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
                .with_no_client_auth());
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| {
                        format!("ca_file {} is not PEM certificates: {e}", path.display())
                    })?;
                    roots.add(cert).map_err(|e| {
                        format!(
                            "ca_file {} holds an unusable certificate: {e}",
                            path.display()
                        )
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!("ca_file {} holds no certificate", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(builder.with_root_certificates(roots).with_no_client_auth())
    }
}

/// The token in use and where it came from.
struct Auth {
    spec: AuthSpec,
    token: Option<String>,
    obtained: Option<Instant>,
}

impl Auth {
    /// What to fix when the token is rejected, naming the place (never the value).
    fn fix(&self) -> String {
        match &self.spec {
            AuthSpec::Anonymous => {
                "this ArgoCD needs credentials: set token_env, token_file or token_secret (or user + password_*) in [cluster.argocd]".into()
            }
            AuthSpec::Token(SecretRef::Env(var)) => {
                format!("set {var} to a valid ArgoCD API token (argocd account generate-token)")
            }
            AuthSpec::Token(SecretRef::File(path)) => format!(
                "put a valid ArgoCD API token in {} (argocd account generate-token)",
                path.display()
            ),
            AuthSpec::Token(s) => format!("update {s} with a valid ArgoCD API token"),
            AuthSpec::Login { user, password } => {
                format!("check user {user:?} and its password in {password}")
            }
        }
    }
}

/// A connected ArgoCD API client for one cluster.
pub struct ArgocdClient {
    http: reqwest::Client,
    base: String,
    insecure: bool,
    auth: Auth,
    cluster: ClusterConfig,
}

/// The application list and the resourceVersion it was read at.
#[derive(Debug, Clone)]
pub struct AppList {
    pub apps: BTreeMap<String, AppSummary>,
    pub resource_version: Option<String>,
}

/// A change read from the stream.
#[derive(Debug, Clone)]
pub enum AppChange {
    Upsert(Box<AppSummary>),
    Delete(String),
}

async fn read_secret(secret: &SecretRef, cluster: &ClusterConfig) -> Result<String, String> {
    match secret {
        SecretRef::Kube {
            namespace,
            name,
            key,
        } => {
            use k8s_openapi::api::core::v1::Secret;
            let client = super::kube::client_for(cluster).await?;
            let api: kube::Api<Secret> = kube::Api::namespaced(client, namespace);
            let s = api
                .get(name)
                .await
                .map_err(|e| format!("cannot read secret {namespace}/{name}: {e}"))?;
            let bytes = s
                .data
                .and_then(|mut d| d.remove(key))
                .ok_or_else(|| format!("secret {namespace}/{name} has no key {key}"))?;
            let text = String::from_utf8(bytes.0)
                .map_err(|_| format!("secret {namespace}/{name}:{key} is not UTF-8 text"))?;
            Ok(text.trim_end_matches(['\n', '\r']).to_string())
        }
        other => other.resolve_local(),
    }
}

/// `runtimeError.message` (or `error`) of an error body, else the body cut short.
fn error_message(body: &str) -> String {
    if let Ok(e) = serde_json::from_str::<wire::RuntimeError>(body) {
        let m = e.message.or(e.error).unwrap_or_default();
        if !m.is_empty() {
            return m;
        }
    }
    let t = body.trim();
    if t.is_empty() {
        "no message".into()
    } else {
        t.chars().take(200).collect()
    }
}

/// The innermost cause of a transport error: "connection refused" beats a wrapper's text.
fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    if msg.contains("Connection refused") {
        "connection refused".into()
    } else {
        msg
    }
}

impl ArgocdClient {
    /// Builds the HTTP client for a cluster's ArgoCD. Credentials are read lazily, on the
    /// first request.
    pub async fn connect(cluster: &ClusterConfig) -> Result<ArgocdClient, ArgoError> {
        let settings = ArgocdSettings::from_cluster(cluster)?;
        let base = connect_url(cluster, &settings.endpoint, settings.tls).await?;
        let tls = tls::config(settings.ca_file.as_deref(), settings.insecure_skip_verify)
            .map_err(|m| ArgoError::Config(format!("ArgoCD at {base}: {m}")))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ArgoError::Config(format!("ArgoCD at {base}: HTTP client: {e}")))?;
        let root = match &settings.base_path {
            Some(p) => p.clone(),
            None => probe_root_path(&http, &base).await,
        };
        let base = format!("{base}{root}");
        Ok(ArgocdClient {
            http,
            base,
            insecure: settings.insecure_skip_verify,
            auth: Auth {
                spec: settings.auth,
                token: None,
                obtained: None,
            },
            cluster: cluster.clone(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The liveness probe: `GET /api/version` (no credentials needed, a few bytes), answered
    /// within [`PROBE_TIMEOUT`]. Any HTTP answer counts: the server is there.
    fn prober(&self) -> impl Fn() -> futures::future::BoxFuture<'static, bool> + Send + use<> {
        let http = self.http.clone();
        let url = format!("{}/api/version", self.base);
        move || {
            let req = http.get(url.clone()).timeout(PROBE_TIMEOUT);
            async move {
                match req.send().await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
            .boxed()
        }
    }

    pub fn insecure(&self) -> bool {
        self.insecure
    }

    fn unauthorized(&self, message: String) -> ArgoError {
        ArgoError::Unauthorized {
            url: self.base.clone(),
            message,
            fix: self.auth.fix(),
        }
    }

    fn transport(&self, what: &str, e: &reqwest::Error) -> ArgoError {
        ArgoError::Transport {
            url: self.base.clone(),
            what: what.to_string(),
            reason: transport_reason(e),
        }
    }

    /// The bearer token, read or logged in for when there is none (or the session is old).
    async fn token(&mut self) -> Result<Option<String>, ArgoError> {
        let fresh = match (&self.auth.spec, self.auth.obtained) {
            (AuthSpec::Login { .. }, Some(t)) => t.elapsed() < SESSION_RENEW,
            _ => true,
        };
        if let Some(t) = &self.auth.token
            && fresh
        {
            return Ok(Some(t.clone()));
        }
        let token = match self.auth.spec.clone() {
            AuthSpec::Anonymous => return Ok(None),
            AuthSpec::Token(secret) => read_secret(&secret, &self.cluster).await.map_err(|m| {
                ArgoError::Config(format!(
                    "ArgoCD token for cluster {}: {m}",
                    self.cluster.name
                ))
            })?,
            AuthSpec::Login { user, password } => {
                let password = read_secret(&password, &self.cluster).await.map_err(|m| {
                    ArgoError::Config(format!(
                        "ArgoCD password for cluster {}: {m}",
                        self.cluster.name
                    ))
                })?;
                self.login(&user, &password).await?
            }
        };
        self.auth.token = Some(token.clone());
        self.auth.obtained = Some(Instant::now());
        Ok(Some(token))
    }

    /// `POST /api/v1/session` → `{"token"}`.
    async fn login(&self, user: &str, password: &str) -> Result<String, ArgoError> {
        let what = "the login (POST /api/v1/session)";
        let resp = self
            .http
            .post(format!("{}/api/v1/session", self.base))
            .timeout(REQUEST_TIMEOUT)
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .map_err(|e| self.transport(what, &e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.transport(what, &e))?;
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(self.unauthorized(format!("login refused: {}", error_message(&body))));
        }
        if !status.is_success() {
            return Err(ArgoError::Http {
                url: self.base.clone(),
                status: status.as_u16(),
                what: what.into(),
                message: error_message(&body),
            });
        }
        let r: wire::SessionResponse =
            serde_json::from_str(&body).map_err(|e| ArgoError::Decode {
                url: self.base.clone(),
                what: "a session response".into(),
                reason: e.to_string(),
            })?;
        r.token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ArgoError::Decode {
                url: self.base.clone(),
                what: "a session response".into(),
                reason: "no token in it".into(),
            })
    }

    /// Sends a request with the bearer token; on 401 reads the token again (or logs in
    /// again) once and retries, so a rotated token or an expired session recovers by itself.
    async fn send(
        &mut self,
        what: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ArgoError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let mut req = build(&self.http, &self.base);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| self.transport(what, &e))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(resp);
            }
            let body = resp.text().await.unwrap_or_default();
            if status.as_u16() == 401 {
                self.auth.token = None;
                if !retried && self.auth.spec != AuthSpec::Anonymous {
                    retried = true;
                    continue;
                }
                return Err(self.unauthorized(error_message(&body)));
            }
            return Err(ArgoError::Http {
                url: self.base.clone(),
                status: status.as_u16(),
                what: what.to_string(),
                message: error_message(&body),
            });
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<T, ArgoError> {
        let bytes = resp.bytes().await.map_err(|e| self.transport(what, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ArgoError::Decode {
            url: self.base.clone(),
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// `GET /api/v1/applications`, full objects: the `fields` whitelist of 2.x would drop the
    /// revision, the operation message, history and conditions (protocols.md §3).
    pub async fn list(&mut self) -> Result<AppList, ArgoError> {
        let what = "the application list";
        let resp = self
            .send(what, |c, base| {
                c.get(format!("{base}/api/v1/applications"))
                    .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        let list: wire::ApplicationList = self.json(what, resp).await?;
        let apps = list
            .items
            .iter()
            .filter_map(summarize)
            .map(|a| (a.name.clone(), a))
            .collect();
        Ok(AppList {
            apps,
            resource_version: list.metadata.resource_version,
        })
    }

    /// `GET /api/v1/applications/{name}`.
    pub async fn get(&mut self, app: &str) -> Result<AppSummary, ArgoError> {
        let what = format!("the application {app}");
        let resp = self
            .send(&what, |c, base| {
                c.get(format!("{base}/api/v1/applications/{}", path_segment(app)))
                    .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        let a: wire::Application = self.json(&what, resp).await?;
        summarize(&a).ok_or_else(|| ArgoError::Decode {
            url: self.base.clone(),
            what,
            reason: "the application has no name".into(),
        })
    }

    /// `GET /api/v1/applications/{name}/resource-tree`: every resource ArgoCD knows for the
    /// app, children (ReplicaSets, Pods) included.
    pub async fn resource_tree(&mut self, app: &str) -> Result<Vec<ResourceRow>, ArgoError> {
        let what = format!("the resource tree of {app}");
        let resp = self
            .send(&what, |c, base| {
                c.get(format!(
                    "{base}/api/v1/applications/{}/resource-tree",
                    path_segment(app)
                ))
                .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        let tree: wire::ApplicationTree = self.json(&what, resp).await?;
        Ok(tree
            .nodes
            .into_iter()
            .map(|n| ResourceRow {
                kind: n.kind.unwrap_or_default(),
                namespace: n.namespace.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                sync: String::new(),
                health: n.health.and_then(|h| h.status).unwrap_or_default(),
            })
            .collect())
    }

    /// Opens `GET /api/v1/stream/applications`; with a resourceVersion only changes follow.
    pub async fn open_stream(
        &mut self,
        resource_version: Option<&str>,
    ) -> Result<reqwest::Response, ArgoError> {
        let rv = resource_version.map(str::to_string);
        self.send("the application stream", move |c, base| {
            let req = c.get(format!("{base}/api/v1/stream/applications"));
            match &rv {
                Some(rv) => req.query(&[("resourceVersion", rv.as_str())]),
                None => req,
            }
        })
        .await
    }

    /// Runs one action and returns the server's verdict.
    pub async fn perform(&mut self, app: &str, action: ArgoAction) -> Result<(), ArgoError> {
        let seg = path_segment(app);
        let what = action.describe(app);
        let resp = match action {
            ArgoAction::Refresh { hard } => {
                let kind = if hard { "hard" } else { "normal" };
                self.send(&what, |c, base| {
                    c.get(format!("{base}/api/v1/applications/{seg}"))
                        .query(&[("refresh", kind)])
                        .timeout(ACTION_TIMEOUT)
                })
                .await?
            }
            ArgoAction::Sync { prune } => {
                let body = wire::SyncRequest {
                    name: app.to_string(),
                    prune,
                    dry_run: false,
                };
                self.send(&what, |c, base| {
                    c.post(format!("{base}/api/v1/applications/{seg}/sync"))
                        .json(&body)
                        .timeout(ACTION_TIMEOUT)
                })
                .await?
            }
            ArgoAction::Rollback { id } => {
                let body = wire::RollbackRequest {
                    name: app.to_string(),
                    id,
                    prune: false,
                    dry_run: false,
                };
                self.send(&what, |c, base| {
                    c.post(format!("{base}/api/v1/applications/{seg}/rollback"))
                        .json(&body)
                        .timeout(ACTION_TIMEOUT)
                })
                .await?
            }
        };
        // The answer is the Application; its arrival is what matters.
        let _ = resp.bytes().await;
        Ok(())
    }
}

/// An app name in a URL path. ArgoCD names are DNS labels, but never trust input in a path.
fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs `action` on `app` of `cluster` (a fresh client: actions are rare, and this keeps them
/// independent of the source task). The error is a sentence for the notice and the app's row.
pub async fn perform(cluster: &ClusterConfig, app: &str, action: ArgoAction) -> Result<(), String> {
    let mut client = ArgocdClient::connect(cluster)
        .await
        .map_err(|e| e.to_string())?;
    client.perform(app, action).await.map_err(|e| match e {
        ArgoError::Http {
            url,
            status,
            message,
            ..
        } => format!(
            "ArgoCD at {url} refused to {} ({status}): {message}",
            action.describe(app)
        ),
        other => other.to_string(),
    })
}

/// `GET …/{app}?refresh=normal|hard`.
pub async fn refresh(cluster: &ClusterConfig, app: &str, hard: bool) -> Result<(), String> {
    perform(cluster, app, ArgoAction::Refresh { hard }).await
}

/// `POST …/{app}/sync` with `{"name", "prune", "dryRun": false}`.
pub async fn sync(cluster: &ClusterConfig, app: &str, prune: bool) -> Result<(), String> {
    perform(cluster, app, ArgoAction::Sync { prune }).await
}

/// `POST …/{app}/rollback` with `{"name", "id", "prune": false, "dryRun": false}`.
pub async fn rollback(cluster: &ClusterConfig, app: &str, history_id: i64) -> Result<(), String> {
    perform(cluster, app, ArgoAction::Rollback { id: history_id }).await
}

fn parse_time(s: &Option<String>) -> Option<Timestamp> {
    s.as_deref().and_then(|s| s.parse::<Timestamp>().ok())
}

/// The app's health message, or else the message of the first resource in the same state
/// ("Deployment iam-service: exceeded its progress deadline"), which is what explains it.
fn health_message(st: &wire::ApplicationStatus) -> String {
    if let Some(m) = st.health.message.as_ref().filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let status = st.health.status.as_deref().unwrap_or("");
    if status == "Healthy" {
        return String::new();
    }
    st.resources
        .iter()
        .find_map(|r| {
            let h = r.health.as_ref()?;
            let m = h.message.as_ref().filter(|m| !m.is_empty())?;
            (h.status.as_deref() == Some(status)).then(|| {
                format!(
                    "{} {}: {m}",
                    r.kind.as_deref().unwrap_or(""),
                    r.name.as_deref().unwrap_or("")
                )
            })
        })
        .unwrap_or_default()
}

/// Reduces a whole Application to what the console shows. `None` without a name.
pub fn summarize(a: &wire::Application) -> Option<AppSummary> {
    let name = a.metadata.name.clone().filter(|n| !n.is_empty())?;
    let spec = &a.spec;
    let st = &a.status;
    let source = spec.source.as_ref().or(spec.sources.first());
    let target_revision = source
        .and_then(|s| s.target_revision.clone())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "HEAD".into());
    let auto_sync = spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| a.enabled != Some(false));
    let revision = st
        .sync
        .revision
        .clone()
        .or_else(|| st.sync.revisions.first().cloned())
        .unwrap_or_default();
    let operation = st.operation_state.as_ref().map(|o| Operation {
        phase: OperationPhase::parse(o.phase.as_deref().unwrap_or("")),
        message: o.message.clone().unwrap_or_default(),
        started_at: parse_time(&o.started_at),
        finished_at: parse_time(&o.finished_at),
    });
    let history: Vec<HistoryEntry> = st
        .history
        .iter()
        .map(|h| HistoryEntry {
            id: h.id.0,
            revision: h
                .revision
                .clone()
                .or_else(|| h.revisions.first().cloned())
                .unwrap_or_default(),
            deployed_at: parse_time(&h.deployed_at),
        })
        .collect();
    let last_synced_at = history
        .iter()
        .filter_map(|h| h.deployed_at)
        .max()
        .or_else(|| {
            operation
                .as_ref()
                .filter(|o| o.phase == OperationPhase::Succeeded)
                .and_then(|o| o.finished_at)
        });
    Some(AppSummary {
        name,
        project: spec.project.clone().unwrap_or_else(|| "default".into()),
        sync: SyncStatus::parse(st.sync.status.as_deref().unwrap_or("")),
        health: Health::parse(st.health.status.as_deref().unwrap_or("")),
        health_message: health_message(st),
        revision,
        target_revision,
        auto_sync,
        images: st.summary.images.clone(),
        last_synced_at,
        operation,
        conditions: st
            .conditions
            .iter()
            .map(|c| Condition {
                kind: c.kind.clone().unwrap_or_default(),
                message: c.message.clone().unwrap_or_default(),
                last_transition: parse_time(&c.last_transition_time),
            })
            .collect(),
        history,
        resources: st
            .resources
            .iter()
            .map(|r| ResourceRow {
                kind: r.kind.clone().unwrap_or_default(),
                namespace: r.namespace.clone().unwrap_or_default(),
                name: r.name.clone().unwrap_or_default(),
                sync: r.status.clone().unwrap_or_default(),
                health: r
                    .health
                    .as_ref()
                    .and_then(|h| h.status.clone())
                    .unwrap_or_default(),
            })
            .collect(),
    })
}

/// Parses one line of the stream: a change, `Ok(None)` for a blank line or an unknown event
/// type, or the stream's own error message.
pub fn parse_stream_line(line: &[u8]) -> Result<Option<AppChange>, wire::StreamError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    // Server-sent events framing (`data: {...}`, `:` keepalives) is accepted too.
    let line = match line.strip_prefix(b"data:") {
        Some(rest) => rest.trim_ascii(),
        None if line.starts_with(b":") => return Ok(None),
        None => line,
    };
    let msg: wire::StreamMessage = match serde_json::from_slice(line) {
        Ok(m) => m,
        Err(e) => {
            return Err(wire::StreamError {
                message: Some(format!("unreadable stream message: {e}")),
                ..Default::default()
            });
        }
    };
    if let Some(err) = msg.error {
        return Err(err);
    }
    let Some(ev) = msg.result else {
        return Ok(None);
    };
    let Some(app) = summarize(&ev.application) else {
        return Ok(None);
    };
    Ok(match ev.kind.as_deref() {
        Some("ADDED" | "MODIFIED") => Some(AppChange::Upsert(Box::new(app))),
        Some("DELETED") => Some(AppChange::Delete(app.name)),
        _ => None,
    })
}

/// The wire JSON, with the swagger's field names. Every field is optional and `null`-tolerant:
/// argocd-server leaves empty fields out (Go `omitempty`).
pub mod wire {
    use serde::{Deserialize, Deserializer, Serialize};

    /// A JSON `null` read as the type's default (Go marshals nil slices as `null`).
    fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
    }

    /// An int64: a JSON number on the wire (Go `encoding/json`), a string in proto3 JSON.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Int64(pub i64);

    impl<'de> Deserialize<'de> for Int64 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum N {
                Num(i64),
                Str(String),
            }
            match N::deserialize(d)? {
                N::Num(n) => Ok(Int64(n)),
                N::Str(s) => s.parse().map(Int64).map_err(serde::de::Error::custom),
            }
        }
    }

    /// `v1alpha1ApplicationList`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct ApplicationList {
        #[serde(deserialize_with = "nullable")]
        pub metadata: ListMeta,
        #[serde(deserialize_with = "nullable")]
        pub items: Vec<Application>,
    }

    /// `v1ListMeta`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ListMeta {
        pub resource_version: Option<String>,
    }

    /// `v1alpha1Application`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct Application {
        #[serde(deserialize_with = "nullable")]
        pub metadata: ObjectMeta,
        #[serde(deserialize_with = "nullable")]
        pub spec: ApplicationSpec,
        #[serde(deserialize_with = "nullable")]
        pub status: ApplicationStatus,
        /// `v1alpha1Operation`: present while an operation is requested or running.
        pub operation: Option<serde_json::Value>,
    }

    /// `v1ObjectMeta` (the part read).
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ObjectMeta {
        pub name: Option<String>,
        pub namespace: Option<String>,
        pub resource_version: Option<String>,
    }

    /// `v1alpha1ApplicationSpec`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApplicationSpec {
        pub project: Option<String>,
        pub source: Option<ApplicationSource>,
        #[serde(deserialize_with = "nullable")]
        pub sources: Vec<ApplicationSource>,
        pub destination: Option<ApplicationDestination>,
        pub sync_policy: Option<SyncPolicy>,
    }

    /// `v1alpha1ApplicationSource`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApplicationSource {
        #[serde(rename = "repoURL")]
        pub repo_url: Option<String>,
        pub path: Option<String>,
        pub chart: Option<String>,
        pub target_revision: Option<String>,
    }

    /// `v1alpha1ApplicationDestination`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct ApplicationDestination {
        pub server: Option<String>,
        pub namespace: Option<String>,
        pub name: Option<String>,
    }

    /// `v1alpha1SyncPolicy`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct SyncPolicy {
        pub automated: Option<SyncPolicyAutomated>,
    }

    /// `v1alpha1SyncPolicyAutomated`; `enabled` (3.x) may switch a present block off.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct SyncPolicyAutomated {
        pub enabled: Option<bool>,
        pub prune: Option<bool>,
        pub self_heal: Option<bool>,
    }

    /// `v1alpha1ApplicationStatus`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApplicationStatus {
        #[serde(deserialize_with = "nullable")]
        pub sync: SyncStatus,
        #[serde(deserialize_with = "nullable")]
        pub health: HealthStatus,
        pub operation_state: Option<OperationState>,
        #[serde(deserialize_with = "nullable")]
        pub history: Vec<RevisionHistory>,
        #[serde(deserialize_with = "nullable")]
        pub conditions: Vec<ApplicationCondition>,
        #[serde(deserialize_with = "nullable")]
        pub resources: Vec<ResourceStatus>,
        #[serde(deserialize_with = "nullable")]
        pub summary: ApplicationSummary,
        pub reconciled_at: Option<String>,
    }

    /// `v1alpha1SyncStatus`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct SyncStatus {
        pub status: Option<String>,
        pub revision: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub revisions: Vec<String>,
    }

    /// `v1alpha1AppHealthStatus` / `v1alpha1HealthStatus`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct HealthStatus {
        pub status: Option<String>,
        pub message: Option<String>,
        pub last_transition_time: Option<String>,
    }

    /// `v1alpha1OperationState`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct OperationState {
        pub phase: Option<String>,
        pub message: Option<String>,
        pub started_at: Option<String>,
        pub finished_at: Option<String>,
        pub retry_count: Option<Int64>,
        pub sync_result: Option<SyncOperationResult>,
    }

    /// `v1alpha1SyncOperationResult` (the part read).
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct SyncOperationResult {
        pub revision: Option<String>,
    }

    /// `v1alpha1RevisionHistory`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct RevisionHistory {
        pub id: Int64,
        pub revision: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub revisions: Vec<String>,
        pub deployed_at: Option<String>,
        pub deploy_started_at: Option<String>,
    }

    /// `v1alpha1ApplicationCondition`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApplicationCondition {
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub message: Option<String>,
        pub last_transition_time: Option<String>,
    }

    /// `applicationv1alpha1ResourceStatus`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ResourceStatus {
        pub group: Option<String>,
        pub version: Option<String>,
        pub kind: Option<String>,
        pub namespace: Option<String>,
        pub name: Option<String>,
        pub status: Option<String>,
        pub health: Option<HealthStatus>,
    }

    /// `v1alpha1ApplicationSummary`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct ApplicationSummary {
        #[serde(deserialize_with = "nullable")]
        pub images: Vec<String>,
        #[serde(rename = "externalURLs", deserialize_with = "nullable")]
        pub external_urls: Vec<String>,
    }

    /// `v1alpha1ApplicationTree`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ApplicationTree {
        #[serde(deserialize_with = "nullable")]
        pub nodes: Vec<ResourceNode>,
        #[serde(deserialize_with = "nullable")]
        pub orphaned_nodes: Vec<ResourceNode>,
    }

    /// `v1alpha1ResourceNode`, with its embedded `ResourceRef` flattened as on the wire.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default, rename_all = "camelCase")]
    pub struct ResourceNode {
        pub group: Option<String>,
        pub version: Option<String>,
        pub kind: Option<String>,
        pub namespace: Option<String>,
        pub name: Option<String>,
        pub uid: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub parent_refs: Vec<ResourceRef>,
        pub health: Option<HealthStatus>,
        #[serde(deserialize_with = "nullable")]
        pub images: Vec<String>,
        pub resource_version: Option<String>,
        pub created_at: Option<String>,
    }

    /// `v1alpha1ResourceRef`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct ResourceRef {
        pub group: Option<String>,
        pub version: Option<String>,
        pub kind: Option<String>,
        pub namespace: Option<String>,
        pub name: Option<String>,
        pub uid: Option<String>,
    }

    /// `v1alpha1ApplicationWatchEvent`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct WatchEvent {
        #[serde(rename = "type")]
        pub kind: Option<String>,
        #[serde(deserialize_with = "nullable")]
        pub application: Application,
    }

    /// One line of the stream: `{"result": WatchEvent}` or `{"error": runtimeStreamError}`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct StreamMessage {
        pub result: Option<WatchEvent>,
        pub error: Option<StreamError>,
    }

    /// `runtimeStreamError`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct StreamError {
        pub grpc_code: Option<i64>,
        pub http_code: Option<i64>,
        pub message: Option<String>,
        pub http_status: Option<String>,
    }

    /// `runtimeError`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct RuntimeError {
        pub error: Option<String>,
        pub code: Option<i64>,
        pub message: Option<String>,
    }

    /// `sessionSessionResponse`.
    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(default)]
    pub struct SessionResponse {
        pub token: Option<String>,
    }

    /// `applicationApplicationSyncRequest` (the part sent).
    #[derive(Debug, Clone, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct SyncRequest {
        pub name: String,
        pub prune: bool,
        pub dry_run: bool,
    }

    /// `applicationApplicationRollbackRequest` (the part sent).
    #[derive(Debug, Clone, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RollbackRequest {
        pub name: String,
        pub id: i64,
        pub prune: bool,
        pub dry_run: bool,
    }
}

/// Doubling delays between failed attempts, so a dead or refusing server is never hammered.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
    fn take(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        d
    }
}

/// Sends updates for one cluster and remembers what it last said, so a failure that lasts
/// is reported once, not on every retry.
struct Reporter {
    index: usize,
    tx: UnboundedSender<SourceEvent>,
    endpoint: String,
    insecure: bool,
    ci_sync: String,
    failing: Option<String>,
}

impl Reporter {
    fn publish(&mut self, apps: &BTreeMap<String, AppSummary>, mode: FollowMode) -> bool {
        self.failing = None;
        let snap = ArgocdSnapshot {
            endpoint: self.endpoint.clone(),
            insecure: self.insecure,
            mode,
            apps: apps.values().cloned().collect(),
            ci_sync: self.ci_sync.clone(),
        };
        self.tx
            .send(SourceEvent {
                cluster: self.index,
                update: SourceUpdate::Feature(FeatureData::Argocd(Arc::new(snap))),
            })
            .is_ok()
    }

    fn fail(&mut self, reason: String) -> bool {
        if self.failing.as_ref() == Some(&reason) {
            return true;
        }
        tracing::debug!(cluster = self.index, %reason, "argocd failing");
        self.failing = Some(reason.clone());
        self.tx
            .send(SourceEvent {
                cluster: self.index,
                update: SourceUpdate::FeatureFailing {
                    feature: super::Feature::Argocd,
                    reason,
                },
            })
            .is_ok()
    }
}

/// Awaits one request; if it has not answered within [`STALE_AFTER`] the panel is marked
/// stale (`no answer from ArgoCD for 15s`) while it goes on waiting (the request's own
/// timeout ends it). `None` when cancelled or nobody listens.
async fn bounded<T>(
    request: impl std::future::Future<Output = T>,
    reporter: &mut Reporter,
    cancel: &CancellationToken,
) -> Option<T> {
    let mut request = std::pin::pin!(request);
    tokio::select! {
        _ = cancel.cancelled() => return None,
        r = &mut request => return Some(r),
        _ = tokio::time::sleep(STALE_AFTER) => {}
    }
    if !reporter.fail(no_answer_reason()) {
        return None;
    }
    tokio::select! {
        _ = cancel.cancelled() => None,
        r = request => Some(r),
    }
}

/// Sleeps unless cancelled; false when cancelled.
async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// How a stream ended.
enum StreamEnd {
    Cancelled,
    /// Closed by the server, cut, or idle too long.
    Closed,
    Failed(ArgoError),
}

/// Runs the ArgoCD source of cluster `index` until `cancel` fires.
pub async fn run(
    index: usize,
    cluster: ClusterConfig,
    tx: UnboundedSender<SourceEvent>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new();
    let mut reporter = Reporter {
        index,
        tx,
        endpoint: String::new(),
        insecure: false,
        ci_sync: String::new(),
        failing: None,
    };
    let (poll, ci_sync) = ArgocdSettings::from_cluster(&cluster)
        .map(|s| (s.poll, s.ci_sync))
        .unwrap_or((DEFAULT_POLL, String::new()));
    reporter.ci_sync = ci_sync;
    let mut client = loop {
        match ArgocdClient::connect(&cluster).await {
            Ok(c) => break c,
            Err(e) => {
                if !reporter.fail(e.to_string()) || !pause(&cancel, backoff.take()).await {
                    return;
                }
            }
        }
    };
    reporter.endpoint = client.base_url().to_string();
    reporter.insecure = client.insecure();
    backoff.reset();

    let mut apps: BTreeMap<String, AppSummary>;
    let mut mode = FollowMode::Stream;
    let mut last_stream_try: Option<Instant> = None;
    loop {
        let Some(listed) = bounded(client.list(), &mut reporter, &cancel).await else {
            return;
        };
        match listed {
            Ok(list) => {
                apps = list.apps;
                backoff.reset();
                if !reporter.publish(&apps, mode) {
                    return;
                }
            }
            Err(e) => {
                if !reporter.fail(e.to_string()) || !pause(&cancel, backoff.take()).await {
                    return;
                }
                continue;
            }
        }
        if mode == FollowMode::Polling
            && last_stream_try.is_some_and(|t| t.elapsed() < STREAM_RETRY)
        {
            if !pause(&cancel, poll).await {
                return;
            }
            continue;
        }
        last_stream_try = Some(Instant::now());
        // Without a resourceVersion the server first sends every app again (ADDED): a change
        // that landed between the list and the subscription is not lost (argocd-server does
        // not replay from a resourceVersion), and rows are keyed by name, so none duplicates.
        let Some(opened) = bounded(client.open_stream(None), &mut reporter, &cancel).await else {
            return;
        };
        let resp = match opened {
            Ok(r) => r,
            Err(e @ ArgoError::Unauthorized { .. }) => {
                if !reporter.fail(e.to_string()) || !pause(&cancel, backoff.take()).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                // The list works but the stream does not: poll instead, and say so on screen.
                tracing::debug!(cluster = index, error = %e, "argocd stream unavailable; polling");
                if mode != FollowMode::Polling {
                    mode = FollowMode::Polling;
                    if !reporter.publish(&apps, mode) {
                        return;
                    }
                }
                if !pause(&cancel, poll).await {
                    return;
                }
                continue;
            }
        };
        if mode != FollowMode::Stream {
            mode = FollowMode::Stream;
            if !reporter.publish(&apps, mode) {
                return;
            }
        }
        let opened_at = Instant::now();
        let probe = client.prober();
        match follow(resp, &mut apps, &mut reporter, &cancel, &probe).await {
            StreamEnd::Cancelled => return,
            StreamEnd::Closed => {
                if opened_at.elapsed() < STREAM_MIN_LIFE {
                    if !pause(&cancel, backoff.take()).await {
                        return;
                    }
                } else {
                    backoff.reset();
                }
            }
            StreamEnd::Failed(e) => {
                if !reporter.fail(e.to_string()) || !pause(&cancel, backoff.take()).await {
                    return;
                }
            }
        }
        // Re-list before following again: whatever changed while the stream was down is seen,
        // and the table is rebuilt by name, so rows never duplicate.
    }
}

/// The longest stream line (one application event) kept: an application with a few hundred
/// resources makes events well past the 64 KiB of step output, and dropping those would leave its
/// row stale; a peer sending more without a newline still costs no more than this.
pub const MAX_EVENT_LINE: usize = 4 * 1024 * 1024;

/// Reads the stream line by line, applying each change and publishing after every burst.
///
/// Liveness: after [`PROBE_AFTER`] without a byte, one probe is sent (a quiet ArgoCD sends
/// nothing while no app changes); an answer means all is well and the next probe comes after
/// another quiet spell, so an idle stream costs one small request per ~12 s. With no word at
/// all for [`STALE_AFTER`] the panel is marked stale and probed every [`PROBE_TIMEOUT`]; the
/// first word after that (a probe's answer or stream bytes) ends the stream, and the caller
/// lists afresh, which clears the mark.
async fn follow(
    resp: reqwest::Response,
    apps: &mut BTreeMap<String, AppSummary>,
    reporter: &mut Reporter,
    cancel: &CancellationToken,
    probe: &impl Fn() -> futures::future::BoxFuture<'static, bool>,
) -> StreamEnd {
    let url = reporter.endpoint.clone();
    let mut body = resp.bytes_stream();
    let mut lines = LineSplitter::new(MAX_EVENT_LINE);
    let mut last_heard = Instant::now();
    // A probe's answer says the server is there, not that this connection still is.
    let mut last_byte = last_heard;
    let mut next_probe = last_heard + PROBE_AFTER;
    let mut probing: Option<futures::future::BoxFuture<'static, bool>> = None;
    let mut stalled = false;
    loop {
        let probe_at = next_probe.max(last_heard + PROBE_AFTER);
        let chunk = tokio::select! {
            _ = cancel.cancelled() => return StreamEnd::Cancelled,
            c = body.next() => c,
            ok = async { probing.as_mut().expect("guarded").await }, if probing.is_some() => {
                probing = None;
                let now = Instant::now();
                if ok {
                    if stalled {
                        return StreamEnd::Closed;
                    }
                    last_heard = now;
                    next_probe = now + PROBE_AFTER;
                } else {
                    next_probe = now + PROBE_TIMEOUT;
                }
                continue;
            }
            _ = tokio::time::sleep_until(probe_at), if probing.is_none() => {
                probing = Some(probe());
                next_probe = Instant::now() + PROBE_TIMEOUT;
                continue;
            }
            _ = tokio::time::sleep_until(last_heard + STALE_AFTER), if !stalled => {
                stalled = true;
                if !reporter.fail(no_answer_reason()) {
                    return StreamEnd::Cancelled;
                }
                continue;
            }
            _ = tokio::time::sleep_until(last_byte + STREAM_IDLE) => return StreamEnd::Closed,
        };
        let chunk = match chunk {
            None => return StreamEnd::Closed,
            Some(Err(e)) => {
                // A cut connection mid-stream is routine (restarts, proxies): re-list.
                tracing::debug!(error = %e, "argocd stream ended");
                return StreamEnd::Closed;
            }
            Some(Ok(c)) => c,
        };
        last_heard = Instant::now();
        last_byte = last_heard;
        if stalled {
            // The server speaks again after a stall: list afresh rather than trust what the
            // held-back stream says.
            return StreamEnd::Closed;
        }
        let mut changed = match apply_stream_bytes(&mut lines, &chunk, apps, &url) {
            Ok(c) => c,
            Err(e) => return StreamEnd::Failed(e),
        };
        // Take whatever else already arrived, so a burst becomes one snapshot.
        while let Some(Some(Ok(more))) = body.next().now_or_never() {
            match apply_stream_bytes(&mut lines, &more, apps, &url) {
                Ok(c) => changed |= c,
                Err(e) => return StreamEnd::Failed(e),
            }
        }
        if (changed || reporter.failing.is_some()) && !reporter.publish(apps, FollowMode::Stream) {
            return StreamEnd::Cancelled;
        }
    }
}

/// Applies every line that `bytes` completes to `apps`; whether anything changed. A line over
/// [`MAX_EVENT_LINE`] is dropped with a warning and the stream goes on; the stream's own error
/// message ends it.
fn apply_stream_bytes(
    lines: &mut LineSplitter,
    mut bytes: &[u8],
    apps: &mut BTreeMap<String, AppSummary>,
    url: &str,
) -> Result<bool, ArgoError> {
    let mut changed = false;
    while !bytes.is_empty() {
        let (used, line) = lines.take(bytes);
        bytes = &bytes[used..];
        let Some(line) = line else { continue };
        if line.dropped > 0 {
            tracing::warn!(
                url,
                bytes = line.bytes.len() as u64 + line.dropped,
                limit = MAX_EVENT_LINE,
                "ArgoCD stream: an event longer than the limit was dropped"
            );
            continue;
        }
        match parse_stream_line(&line.bytes) {
            Ok(Some(AppChange::Upsert(a))) => {
                changed |= apps.get(&a.name) != Some(&*a);
                apps.insert(a.name.clone(), *a);
            }
            Ok(Some(AppChange::Delete(name))) => {
                changed |= apps.remove(&name).is_some();
            }
            Ok(None) => {}
            Err(e) => {
                let message = e.message.unwrap_or_else(|| "no message".into());
                return Err(if e.http_code == Some(401) || e.grpc_code == Some(16) {
                    ArgoError::Unauthorized {
                        url: url.to_string(),
                        message,
                        fix: "check the configured token".into(),
                    }
                } else {
                    ArgoError::Http {
                        url: url.to_string(),
                        status: e.http_code.unwrap_or(500) as u16,
                        what: "the application stream".into(),
                        message,
                    }
                });
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_over_long_stream_event_is_dropped_and_the_stream_goes_on() {
        let event = |name: &str| {
            format!(
                r#"{{"result":{{"type":"MODIFIED","application":{{"metadata":{{"name":"{name}"}},"spec":{{}},"status":{{}}}}}}}}"#
            )
        };
        let mut lines = LineSplitter::new(MAX_EVENT_LINE);
        let mut apps = BTreeMap::new();
        // A huge first event, arriving in pieces, then a normal one in the same burst.
        let huge = format!("{}{}\n", event("huge"), " ".repeat(MAX_EVENT_LINE));
        let bytes = format!("{huge}{}\n", event("small"));
        let mut changed = false;
        for piece in bytes.as_bytes().chunks(64 * 1024) {
            changed |= apply_stream_bytes(&mut lines, piece, &mut apps, "https://argocd").unwrap();
        }
        assert!(changed);
        assert_eq!(apps.keys().collect::<Vec<_>>(), ["small"]);
    }

    #[test]
    fn real_wire_json_is_accepted() {
        // Shapes from argocd-server (Go encoding/json): int64 as numbers, nulls, flattened refs.
        let line = br#"{"result":{"type":"MODIFIED","application":{"metadata":{"name":"a","resourceVersion":"12"},"spec":{"project":"default","source":{"repoURL":"https://git/x","path":"k8s","targetRevision":"main"},"syncPolicy":{"automated":{"prune":true,"selfHeal":true}}},"status":{"sync":{"status":"OutOfSync","revision":"4f2a9c1e0b7d3a5c6e8f9a0b1c2d3e4f5a6b7c8d"},"health":{"status":"Progressing"},"history":[{"id":7,"revision":"abc","deployedAt":"2026-11-25T01:00:00Z"},{"id":"8","revision":"def","deployedAt":"2026-11-25T02:00:00Z"}],"conditions":null,"resources":[{"kind":"Deployment","namespace":"ns","name":"a","status":"Synced"}],"summary":{"images":["x:1"]},"operationState":{"phase":"Running","message":"one or more tasks are running","startedAt":"2026-11-25T02:00:00Z","retryCount":1}}}}}
"#;
        let Ok(Some(AppChange::Upsert(a))) = parse_stream_line(line) else {
            panic!("not parsed");
        };
        assert_eq!(a.name, "a");
        assert!(a.auto_sync);
        assert_eq!(a.sync, SyncStatus::OutOfSync);
        assert_eq!(a.revision_short(), "4f2a9c1");
        assert_eq!(
            a.history.iter().map(|h| h.id).collect::<Vec<_>>(),
            vec![7, 8]
        );
        assert_eq!(
            a.last_synced_at,
            Some("2026-11-25T02:00:00Z".parse().unwrap())
        );
        assert_eq!(
            a.operation.as_ref().map(|o| o.phase),
            Some(OperationPhase::Running)
        );
        assert_eq!(a.resources[0].health, "");
    }

    #[test]
    fn stream_errors_and_keepalives() {
        let err = parse_stream_line(br#"{"error":{"grpc_code":16,"http_code":401,"message":"invalid session","http_status":"Unauthorized"}}"#)
            .expect_err("error line");
        assert_eq!(err.http_code, Some(401));
        assert!(matches!(parse_stream_line(b":\n"), Ok(None)));
        assert!(matches!(parse_stream_line(b"\n"), Ok(None)));
        let sse =
            br#"data: {"result":{"type":"DELETED","application":{"metadata":{"name":"gone"}}}}"#;
        assert!(matches!(parse_stream_line(sse), Ok(Some(AppChange::Delete(n))) if n == "gone"));
    }

    #[test]
    fn automated_block_switched_off_is_manual() {
        let a: wire::Application = serde_json::from_str(
            r#"{"metadata":{"name":"x"},"spec":{"syncPolicy":{"automated":{"enabled":false}}}}"#,
        )
        .unwrap();
        let s = summarize(&a).unwrap();
        assert!(!s.auto_sync);
        assert_eq!(s.target_revision, "HEAD");
        assert_eq!(s.sync, SyncStatus::Unknown);
    }

    #[test]
    fn port_80_is_plain_http_unless_tls_says_otherwise() {
        use crate::config::PortRef;
        let svc = |port| Endpoint::Service {
            namespace: "argocd".into(),
            name: "argocd-server".into(),
            port,
        };
        assert!(!endpoint_tls(&svc(PortRef::Number(80)), None));
        assert!(!endpoint_tls(&svc(PortRef::Name("http".into())), None));
        assert!(endpoint_tls(&svc(PortRef::Number(443)), None));
        assert!(endpoint_tls(&svc(PortRef::Number(80)), Some(true)));
        assert!(!endpoint_tls(&svc(PortRef::Number(443)), Some(false)));
        assert!(!endpoint_tls(&Endpoint::Url("http://x".into()), None));
        assert_eq!(normalize_base_path("argocd/"), "/argocd");
        assert_eq!(normalize_base_path("/"), "");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(
            path_segment("iam-service-production"),
            "iam-service-production"
        );
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
