//! `networking.k8s.io/v1` Ingresses of the simulated fleet, as goapps-infra defines them
//! (services/*/base/ingress.yaml with overlays/*/patches/ingress-host.yaml): class `nginx`,
//! TLS secret `goapps-tls`, host = the environment's domain; frontend `/` -> 80,
//! finance-service `/api/v1/finance` and `/swagger` -> 8080, iam-service `/api/v1/iam` -> 8081.
//! Also the ArgoCD ingress (`/argocd` -> argocd-server:80) from overlays/*/ingress.yaml.

use serde_json::{Value, json};

use super::seed::Env;
use super::store::{ResourceKind, Store};

/// Ingresses (`kubectl get ingress`, `ing`).
pub static INGRESSES: ResourceKind = ResourceKind {
    group: "networking.k8s.io",
    version: "v1",
    plural: "ingresses",
    singular: "ingress",
    kind: "Ingress",
    namespaced: true,
    short_names: &["ing"],
};

/// The public domain of an environment.
pub fn domain(env: Env) -> &'static str {
    match env {
        Env::Staging => "staging-goapps.mutugading.com",
        Env::Production => "goapps.mutugading.com",
    }
}

fn ingress(env: Env, ns: &str, name: &str, paths: &[(&str, &str, i64)]) -> Value {
    let host = domain(env);
    let paths: Vec<Value> = paths
        .iter()
        .map(|(path, svc, port)| {
            json!({"path": path, "pathType": "Prefix",
                "backend": {"service": {"name": svc, "port": {"number": port}}}})
        })
        .collect();
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("ing-{}-{ns}-{name}", env.name()),
            "creationTimestamp": "2026-01-10T08:00:00Z",
            "labels": {"app": name.trim_end_matches("-ingress")},
            "annotations": {"nginx.ingress.kubernetes.io/ssl-redirect": "true"}
        },
        "spec": {
            "ingressClassName": "nginx",
            "tls": [{"hosts": [host], "secretName": "goapps-tls"}],
            "rules": [{"host": host, "http": {"paths": paths}}]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": match env {
            Env::Staging => "10.10.0.11",
            Env::Production => "10.10.0.21",
        }}]}}
    })
}

/// The Ingress objects of `env`.
pub fn ingresses(env: Env) -> Vec<Value> {
    let app = env.app_namespace();
    vec![
        ingress(env, app, "frontend-ingress", &[("/", "frontend", 80)]),
        ingress(
            env,
            app,
            "finance-service-ingress",
            &[
                ("/api/v1/finance", "finance-service", 8080),
                ("/swagger", "finance-service", 8080),
            ],
        ),
        ingress(
            env,
            app,
            "iam-service-ingress",
            &[("/api/v1/iam", "iam-service", 8081)],
        ),
        ingress(
            env,
            "argocd",
            "argocd-server-ingress",
            &[("/argocd", "argocd-server", 80)],
        ),
    ]
}

/// Seeds the Ingresses of `env` into `store`.
pub fn seed(env: Env, store: &Store) {
    store.seed(&INGRESSES, ingresses(env));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ingress_uses_class_nginx_and_goapps_tls_on_the_domain() {
        for env in [Env::Staging, Env::Production] {
            let all = ingresses(env);
            assert_eq!(all.len(), 4);
            for i in &all {
                assert_eq!(i["spec"]["ingressClassName"], "nginx");
                assert_eq!(i["spec"]["tls"][0]["secretName"], "goapps-tls");
                assert_eq!(i["spec"]["rules"][0]["host"], domain(env));
            }
        }
    }
}
