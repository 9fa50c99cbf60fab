//! Port-forwards on kube-rs (issue 3): the `[[forward]]` shortcuts an engineer starts and
//! stops by `CLUSTER/NAME`, and the internal forwards behind `service = "ns/name:port"`
//! endpoints. No UI here: state goes out as whole snapshots.
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | the snapshot types ([`ForwardSnapshot`], [`ForwardStatus`], [`ForwardState`]) |
//! | `set.rs` | [`Forwards`]: start/stop/toggle by `CLUSTER/NAME`, audit records, snapshot publishing, shutdown |
//! | `tunnel.rs` | one open forward: local listener, one upstream stream per connection, supervisor, byte counters |
//! | `resolve.rs` | Service/Deployment/Pod target -> Running+Ready pod and container port, as kubectl does |
//! | `internal.rs` | [`local_addr_for_service`]: shared forwards for `service` endpoints |
//! | `error.rs` | [`ForwardError`] |
//!
//! **Publishing.** [`Forwards::subscribe`] hands out a `tokio::sync::watch` receiver of
//! `Arc<ForwardSnapshot>`: the whole state of every configured shortcut plus the internal
//! forwards, replaced (never patched) whenever something changed — a state change at once,
//! byte counters at most once a second, nothing at all while idle. A consumer keeps only the
//! latest value, like every other source.

mod error;
pub mod internal;
pub mod resolve;
mod set;
mod tunnel;

use std::fmt;
use std::net::SocketAddr;

pub use error::ForwardError;
pub use internal::{connect_service, local_addr_for_service, stop_internal, stop_internal_for};
pub use set::Forwards;

use crate::config::ForwardScheme;

/// What a forward is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardState {
    /// Configured, not started.
    Stopped,
    /// Listening locally; its pod was usable when last checked; no connection open.
    Listening,
    /// At least one connection is open through it.
    Connected,
    /// The pod went away or a stream broke: re-resolving the target; the reason says why.
    /// The local listener stays up and new connections wait for a pod.
    Reconnecting(String),
    /// Could not be opened; the reason says what to do.
    Failed(String),
}

impl ForwardState {
    /// One word for lists: `stopped`, `listening`, `connected`, `reconnecting`, `failed`.
    pub fn label(&self) -> &'static str {
        match self {
            ForwardState::Stopped => "stopped",
            ForwardState::Listening => "listening",
            ForwardState::Connected => "connected",
            ForwardState::Reconnecting(_) => "reconnecting",
            ForwardState::Failed(_) => "failed",
        }
    }

    /// Listening or connected: the forward works right now.
    pub fn is_up(&self) -> bool {
        matches!(self, ForwardState::Listening | ForwardState::Connected)
    }

    /// Started and not given up (listening, connected or reconnecting).
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            ForwardState::Listening | ForwardState::Connected | ForwardState::Reconnecting(_)
        )
    }
}

impl fmt::Display for ForwardState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardState::Reconnecting(why) => write!(f, "reconnecting: {why}"),
            ForwardState::Failed(why) => write!(f, "failed: {why}"),
            other => f.write_str(other.label()),
        }
    }
}

/// One forward, shortcut or internal, as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStatus {
    pub cluster: String,
    /// The shortcut's name; for an internal forward the endpoint (`ns/name:port`).
    pub name: String,
    /// `namespace/kind/name:port`, as configured.
    pub target: String,
    pub scheme: Option<ForwardScheme>,
    /// The keymap binding that toggles it, if configured.
    pub key: Option<String>,
    /// The local address while it runs.
    pub local: Option<SocketAddr>,
    pub state: ForwardState,
    /// The pod and container port connections go to now.
    pub pod: Option<String>,
    pub pod_port: Option<u16>,
    pub open_connections: usize,
    /// Connections served since it started.
    pub connections_total: u64,
    /// Bytes received from the pod.
    pub bytes_in: u64,
    /// Bytes sent to the pod.
    pub bytes_out: u64,
    pub started_at: Option<jiff::Timestamp>,
    /// The last error the pod side reported on a connection (e.g. connection refused).
    pub last_error: Option<String>,
}

impl ForwardStatus {
    /// `CLUSTER/NAME`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.cluster, self.name)
    }

    /// `http://127.0.0.1:PORT` with a scheme, else `127.0.0.1:PORT`; None when not listening.
    pub fn local_display(&self) -> Option<String> {
        self.local.map(|a| local_display(a, self.scheme))
    }
}

/// How a local address is shown and copied: a URL for web UIs, `host:port` for raw TCP.
pub fn local_display(addr: SocketAddr, scheme: Option<ForwardScheme>) -> String {
    match scheme {
        Some(s) => format!("{s}://{addr}"),
        None => addr.to_string(),
    }
}

/// Every forward: configured shortcuts (in config order, stopped ones included) and the
/// internal forwards opened for `service` endpoints, listed separately.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardSnapshot {
    pub shortcuts: Vec<ForwardStatus>,
    pub internal: Vec<ForwardStatus>,
}

impl ForwardSnapshot {
    pub fn get(&self, id: &str) -> Option<&ForwardStatus> {
        self.shortcuts.iter().find(|f| f.id() == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_addresses_show_as_urls_only_with_a_scheme() {
        let a: SocketAddr = "127.0.0.1:3000".parse().expect("addr");
        assert_eq!(
            local_display(a, Some(ForwardScheme::Http)),
            "http://127.0.0.1:3000"
        );
        assert_eq!(local_display(a, None), "127.0.0.1:3000");
    }

    #[test]
    fn only_listening_and_connected_count_as_up() {
        assert!(ForwardState::Connected.is_up());
        assert!(!ForwardState::Reconnecting("pod gone".into()).is_up());
        assert!(ForwardState::Reconnecting("pod gone".into()).is_running());
        assert_eq!(ForwardState::Failed("x".into()).to_string(), "failed: x");
    }
}
