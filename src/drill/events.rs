//! Events: those about one pod (newest first), and the cluster's Warning events
//! deduplicated by (reason, object) with their counts summed, newest first.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;

use super::DrillError;

/// One event line (or several merged ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub namespace: String,
    /// `Pod/iam-7d9f-x2`.
    pub object: String,
    pub message: String,
    pub count: u32,
    pub last_seen: Option<Timestamp>,
}

impl EventRow {
    pub fn from_event(e: &Event) -> EventRow {
        let last_seen = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let o = &e.involved_object;
        EventRow {
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            namespace: o
                .namespace
                .clone()
                .or_else(|| e.metadata.namespace.clone())
                .unwrap_or_default(),
            object: format!(
                "{}/{}",
                o.kind.as_deref().unwrap_or("?"),
                o.name.as_deref().unwrap_or("?")
            ),
            message: e.message.clone().unwrap_or_default(),
            count: e.count.unwrap_or(1).max(1) as u32,
            last_seen,
        }
    }

    pub fn is_warning(&self) -> bool {
        self.type_ == "Warning"
    }
}

fn newest_first(rows: &mut [EventRow]) {
    rows.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then_with(|| a.object.cmp(&b.object))
    });
}

/// Events as rows, newest first.
pub fn rows(events: &[Event]) -> Vec<EventRow> {
    let mut out: Vec<EventRow> = events.iter().map(EventRow::from_event).collect();
    newest_first(&mut out);
    out
}

/// Warning events merged by (namespace, reason, object): counts summed, newest time and
/// message kept; newest first.
pub fn dedup_warnings(events: &[Event]) -> Vec<EventRow> {
    let mut merged: HashMap<(String, String, String), EventRow> = HashMap::new();
    for row in events
        .iter()
        .map(EventRow::from_event)
        .filter(EventRow::is_warning)
    {
        let key = (
            row.namespace.clone(),
            row.reason.clone(),
            row.object.clone(),
        );
        match merged.get_mut(&key) {
            Some(m) => {
                m.count += row.count;
                if row.last_seen > m.last_seen {
                    m.last_seen = row.last_seen;
                    m.message = row.message;
                }
            }
            None => {
                merged.insert(key, row);
            }
        }
    }
    let mut out: Vec<EventRow> = merged.into_values().collect();
    newest_first(&mut out);
    out
}

/// Events about one pod, newest first.
pub async fn for_pod(
    client: kube::Client,
    ns: &str,
    pod: &str,
) -> Result<Vec<EventRow>, DrillError> {
    let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
    let list = Api::<Event>::namespaced(client, ns)
        .list(&lp)
        .await
        .map_err(DrillError::new(format!("listing events of pod {ns}/{pod}")))?;
    Ok(rows(&list.items))
}

/// The cluster's Warning events, deduplicated, newest first.
pub async fn warnings(client: kube::Client) -> Result<Vec<EventRow>, DrillError> {
    let lp = ListParams::default().fields("type=Warning");
    let list = Api::<Event>::all(client)
        .list(&lp)
        .await
        .map_err(DrillError::new("listing Warning events"))?;
    Ok(dedup_warnings(&list.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, ty: &str, reason: &str, obj: &str, count: i32, last: &str) -> Event {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "ns"}, "type": ty, "reason": reason,
            "involvedObject": {"kind": "Pod", "name": obj, "namespace": "ns"}, "message": format!("{reason} {last}"),
            "count": count, "lastTimestamp": last}))
        .unwrap()
    }

    #[test]
    fn warnings_merge_by_reason_and_object_newest_first() {
        let evs = vec![
            ev(
                "a",
                "Warning",
                "BackOff",
                "iam-1",
                5,
                "2026-11-25T10:00:00Z",
            ),
            ev(
                "b",
                "Warning",
                "BackOff",
                "iam-1",
                2,
                "2026-11-25T10:05:00Z",
            ),
            ev("c", "Normal", "Pulled", "iam-1", 1, "2026-11-25T10:06:00Z"),
            ev(
                "d",
                "Warning",
                "FailedScheduling",
                "job-1",
                1,
                "2026-11-25T09:00:00Z",
            ),
        ];
        let rows = dedup_warnings(&evs);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].reason, "BackOff");
        assert_eq!(rows[0].count, 7);
        assert_eq!(rows[0].message, "BackOff 2026-11-25T10:05:00Z");
        assert_eq!(rows[1].object, "Pod/job-1");
    }
}
