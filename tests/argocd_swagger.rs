//! The simulated ArgoCD's JSON checked against the swagger (`shared/reference/argocd-swagger.json`)
//! for every object opsdeck reads: each key must be a property of its definition with the
//! right type, allowing only the documented wire differences (int64 as numbers, RFC 3339
//! times, ResourceRef fields flattened into ResourceNode). Then the paths protocols.md names
//! are checked present, and the wire JSON is read by the client's own types.

use std::path::PathBuf;

use opsdeck::sim::argocd::ArgoSim;
use opsdeck::sim::seed::Env;
use opsdeck::sources::argocd::{parse_stream_line, summarize, wire};
use serde_json::Value;

fn swagger() -> Value {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/argocd-swagger.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the ArgoCD swagger is expected in shared/reference beside the repository",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("swagger is JSON")
}

/// Checks `v` against the schema `s`; appends "path: problem" for each mismatch.
fn check(defs: &Value, s: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        let def = &defs[name];
        let mut merged = def.clone();
        // Embedded structs are flattened on the wire (protocols.md §3).
        if name == "v1alpha1ResourceNode"
            && let (Some(props), Some(extra)) = (
                merged["properties"].as_object_mut(),
                defs["v1alpha1ResourceRef"]["properties"].as_object(),
            )
        {
            for (k, p) in extra {
                props.insert(k.clone(), p.clone());
            }
        }
        return check(defs, &merged, v, &format!("{path}<{name}>"), errors);
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("object");
    match ty {
        "string" => {
            if !v.is_string() {
                errors.push(format!("{path}: expected a string, got {v}"));
            } else if s.get("format").and_then(Value::as_str) == Some("date-time")
                && v.as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .is_none()
            {
                errors.push(format!("{path}: not an RFC 3339 time: {v}"));
            }
        }
        "integer" => {
            // Go encoding/json writes int64 as a number (the wire differs from proto3 JSON).
            if !v.is_i64() {
                errors.push(format!("{path}: expected an integer number, got {v}"));
            }
        }
        "boolean" => {
            if !v.is_boolean() {
                errors.push(format!("{path}: expected a boolean, got {v}"));
            }
        }
        "array" => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(defs, &s["items"], item, &format!("{path}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{path}: expected an array, got {v}")),
        },
        _ => {
            let Some(obj) = v.as_object() else {
                errors.push(format!("{path}: expected an object, got {v}"));
                return;
            };
            if let Some(extra) = s.get("additionalProperties") {
                for (k, item) in obj {
                    check(defs, extra, item, &format!("{path}.{k}"), errors);
                }
                return;
            }
            let Some(props) = s.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (k, item) in obj {
                match props.get(k) {
                    Some(p) => check(defs, p, item, &format!("{path}.{k}"), errors),
                    None => errors.push(format!("{path}: {k} is not in the swagger")),
                }
            }
        }
    }
}

fn validate(defs: &Value, definition: &str, v: &Value) {
    let mut errors = Vec::new();
    let schema = serde_json::json!({"$ref": format!("#/definitions/{definition}")});
    check(defs, &schema, v, "", &mut errors);
    assert!(errors.is_empty(), "{definition}:\n{}", errors.join("\n"));
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

async fn get(sim: &ArgoSim, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", sim.api_url()))
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn simulated_responses_match_the_swagger_definitions() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec = swagger();
    let defs = &spec["definitions"];
    let sim = ArgoSim::start(Env::Production, false).await.expect("sim");

    let list = get(&sim, "/api/v1/applications").await;
    validate(defs, "v1alpha1ApplicationList", &list);
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 6);
    // Every path the console reads (protocols.md §3), present in the sim's objects.
    for app in items {
        for p in [
            "metadata.name",
            "spec.project",
            "spec.source.targetRevision",
            "status.sync.status",
            "status.sync.revision",
            "status.health.status",
            "status.operationState.phase",
            "status.operationState.message",
            "status.operationState.startedAt",
            "status.operationState.finishedAt",
            "status.summary.images",
            "status.reconciledAt",
        ] {
            assert!(
                !at(app, p).is_null(),
                "{} lacks {p}",
                app["metadata"]["name"]
            );
        }
        let h = &app["status"]["history"][0];
        assert!(h["id"].is_i64() && h["revision"].is_string() && h["deployedAt"].is_string());
        let r = &app["status"]["resources"][0];
        assert!(r["kind"].is_string() && r["name"].is_string() && r["status"].is_string());
    }

    let one = get(&sim, "/api/v1/applications/iam-service-production").await;
    validate(defs, "v1alpha1Application", &one);
    let tree = get(
        &sim,
        "/api/v1/applications/iam-service-production/resource-tree",
    )
    .await;
    validate(defs, "v1alpha1ApplicationTree", &tree);
    let tree: wire::ApplicationTree = serde_json::from_value(tree).expect("tree reads");
    assert!(tree.nodes.iter().any(|n| n.kind.as_deref() == Some("Pod")
        && n.parent_refs.first().and_then(|p| p.kind.as_deref()) == Some("ReplicaSet")));

    // An error body is a runtimeError.
    let missing = get(&sim, "/api/v1/applications/nope").await;
    validate(defs, "runtimeError", &missing);
    assert_eq!(missing["code"], 7);

    // The stream: one `{"result": ApplicationWatchEvent}` per line.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/stream/applications", sim.api_url()))
        .bearer_auth(sim.token())
        .send()
        .await
        .expect("stream");
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    use futures::StreamExt as _;
    while buf.iter().filter(|b| **b == b'\n').count() < 6 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.next())
            .await
            .expect("initial events")
            .expect("open")
            .expect("bytes");
        buf.extend_from_slice(&chunk);
    }
    for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).expect("line is JSON");
        validate(defs, "v1alpha1ApplicationWatchEvent", &v["result"]);
        assert_eq!(v["result"]["type"], "ADDED");
        assert!(matches!(parse_stream_line(line), Ok(Some(_))));
    }

    // And the client reads what it validated.
    let list: wire::ApplicationList = serde_json::from_value(list).expect("list reads");
    let apps: Vec<_> = list.items.iter().filter_map(summarize).collect();
    assert_eq!(apps.len(), 6);
    sim.shutdown().await;
}

#[test]
fn real_shaped_wire_json_is_accepted_where_it_differs_from_the_swagger() {
    // As argocd-server writes it: int64 as numbers (and as strings from proto3 JSON
    // clients), nulls for nil slices, fields left out, ResourceRef flattened into a node.
    let app: wire::Application = serde_json::from_str(
        r#"{"metadata":{"name":"frontend-production"},
            "spec":{"source":{"repoURL":"https://git/x","targetRevision":"main"},"syncPolicy":null},
            "status":{"sync":{"status":"Synced","revision":"0123456789abcdef0123456789abcdef01234567"},
                      "health":{"status":"Healthy"},
                      "history":[{"id":1,"revision":"a"},{"id":"2","revision":"b","deployedAt":"2026-11-25T03:00:00Z"}],
                      "resources":null,"conditions":[{"type":"SyncError","message":"boom"}],
                      "summary":{}}}"#,
    )
    .expect("wire JSON reads");
    let s = summarize(&app).expect("summary");
    assert_eq!(
        s.history.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(!s.auto_sync);
    assert_eq!(s.conditions[0].kind, "SyncError");
    assert!(s.resources.is_empty() && s.images.is_empty());
    let node: wire::ResourceNode = serde_json::from_str(
        r#"{"group":"apps","version":"v1","kind":"Deployment","namespace":"ns","name":"web","uid":"u","health":{"status":"Healthy"},"parentRefs":null}"#,
    )
    .expect("node reads");
    assert_eq!(node.kind.as_deref(), Some("Deployment"));
    assert_eq!(node.name.as_deref(), Some("web"));
}

#[test]
fn the_checker_itself_catches_unknown_keys_and_wrong_types() {
    let spec = swagger();
    let defs = &spec["definitions"];
    let bad = serde_json::json!({"metadata": {"name": 3}, "status": {"sync": {"stauts": "Synced"}, "history": [{"id": "7"}]}});
    let mut errors = Vec::new();
    let schema = serde_json::json!({"$ref": "#/definitions/v1alpha1Application"});
    check(defs, &schema, &bad, "", &mut errors);
    assert_eq!(errors.len(), 3, "{errors:?}");
}
