//! Everything that can stop a port-forward from opening or staying up, each said so the
//! engineer knows what to do next.

use std::net::SocketAddr;

/// Why a forward could not be opened (or, later, reached its pod).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("no forward named {id:?}; configured: {known}")]
    Unknown { id: String, known: String },

    #[error("{}", local_port_in_use(*addr, *free, id))]
    LocalPortInUse {
        id: String,
        addr: SocketAddr,
        /// The next port on the same address that was free when we looked.
        free: Option<u16>,
    },

    #[error("cannot listen on {addr}: {detail}")]
    Listen { addr: SocketAddr, detail: String },

    #[error(
        "cluster {cluster} refused the port-forward to {target} (403 Forbidden: {message}); the Kubernetes user needs `create` on pods/portforward and `get`/`list` on pods and services in namespace {namespace}"
    )]
    Forbidden {
        cluster: String,
        target: String,
        namespace: String,
        message: String,
    },

    #[error("no Running and Ready pod behind {target} in cluster {cluster}: {detail}")]
    NoReadyPod {
        cluster: String,
        target: String,
        detail: String,
    },

    #[error("{what} not found in cluster {cluster}; check the name with kubectl get")]
    NotFound { cluster: String, what: String },

    #[error("{target} in cluster {cluster}: {detail}")]
    Port {
        cluster: String,
        target: String,
        detail: String,
    },

    #[error(
        "cluster {cluster} is unreachable: {detail}; check that its API server is up and that the kubeconfig points at it"
    )]
    Unreachable { cluster: String, detail: String },

    #[error("cluster {cluster} answered {code}: {message}")]
    Api {
        cluster: String,
        code: u16,
        message: String,
    },

    #[error("cluster {cluster}: {detail}")]
    Kubeconfig { cluster: String, detail: String },

    /// The start record could not be written, so the forward was not started (or stopped).
    #[error(
        "{id}: refused, nothing was done: {detail} (free the disk or fix `audit_log` in the config)"
    )]
    Unrecorded { id: String, detail: String },
}

fn local_port_in_use(addr: SocketAddr, free: Option<u16>, id: &str) -> String {
    match free {
        Some(p) => format!(
            "local address {addr} is already in use; port {p} is free: set local_port = {p} for {id} (or 0 for any free port)"
        ),
        None => format!(
            "local address {addr} is already in use; set local_port = 0 for {id} to take any free port"
        ),
    }
}

impl ForwardError {
    /// Sorts a kube-rs error from a request about `target` into what the engineer can act on.
    pub(crate) fn from_kube(cluster: &str, target: &str, namespace: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 403 => ForwardError::Forbidden {
                cluster: cluster.to_string(),
                target: target.to_string(),
                namespace: namespace.to_string(),
                message: s.message.clone(),
            },
            kube::Error::Api(s) if s.code == 404 => ForwardError::NotFound {
                cluster: cluster.to_string(),
                what: if s.message.is_empty() {
                    target.to_string()
                } else {
                    s.message.clone()
                },
            },
            kube::Error::Api(s) => ForwardError::Api {
                cluster: cluster.to_string(),
                code: s.code,
                message: s.message.clone(),
            },
            other => ForwardError::Unreachable {
                cluster: cluster.to_string(),
                detail: other.to_string(),
            },
        }
    }
}
