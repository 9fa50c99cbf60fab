//! The effect runner's I/O for the drill-down: each effect becomes a task whose result comes
//! back to the console as an event. Nothing here draws.

use std::collections::HashMap;

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::app::update::LoadedPod;
use crate::app::{Effect, Event};
use crate::config::{ClusterConfig, Config};
use crate::drill;

fn cluster(config: &Config, index: usize) -> Option<ClusterConfig> {
    config.clusters.get(index).cloned()
}

async fn client(c: &ClusterConfig) -> Result<kube::Client, String> {
    crate::sources::kube::client_for(c).await
}

/// Starts the task for `effect`; `logs` keeps the cancel token of each running log stream.
pub fn spawn(
    effect: Effect,
    config: &Config,
    tx: &UnboundedSender<Event>,
    logs: &mut HashMap<u64, CancellationToken>,
) {
    let tx = tx.clone();
    match effect {
        Effect::FetchPod {
            cluster: i,
            namespace,
            name,
        } => {
            let Some(c) = cluster(config, i) else { return };
            tokio::spawn(async move {
                let result = async {
                    let client = client(&c).await?;
                    let detail = drill::pod::get(client.clone(), &namespace, &name)
                        .await
                        .map_err(|e| e.to_string())?;
                    let events = drill::events::for_pod(client.clone(), &namespace, &name)
                        .await
                        .unwrap_or_default();
                    let workload = drill::pod::workload_of(client, &detail).await;
                    Ok(Box::new(LoadedPod {
                        detail,
                        events,
                        workload,
                    }))
                }
                .await;
                let _ = tx.send(Event::PodLoaded {
                    cluster: i,
                    namespace,
                    name,
                    result,
                });
            });
        }
        Effect::StartLogs {
            cluster: i,
            namespace,
            pod,
            container,
            previous,
            generation,
        } => {
            let Some(c) = cluster(config, i) else { return };
            let cancel = CancellationToken::new();
            logs.insert(generation, cancel.clone());
            tokio::spawn(async move {
                let client = match client(&c).await {
                    Ok(cl) => cl,
                    Err(e) => {
                        let _ = tx.send(Event::Log {
                            generation,
                            event: drill::logs::LogEvent::Error(e),
                        });
                        return;
                    }
                };
                let mut req =
                    drill::logs::LogRequest::follow(&namespace, &pod, container.as_deref());
                if previous {
                    req.previous = true;
                    req.follow = false;
                }
                let (lines_tx, mut lines) = tokio::sync::mpsc::channel(256);
                let task = tokio::spawn(drill::logs::tail(client, req, lines_tx, cancel.clone()));
                while let Some(event) = lines.recv().await {
                    if tx.send(Event::Log { generation, event }).is_err() {
                        cancel.cancel();
                        break;
                    }
                }
                let _ = task.await;
            });
        }
        Effect::StopLogs { generation } => {
            if let Some(cancel) = logs.remove(&generation) {
                cancel.cancel();
            }
        }
        Effect::FetchEvents { cluster: i } => {
            let Some(c) = cluster(config, i) else { return };
            tokio::spawn(async move {
                let result = async {
                    drill::events::warnings(client(&c).await?)
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                let _ = tx.send(Event::EventsLoaded { cluster: i, result });
            });
        }
        Effect::FetchWorkloads { cluster: i } => {
            let Some(c) = cluster(config, i) else { return };
            tokio::spawn(async move {
                let result = async {
                    let mut rows = drill::workloads::list(client(&c).await?, None)
                        .await
                        .map_err(|e| e.to_string())?;
                    drill::workloads::sort(&mut rows);
                    Ok(rows)
                }
                .await;
                let _ = tx.send(Event::WorkloadsLoaded { cluster: i, result });
            });
        }
        Effect::Quick {
            action,
            confirmation,
        } => {
            let Some(c) = config
                .clusters
                .iter()
                .find(|c| c.name == action.cluster)
                .cloned()
            else {
                return;
            };
            let audit = crate::runbook::audit::AuditLog::new(config.audit_log.clone());
            tokio::spawn(async move {
                let text = match client(&c).await {
                    Ok(client) => {
                        let actor = crate::runbook::audit::Actor::current();
                        // Start record first: if it cannot be written, nothing is sent and the
                        // notice names the file and the error.
                        match drill::actions::perform_and_record(
                            client,
                            &action,
                            &audit,
                            &actor,
                            confirmation.as_str(),
                        )
                        .await
                        {
                            Ok(done) => format!("{}: {done}", action.describe()),
                            Err(e) => format!("{}: {e}", action.describe()),
                        }
                    }
                    Err(e) => format!("{}: {e}", action.describe()),
                };
                let _ = tx.send(Event::Notice(text));
            });
        }
        // Handled by the runner itself.
        Effect::Quit
        | Effect::Runbook(_)
        | Effect::ToggleForward(_)
        | Effect::Copy(_)
        | Effect::Argocd { .. } => {}
    }
}

/// Performs an ArgoCD action on `app` of `cluster`, recorded like every action: the start
/// record is on disk before the request is sent, or nothing is sent and the text says why
/// (naming the audit file and the error). Returns the text for the app's row and the notice.
pub async fn argocd_action(
    cluster: &ClusterConfig,
    app: &str,
    action: crate::model::argocd::ArgoAction,
    confirmation: &str,
    audit: &crate::runbook::audit::AuditLog,
) -> String {
    use crate::runbook::audit::Record;
    let start = Record::action_started(
        action.name(),
        &format!("{}/argocd/{app}", cluster.name),
        &cluster.name,
        cluster.context.as_deref().unwrap_or_default(),
        confirmation,
    );
    let pending = match audit.begin_async(start).await {
        Ok(p) => p,
        Err(e) => return crate::drill::actions::refusal(&e),
    };
    let result = crate::sources::argocd::perform(cluster, app, action).await;
    let outcome = result
        .as_ref()
        .map_or_else(String::clone, |()| "ok".to_string());
    let recorded = pending.finish_async(outcome).await;
    let mut text = match result {
        Ok(()) => format!("{} accepted", action.name()),
        Err(e) => e,
    };
    if let Err(e) = recorded {
        text.push_str(&format!(" (but its end record is missing: {e})"));
    }
    text
}
