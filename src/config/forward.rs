//! `[[forward]]` shortcuts as configured (issue 3): who they are and where they point. Opening
//! them is the port-forward module's job.

use std::fmt;
use std::net::IpAddr;

use super::endpoint::{PortRef, check_namespace, check_object_name, parse_port_ref};

/// One `[[forward]]` shortcut; referred to as `CLUSTER/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    pub name: String,
    /// Names a configured `[[cluster]]`.
    pub cluster: String,
    pub target: ForwardTarget,
    /// 0 picks a free port.
    pub local_port: u16,
    /// Default 127.0.0.1.
    pub bind: IpAddr,
    /// Set for web UIs, so the forward can be shown (and copied) as a URL.
    pub scheme: Option<ForwardScheme>,
    /// A keymap binding that toggles it.
    pub key: Option<String>,
    pub autostart: bool,
}

/// `namespace/service|pod|deployment/name:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardTarget {
    pub namespace: String,
    pub kind: TargetKind,
    pub name: String,
    pub port: PortRef,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Service,
    Pod,
    Deployment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardScheme {
    Http,
    Https,
}

impl ForwardTarget {
    pub fn parse(s: &str) -> Result<ForwardTarget, String> {
        let hint = "expected namespace/service/name:port, namespace/pod/name:port or namespace/deployment/name:port (port by number or name), e.g. \"monitoring/service/grafana:3000\"";
        let mut parts = s.splitn(3, '/');
        let (Some(namespace), Some(kind), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{hint}; found {s:?}"));
        };
        let kind = match kind {
            "service" => TargetKind::Service,
            "pod" => TargetKind::Pod,
            "deployment" => TargetKind::Deployment,
            other => {
                return Err(format!(
                    "{hint}; {other:?} is not one of service, pod or deployment"
                ));
            }
        };
        let (name, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{hint}; {s:?} has no port"))?;
        check_namespace(namespace).map_err(|m| format!("{hint}; {m}"))?;
        check_object_name(name).map_err(|m| format!("{hint}; {m}"))?;
        let port = parse_port_ref(port).map_err(|m| format!("{hint}; {m}"))?;
        Ok(ForwardTarget {
            namespace: namespace.to_string(),
            kind,
            name: name.to_string(),
            port,
        })
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetKind::Service => "service",
            TargetKind::Pod => "pod",
            TargetKind::Deployment => "deployment",
        })
    }
}

impl fmt::Display for ForwardTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.namespace, self.kind, self.name, self.port
        )
    }
}

impl fmt::Display for ForwardScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardScheme::Http => "http",
            ForwardScheme::Https => "https",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for s in [
            "monitoring/service/grafana:3000",
            "database/pod/postgres-0:5432",
            "minio/deployment/minio:console",
        ] {
            let t = ForwardTarget::parse(s).expect(s);
            assert_eq!(t.to_string(), s);
        }
        let t = ForwardTarget::parse("argocd/service/argocd-server:443").expect("valid");
        assert_eq!(t.kind, TargetKind::Service);
        assert_eq!(t.port, PortRef::Number(443));
    }

    #[test]
    fn bad_targets_say_what_is_valid() {
        for (s, needle) in [
            ("grafana:3000", "found \"grafana:3000\""),
            (
                "monitoring/svc/grafana:3000",
                "not one of service, pod or deployment",
            ),
            ("monitoring/service/grafana", "has no port"),
            (
                "monitoring/service/Grafana:3000",
                "not a Kubernetes object name",
            ),
            ("monitoring/service/grafana:0", "port 0"),
        ] {
            let err = ForwardTarget::parse(s).expect_err(s);
            assert!(err.contains(needle), "{s}: {err}");
        }
    }
}
