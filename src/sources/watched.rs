//! A Kubernetes collection kept current by a watch, for sources that read a few objects on
//! every poll (the backups CronJobs and Jobs, the Redis workload and its pods).
//!
//! Listing on every poll is traffic even when nothing changes; a watch costs one list at the
//! start and then only events (and bookmarks). A source keeps a [`Watched`] for as long as it
//! runs and reads the store instead of the API.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Whether the store can be trusted, as the watch task last saw it.
#[derive(Debug, Clone, Default)]
struct State {
    /// The first complete list has arrived.
    ready: bool,
    /// The watch is failing (cleared by the next object or complete list).
    error: Option<String>,
}

/// The objects of one `Api` and selector, kept by a watch task that stops when this is dropped.
pub struct Watched<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    state: Arc<watch::Sender<State>>,
    /// For a plain list while the watch is failing.
    api: Api<K>,
    list: ListParams,
    task: tokio::task::AbortHandle,
}

impl<K: Resource + 'static> Drop for Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<K> Watched<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    /// Starts watching `api`, optionally narrowed by a label and a field selector.
    pub fn start(api: Api<K>, labels: Option<&str>, fields: Option<&str>) -> Watched<K> {
        let (store, writer) = reflector::store::<K>();
        let state = Arc::new(watch::Sender::new(State::default()));
        let tx = state.clone();
        let mut config = watcher::Config::default();
        let mut list = ListParams::default();
        if let Some(l) = labels {
            config = config.labels(l);
            list = list.labels(l);
        }
        if let Some(f) = fields {
            config = config.fields(f);
            list = list.fields(f);
        }
        let events = reflector(writer, watcher(api.clone(), config).default_backoff());
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(ev) = events.next().await {
                match ev {
                    // Sent before the list is asked for: says nothing about the server yet.
                    Ok(watcher::Event::Init) => {}
                    Ok(watcher::Event::InitDone) => tx.send_modify(|s| {
                        s.ready = true;
                        s.error = None;
                    }),
                    Ok(_) => {
                        tx.send_if_modified(|s| s.error.take().is_some());
                    }
                    // A too-old resourceVersion is routine: the watcher lists again.
                    Err(watcher::Error::WatchError(s)) if s.code == 410 => {}
                    Err(e) => {
                        let reason = super::kube::describe(&e);
                        tx.send_if_modified(|s| {
                            let changed = s.error.as_ref() != Some(&reason);
                            s.error = Some(reason);
                            changed
                        });
                    }
                }
            }
        })
        .abort_handle();
        Watched {
            store,
            state,
            api,
            list,
            task,
        }
    }

    /// The objects now held. Waits up to `wait` for the first list. While the watch is
    /// failing, the answer is a plain list: its error (the caller marks its panel stale rather
    /// than trusting old objects), or fresh objects, which also clears the failure: a watch
    /// that resumes where it stopped says nothing until something changes.
    pub async fn items(&self, wait: Duration) -> Result<Vec<Arc<K>>, String> {
        let state = {
            let mut rx = self.state.subscribe();
            let settled =
                tokio::time::timeout(wait, rx.wait_for(|s| s.ready || s.error.is_some())).await;
            match settled {
                Err(_) => return Err(format!("no answer within {}s", wait.as_secs())),
                Ok(Err(_)) => return Err("the watch stopped".into()),
                Ok(Ok(s)) => s.clone(),
            }
        };
        if state.error.is_none() {
            return Ok(self.store.state());
        }
        let listed = tokio::time::timeout(wait, self.api.list(&self.list))
            .await
            .map_err(|_| format!("no answer within {}s", wait.as_secs()))?
            .map_err(|e| super::kube::describe(&watcher::Error::InitialListFailed(e)))?;
        // Only a store that has had its first list is trusted again; before that, the next
        // poll lists too rather than wait for a watcher that may be in a long backoff.
        if state.ready {
            self.state.send_if_modified(|s| s.error.take().is_some());
        }
        Ok(listed.items.into_iter().map(Arc::new).collect())
    }
}
