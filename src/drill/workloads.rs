//! The workloads view's rows: Deployments, StatefulSets, DaemonSets and CronJobs with
//! desired/available, the last rollout (or schedule) time and their images.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Api;
use kube::api::ListParams;

use super::DrillError;
use super::actions::WorkloadKind;

const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// One workload row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRow {
    /// `Deployment`, `StatefulSet`, `DaemonSet` or `CronJob`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// Replicas wanted; for a CronJob, 1 unless suspended.
    pub desired: i32,
    /// Replicas available; for a CronJob, its active Jobs.
    pub available: i32,
    /// The last rollout (restart stamp or progress update); for a CronJob its last schedule.
    pub last_rollout: Option<Timestamp>,
    pub images: Vec<String>,
    /// The CronJob's schedule; empty for the others.
    pub schedule: String,
}

impl WorkloadRow {
    pub fn degraded(&self) -> bool {
        self.kind != "CronJob" && self.available < self.desired
    }

    /// The kind quick actions address, if any (CronJobs are triggered, not restarted).
    pub fn workload_kind(&self) -> Option<WorkloadKind> {
        match self.kind {
            "Deployment" => Some(WorkloadKind::Deployment),
            "StatefulSet" => Some(WorkloadKind::StatefulSet),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }

    pub fn from_deployment(d: &Deployment) -> WorkloadRow {
        let spec = Some(&d.spec);
        let st = d.status.as_ref();
        let progressed = st
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_.as_deref() == Some("Progressing"))
            })
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0);
        let restarted = spec.and_then(|s| restarted_at(&s.template));
        row(
            "Deployment",
            &d.metadata,
            spec.and_then(|s| s.replicas).unwrap_or(1),
            st.and_then(|s| s.available_replicas).unwrap_or(0),
            progressed.max(restarted),
            spec.map(|s| &s.template),
        )
    }

    pub fn from_statefulset(s: &StatefulSet) -> WorkloadRow {
        let spec = Some(&s.spec);
        let st = s.status.as_ref();
        row(
            "StatefulSet",
            &s.metadata,
            spec.and_then(|s| s.replicas).unwrap_or(1),
            st.and_then(|s| s.available_replicas.or(s.ready_replicas))
                .unwrap_or(0),
            spec.and_then(|s| restarted_at(&s.template)),
            spec.map(|s| &s.template),
        )
    }

    pub fn from_daemonset(d: &DaemonSet) -> WorkloadRow {
        let spec = Some(&d.spec);
        let st = d.status.as_ref();
        row(
            "DaemonSet",
            &d.metadata,
            st.map_or(0, |s| s.desired_number_scheduled),
            st.and_then(|s| s.number_available).unwrap_or(0),
            spec.and_then(|s| restarted_at(&s.template)),
            spec.map(|s| &s.template),
        )
    }

    pub fn from_cronjob(c: &CronJob) -> WorkloadRow {
        let spec = Some(&c.spec);
        let st = c.status.as_ref();
        let template = spec
            .and_then(|s| s.job_template.spec.as_ref())
            .map(|j| &j.template);
        let mut r = row(
            "CronJob",
            &c.metadata,
            i32::from(!spec.and_then(|s| s.suspend).unwrap_or(false)),
            st.and_then(|s| s.active.as_ref())
                .map_or(0, |a| a.len() as i32),
            st.and_then(|s| s.last_schedule_time.as_ref()).map(|t| t.0),
            template,
        );
        r.schedule = spec.map(|s| s.schedule.clone()).unwrap_or_default();
        r
    }
}

fn restarted_at(t: &PodTemplateSpec) -> Option<Timestamp> {
    t.metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(RESTARTED_AT)?
        .parse()
        .ok()
}

fn row(
    kind: &'static str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    desired: i32,
    available: i32,
    last_rollout: Option<Timestamp>,
    template: Option<&PodTemplateSpec>,
) -> WorkloadRow {
    let images = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    WorkloadRow {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        desired,
        available,
        last_rollout: last_rollout.or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0)),
        images,
        schedule: String::new(),
    }
}

/// Every workload of the four kinds, in `ns` or the whole cluster, degraded first then by
/// (namespace, kind, name).
pub async fn list(client: kube::Client, ns: Option<&str>) -> Result<Vec<WorkloadRow>, DrillError> {
    fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(n) => Api::namespaced(client.clone(), n),
            None => Api::all(client.clone()),
        }
    }
    let lp = ListParams::default();
    let (da, sa, dsa, cja) = (
        api::<Deployment>(&client, ns),
        api::<StatefulSet>(&client, ns),
        api::<DaemonSet>(&client, ns),
        api::<CronJob>(&client, ns),
    );
    let (d, s, ds, cj) = tokio::join!(da.list(&lp), sa.list(&lp), dsa.list(&lp), cja.list(&lp));
    let mut rows: Vec<WorkloadRow> = Vec::new();
    rows.extend(
        d.map_err(DrillError::new("listing Deployments"))?
            .items
            .iter()
            .map(WorkloadRow::from_deployment),
    );
    rows.extend(
        s.map_err(DrillError::new("listing StatefulSets"))?
            .items
            .iter()
            .map(WorkloadRow::from_statefulset),
    );
    rows.extend(
        ds.map_err(DrillError::new("listing DaemonSets"))?
            .items
            .iter()
            .map(WorkloadRow::from_daemonset),
    );
    rows.extend(
        cj.map_err(DrillError::new("listing CronJobs"))?
            .items
            .iter()
            .map(WorkloadRow::from_cronjob),
    );
    sort(&mut rows);
    Ok(rows)
}

/// Degraded first, then (namespace, kind, name).
pub fn sort(rows: &mut [WorkloadRow]) {
    rows.sort_by(|a, b| {
        b.degraded()
            .cmp(&a.degraded())
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.kind.cmp(b.kind))
            .then_with(|| a.name.cmp(&b.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_row_takes_the_newest_of_restart_and_progress() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "iam", "namespace": "ns"},
            "spec": {"replicas": 2, "selector": {}, "template": {"metadata": {"annotations": {RESTARTED_AT: "2026-11-25T10:00:00Z"}},
                "spec": {"containers": [{"name": "iam", "image": "iam:1"}]}}},
            "status": {"availableReplicas": 1, "conditions": [{"type": "Progressing", "status": "True", "lastUpdateTime": "2026-11-20T00:00:00Z"}]}
        }))
        .unwrap();
        let r = WorkloadRow::from_deployment(&d);
        assert_eq!((r.desired, r.available), (2, 1));
        assert!(r.degraded());
        assert_eq!(r.images, ["iam:1"]);
        assert_eq!(
            r.last_rollout,
            Some("2026-11-25T10:00:00Z".parse().unwrap())
        );
    }
}
