//! The reducer: `update(state, event) -> effects`. Pure: it never does I/O, so every key
//! sequence and every source report can be tested without a terminal or a server.

use jiff::Timestamp;

use super::action::Action;
use super::drill;
use super::runbooks;
use super::state::{AppState, View};
use crate::keymap::{Key, Resolved};
use crate::model::Stale;
use crate::sources::{Feature, FeatureData, SourceEvent, SourceUpdate};

/// Everything that can happen to the console.
#[derive(Debug, Clone)]
pub enum Event {
    Source(SourceEvent),
    Key(Key),
    /// The clock moved (ages and grace periods depend on it).
    Tick(Timestamp),
    /// The event loop drew a frame of the current state: an open confirmation is now on
    /// screen, so keys may confirm it (keys typed before that are dropped).
    Drawn,
    /// SIGTERM or SIGHUP: leave now, restoring the terminal.
    Terminate,
    /// The runbook executor reports.
    Run(crate::runbook::session::RunEvent),
    /// The port-forwards' state, whole.
    Forwards(std::sync::Arc<crate::forward::ForwardSnapshot>),
    /// A background effect finished: say how it went.
    Notice(String),
    /// An ArgoCD action's outcome (`accepted` or the error), shown in the app's row too.
    ArgoResult {
        cluster: usize,
        app: String,
        text: String,
    },
    /// A pod's detail, events and workload, or why they could not be read.
    PodLoaded {
        cluster: usize,
        namespace: String,
        name: String,
        result: Result<Box<LoadedPod>, String>,
    },
    /// A log stream's line or end.
    Log {
        generation: u64,
        event: crate::drill::logs::LogEvent,
    },
    EventsLoaded {
        cluster: usize,
        result: Result<Vec<crate::drill::events::EventRow>, String>,
    },
    WorkloadsLoaded {
        cluster: usize,
        result: Result<Vec<crate::drill::workloads::WorkloadRow>, String>,
    },
}

/// What opening a pod fetches.
#[derive(Debug, Clone)]
pub struct LoadedPod {
    pub detail: crate::drill::pod::PodDetail,
    pub events: Vec<crate::drill::events::EventRow>,
    pub workload: Option<(crate::drill::actions::WorkloadKind, String)>,
}

/// What the runner must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    /// Hand this (confirmed) command to the runbook executor.
    Runbook(crate::runbook::session::RunCommand),
    /// Start or stop a port-forward shortcut (`CLUSTER/NAME`).
    ToggleForward(String),
    /// Put this text on the clipboard of the terminal (OSC 52: works over SSH).
    Copy(String),
    FetchPod {
        cluster: usize,
        namespace: String,
        name: String,
    },
    StartLogs {
        cluster: usize,
        namespace: String,
        pod: String,
        container: Option<String>,
        previous: bool,
        generation: u64,
    },
    StopLogs {
        generation: u64,
    },
    FetchEvents {
        cluster: usize,
    },
    FetchWorkloads {
        cluster: usize,
    },
    /// Carry out this (confirmed) quick action and record it.
    Quick {
        action: crate::drill::actions::QuickAction,
        confirmation: crate::runbook::run::Confirmation,
    },
    /// Send this (confirmed) ArgoCD action and record it.
    Argocd {
        cluster: usize,
        app: String,
        action: crate::model::argocd::ArgoAction,
        confirmation: crate::runbook::run::Confirmation,
    },
}

/// Folds one event into the state.
pub fn update(state: &mut AppState, event: Event) -> Vec<Effect> {
    match event {
        Event::Source(SourceEvent { cluster, update }) => {
            let now = state.now;
            let Some(c) = state.clusters.get_mut(cluster) else {
                return vec![];
            };
            match update {
                SourceUpdate::Kube(snap) => {
                    c.kube = Some(snap);
                    c.kube_stale = None;
                    c.reachable = Some(true);
                }
                SourceUpdate::KubeFailing { reason } => {
                    let since = c.kube_stale.as_ref().map_or(now, |s| s.since);
                    c.kube_stale = Some(Stale { since, reason });
                    c.reachable = Some(false);
                }
                SourceUpdate::Feature(data) => match data {
                    FeatureData::Pgbouncer(d) => c.pgbouncer.set(d),
                    FeatureData::Redis(d) => c.redis.set(d),
                    FeatureData::Argocd(d) => c.argocd.set(d),
                    FeatureData::Backups(d) => c.backups.set(d),
                },
                SourceUpdate::FeatureFailing { feature, reason } => match feature {
                    Feature::Pgbouncer => c.pgbouncer.fail(reason, now),
                    Feature::Redis => c.redis.fail(reason, now),
                    Feature::Argocd => c.argocd.fail(reason, now),
                    Feature::Backups => c.backups.fail(reason, now),
                },
            }
            c.refresh_findings(now);
            drill::on_snapshot(state, cluster);
            vec![]
        }
        Event::Key(key) if state.confirm.is_some() => super::confirm::key(state, key),
        Event::Key(key) if state.modal.is_some() => runbooks::modal_key(state, key),
        // Ctrl-C anywhere while a step runs asks before anything else happens.
        Event::Key(key) if key == Key::ctrl('c') && runbooks::step_running(state).is_some() => {
            ask_quit(state)
        }
        Event::Key(key) if state.drill.count.is_some() => drill::count_key(state, key),
        Event::Key(key) if drill::typing(state) => drill::text_key(state, key),
        Event::Key(key) if state.flash.take().is_some() => update(state, Event::Key(key)),
        Event::Key(key) => {
            // Esc abandons a sequence in progress and does nothing else.
            if !state.pending.is_empty() && key == Key::plain(crate::keymap::KeyCode::Esc) {
                state.pending.clear();
                return vec![];
            }
            match state.keymap.resolve(state.mode(), &state.pending, key) {
                Resolved::Action(action) => {
                    state.pending.clear();
                    apply(state, action)
                }
                Resolved::Prefix => {
                    state.pending.push(key);
                    vec![]
                }
                Resolved::None if !state.pending.is_empty() => {
                    state.pending.clear();
                    vec![]
                }
                Resolved::None => forward_key(state, key),
            }
        }
        Event::Forwards(snap) => {
            state.forwards = Some(snap);
            vec![]
        }
        Event::Notice(text) => {
            state.flash = Some(text);
            vec![]
        }
        Event::PodLoaded {
            cluster,
            namespace,
            name,
            result,
        } => {
            if let Some(p) = state
                .drill
                .pod
                .as_mut()
                .filter(|p| p.cluster == cluster && p.namespace == namespace && p.name == name)
            {
                match result {
                    Ok(loaded) => {
                        let LoadedPod {
                            detail,
                            events,
                            workload,
                        } = *loaded;
                        p.detail = Some(detail);
                        p.events = events;
                        p.workload = workload;
                        p.error = None;
                    }
                    Err(e) => p.error = Some(e),
                }
            }
            vec![]
        }
        Event::Log { generation, event } => {
            drill::on_log(state, generation, event);
            vec![]
        }
        Event::EventsLoaded { cluster, result } => {
            if let Some(e) = state.drill.events.as_mut().filter(|e| e.cluster == cluster) {
                e.loading = false;
                match result {
                    Ok(rows) => e.rows = rows,
                    Err(err) => e.error = Some(err),
                }
            }
            vec![]
        }
        Event::WorkloadsLoaded { cluster, result } => {
            if let Some(w) = state
                .drill
                .workloads
                .as_mut()
                .filter(|w| w.cluster == cluster)
            {
                w.loading = false;
                match result {
                    Ok(rows) => w.rows = rows,
                    Err(err) => w.error = Some(err),
                }
            }
            vec![]
        }
        Event::ArgoResult { cluster, app, text } => {
            state.flash = Some(format!("{app}: {text}"));
            state.argo_results.insert((cluster, app), text);
            vec![]
        }
        Event::Run(ev) => {
            runbooks::on_event(state, ev);
            vec![]
        }
        Event::Tick(now) => {
            state.now = now;
            for c in &mut state.clusters {
                c.refresh_findings(now);
            }
            vec![]
        }
        Event::Drawn => {
            if let Some(c) = state.confirm.as_mut() {
                c.armed = true;
            }
            vec![]
        }
        Event::Terminate => {
            state.quit = true;
            vec![Effect::Quit]
        }
    }
}

/// Quitting while a step runs asks first: quitting cancels the step.
fn ask_quit(state: &mut AppState) -> Vec<Effect> {
    let Some((cluster, step)) = runbooks::step_running(state) else {
        state.quit = true;
        return vec![Effect::Quit];
    };
    state.pending.clear();
    let c =
        super::confirm::Confirm::new(" Quit opsdeck? ", super::confirm::Proof::Key, Effect::Quit)
            .lines(vec![
                format!("a step is running on {cluster}: quit and cancel it?"),
                format!("({step} is stopped: SIGTERM to its process group, then SIGKILL)"),
            ])
            .messages(
                "not quitting; the step keeps running",
                "not quitting; the step keeps running",
            );
    super::confirm::open(state, c);
    vec![]
}

/// Carries out one named action.
pub fn apply(state: &mut AppState, action: Action) -> Vec<Effect> {
    let n = state.clusters.len().max(1);
    match action {
        Action::Quit => return ask_quit(state),
        Action::Help => {
            state.help = !state.help;
            state.scroll = 0;
        }
        Action::Findings => set_view(state, View::Findings),
        Action::Overview => set_view(state, View::Overview),
        Action::FocusNextCluster => {
            state.focus = (state.focus + 1) % n;
            follow_focus(state);
        }
        Action::FocusPrevCluster => {
            state.focus = (state.focus + n - 1) % n;
            follow_focus(state);
        }
        Action::Open => match state.view {
            View::Pods(_) => return drill::open_pod(state),
            View::Overview if !state.clusters.is_empty() => {
                set_view(state, View::Cluster(state.focus))
            }
            View::Forwards => {
                if let Some(f) = state
                    .forwards
                    .as_ref()
                    .and_then(|s| s.shortcuts.get(state.forward_cursor))
                {
                    return vec![Effect::ToggleForward(f.id())];
                }
            }
            View::Runbooks if !state.clusters.is_empty() => {
                let effects = runbooks::open(state, state.list_cursor);
                set_view(state, View::Runbook);
                return effects;
            }
            _ => {}
        },
        Action::Back => {
            if state.help {
                state.help = false;
                state.scroll = 0;
            } else if state.view == View::Runbook {
                set_view(state, View::Runbooks);
            } else if state.view == View::Logs {
                let effects = drill::close_logs(state);
                let back = if state.drill.pod.is_some() {
                    View::Pod
                } else {
                    state
                        .drill
                        .pods
                        .as_ref()
                        .map_or(View::Overview, |p| View::Pods(p.cluster))
                };
                set_view(state, back);
                return effects;
            } else if state.view == View::Pod {
                let back = state
                    .drill
                    .pods
                    .as_ref()
                    .map_or(View::Overview, |p| View::Pods(p.cluster));
                state.drill.pod = None;
                set_view(state, back);
            } else if state.view != View::Overview {
                set_view(state, View::Overview);
            }
        }
        Action::ScrollDown | Action::ScrollUp | Action::Top | Action::Bottom
            if matches!(state.view, View::Panel(_, Feature::Argocd)) =>
        {
            let View::Panel(c, _) = state.view else {
                return vec![];
            };
            let last = super::argocd::ordered_apps(state, c)
                .len()
                .saturating_sub(1);
            state.argo_cursor = match action {
                Action::ScrollDown => (state.argo_cursor + 1).min(last),
                Action::ScrollUp => state.argo_cursor.saturating_sub(1),
                Action::Top => 0,
                _ => last,
            };
        }
        Action::ArgoRefresh
        | Action::ArgoHardRefresh
        | Action::ArgoSync
        | Action::ArgoSyncPrune
        | Action::ArgoRollback => {
            use crate::model::argocd::ArgoAction;
            let View::Panel(c, Feature::Argocd) = state.view else {
                return vec![];
            };
            let a = match action {
                Action::ArgoRefresh => ArgoAction::Refresh { hard: false },
                Action::ArgoHardRefresh => ArgoAction::Refresh { hard: true },
                Action::ArgoSync => ArgoAction::Sync { prune: false },
                Action::ArgoSyncPrune => ArgoAction::Sync { prune: true },
                _ => ArgoAction::Rollback { id: 0 },
            };
            return super::argocd::request(state, c, a);
        }
        Action::ScrollDown
        | Action::ScrollUp
        | Action::Top
        | Action::Bottom
        | Action::PageDown
        | Action::PageUp
            if matches!(
                state.view,
                View::Pods(_) | View::Events | View::Workloads | View::Logs
            ) =>
        {
            let page = state.page.max(1) as isize;
            let (delta, end) = match action {
                Action::ScrollDown => (1, None),
                Action::ScrollUp => (-1, None),
                Action::PageDown => (page, None),
                Action::PageUp => (-page, None),
                Action::Top => (0, Some(false)),
                _ => (0, Some(true)),
            };
            drill::move_selection(state, delta, end);
        }
        Action::ScrollDown if state.view == View::Forwards => {
            let n = state.forwards.as_ref().map_or(0, |s| s.shortcuts.len());
            state.forward_cursor = (state.forward_cursor + 1).min(n.saturating_sub(1));
        }
        Action::ScrollUp if state.view == View::Forwards => {
            state.forward_cursor = state.forward_cursor.saturating_sub(1)
        }
        Action::ScrollDown if state.view == View::Runbooks => {
            state.list_cursor = (state.list_cursor + 1).min(state.runbooks.len().saturating_sub(1));
        }
        Action::ScrollUp if state.view == View::Runbooks => {
            state.list_cursor = state.list_cursor.saturating_sub(1)
        }
        Action::ScrollDown | Action::ScrollUp | Action::Top | Action::Bottom
            if state.view == View::Runbook =>
        {
            if let Some(r) = state.run.as_mut() {
                let last = r.runbook.steps.len().saturating_sub(1);
                r.cursor = match action {
                    Action::ScrollDown => (r.cursor + 1).min(last),
                    Action::ScrollUp => r.cursor.saturating_sub(1),
                    Action::Top => 0,
                    _ => last,
                };
            }
        }
        Action::ScrollDown => state.scroll = state.scroll.saturating_add(1),
        Action::ScrollUp => state.scroll = state.scroll.saturating_sub(1),
        Action::PageDown => state.scroll = state.scroll.saturating_add(state.page.max(1)),
        Action::PageUp => state.scroll = state.scroll.saturating_sub(state.page.max(1)),
        Action::Top => state.scroll = 0,
        // The view clamps the offset to the list's real length.
        Action::Bottom => state.scroll = usize::MAX / 2,
        Action::Runbooks => set_view(state, View::Runbooks),
        Action::Pods => {
            if !state.clusters.is_empty() {
                let c = state.focus;
                drill::open_pods(state, c);
                set_view(state, View::Pods(c));
            }
        }
        Action::Events => return drill::open_events(state),
        Action::Workloads => return drill::open_workloads(state),
        Action::Filter => match state.view {
            View::Pods(_) => {
                if let Some(p) = state.drill.pods.as_mut() {
                    p.editing = Some(p.table.filter().text().to_string());
                }
            }
            View::Logs => {
                if let Some(l) = state.drill.logs.as_mut() {
                    l.searching = Some(l.search.clone());
                }
            }
            _ => {}
        },
        Action::SortNext | Action::SortReverse | Action::NamespaceNext => {
            if let Some(p) = state
                .drill
                .pods
                .as_mut()
                .filter(|_| matches!(state.view, View::Pods(_)))
            {
                match action {
                    Action::SortNext => p.table.sort_by(p.table.sort().column.next()),
                    Action::SortReverse => p.table.sort_by(p.table.sort().column),
                    _ => p.table.cycle_namespace(),
                }
            }
        }
        Action::Logs => return drill::open_logs(state, false),
        Action::LogsPrevious => {
            let mut effects = drill::close_logs(state);
            if state.view == View::Logs {
                state.view = if state.drill.pod.is_some() {
                    View::Pod
                } else {
                    state
                        .drill
                        .pods
                        .as_ref()
                        .map_or(View::Overview, |p| View::Pods(p.cluster))
                };
            }
            effects.extend(drill::open_logs(state, true));
            return effects;
        }
        Action::Wrap => {
            if let Some(l) = state.drill.logs.as_mut() {
                l.wrap = !l.wrap;
            }
        }
        Action::DeletePod => return drill::request_quick(state, "delete"),
        Action::Restart => return drill::request_quick(state, "restart"),
        Action::Scale => return drill::request_quick(state, "scale"),
        Action::TriggerJob => return drill::request_quick(state, "trigger"),
        Action::Exec => return drill::request_quick(state, "exec"),
        Action::Forwards => set_view(state, View::Forwards),
        Action::CopyUrl => {
            let url = state
                .forwards
                .as_ref()
                .filter(|_| state.view == View::Forwards)
                .and_then(|s| s.shortcuts.get(state.forward_cursor))
                .and_then(|f| f.local_display());
            match url {
                Some(u) => {
                    state.flash = Some(format!("copied {u}"));
                    return vec![Effect::Copy(u)];
                }
                None => state.flash = Some("nothing to copy: start the forward first".into()),
            }
        }
        Action::PanelPgbouncer => set_view(state, View::Panel(state.focus, Feature::Pgbouncer)),
        Action::PanelRedis => set_view(state, View::Panel(state.focus, Feature::Redis)),
        Action::PanelArgocd => set_view(state, View::Panel(state.focus, Feature::Argocd)),
        Action::PanelBackups => set_view(state, View::Panel(state.focus, Feature::Backups)),
        Action::RunStep if state.view == View::Runbook => {
            return runbooks::request_run(state, None);
        }
        Action::EditStep if state.view == View::Runbook => {
            let read_only = state.read_only
                || state
                    .run
                    .as_ref()
                    .and_then(|r| state.clusters.get(r.target))
                    .is_some_and(|c| c.read_only);
            if let Some(r) = state.run.as_mut().filter(|_| read_only) {
                let (cluster, number) = (
                    state
                        .clusters
                        .get(r.target)
                        .map(|c| c.name.clone())
                        .unwrap_or_default(),
                    r.cursor + 1,
                );
                r.notice = Some(runbooks::read_only_edit(&cluster, number));
            } else if let Some(r) = state.run.as_ref().filter(|r| r.running.is_none()) {
                let mut editor = ratatui_textarea::TextArea::new(
                    r.command(r.cursor).lines().map(String::from).collect(),
                );
                editor.move_cursor(ratatui_textarea::CursorMove::Bottom);
                state.modal = Some(runbooks::Modal::Edit {
                    step: r.cursor,
                    editor,
                });
            }
        }
        Action::SkipStep if state.view == View::Runbook => {
            if let Some(r) = state.run.as_ref().filter(|r| r.running.is_none()) {
                state.modal = Some(runbooks::Modal::Skip {
                    step: r.cursor,
                    reason: ratatui_textarea::TextArea::default(),
                });
            }
        }
        Action::CancelStep if state.view == View::Runbook => {
            if state.run.as_ref().is_some_and(|r| r.running.is_some()) {
                return vec![Effect::Runbook(crate::runbook::session::RunCommand::Cancel)];
            }
        }
        Action::NextTarget if state.view == View::Runbook => {
            let n = state.clusters.len().max(1);
            if let Some(r) = state.run.as_mut() {
                if r.running.is_some() {
                    r.notice = Some("a step is running: the target cannot change now".into());
                } else {
                    let next = (r.target + 1) % n;
                    *r = runbooks::RunbookView::new(r.runbook.clone(), next);
                    return vec![Effect::Runbook(crate::runbook::session::RunCommand::Close)];
                }
            }
        }
        Action::RunStep
        | Action::EditStep
        | Action::SkipStep
        | Action::CancelStep
        | Action::NextTarget => {}
    }
    vec![]
}

/// A key a `[[forward]]` shortcut names (its `key`) toggles it, when the keymap does not use it.
fn forward_key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let Some(snap) = &state.forwards else {
        return vec![];
    };
    let hit = snap
        .shortcuts
        .iter()
        .find(|f| f.key.as_deref().and_then(|k| k.parse::<Key>().ok()) == Some(key));
    match hit {
        Some(f) => vec![Effect::ToggleForward(f.id())],
        None => vec![],
    }
}

/// Views about one cluster follow the focus to the next cluster.
fn follow_focus(state: &mut AppState) {
    match state.view {
        View::Cluster(_) => set_view(state, View::Cluster(state.focus)),
        View::Pods(_) => {
            let c = state.focus;
            drill::open_pods(state, c);
            set_view(state, View::Pods(c));
        }
        View::Panel(_, f) => set_view(state, View::Panel(state.focus, f)),
        _ => {}
    }
}

fn set_view(state: &mut AppState, view: View) {
    state.help = false;
    state.view = view;
    state.scroll = 0;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{ClusterConfig, Config};
    use crate::keymap::{EMBEDDED, Keymap};
    use crate::model::{KubeSnapshot, Severity};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_764_000_000 + s).unwrap()
    }

    fn state() -> AppState {
        let config = Config {
            clusters: ["staging", "production"]
                .iter()
                .map(|n| ClusterConfig {
                    name: n.to_string(),
                    protected: *n == "production",
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        AppState::new(&config, Keymap::parse(EMBEDDED[0].1).unwrap(), ts(0))
    }

    fn key(s: &str) -> Event {
        Event::Key(s.parse().unwrap())
    }

    #[test]
    fn tab_cycles_focus_and_enter_opens_the_focused_cluster() {
        let mut s = state();
        update(&mut s, key("tab"));
        assert_eq!(s.focus, 1);
        update(&mut s, key("enter"));
        assert_eq!(s.view, View::Pods(1));
        update(&mut s, key("tab"));
        assert_eq!((s.focus, s.view), (0, View::Pods(0)));
        update(&mut s, key("esc"));
        update(&mut s, key("i"));
        assert_eq!(s.view, View::Cluster(0));
        update(&mut s, key("tab"));
        assert_eq!((s.focus, s.view), (1, View::Cluster(1)));
        update(&mut s, key("esc"));
        assert_eq!(s.view, View::Overview);
        update(&mut s, key("backtab"));
        assert_eq!(s.focus, 0);
    }

    #[test]
    fn findings_help_and_back_stack_as_expected() {
        let mut s = state();
        update(&mut s, key("f"));
        assert_eq!(s.view, View::Findings);
        update(&mut s, key("j"));
        update(&mut s, key("j"));
        assert_eq!(s.scroll, 2);
        update(&mut s, key("?"));
        assert!(s.help);
        update(&mut s, key("esc"));
        assert!(!s.help);
        assert_eq!(s.view, View::Findings);
        update(&mut s, key("esc"));
        assert_eq!(s.view, View::Overview);
    }

    #[test]
    fn q_and_terminate_quit() {
        let mut s = state();
        assert_eq!(update(&mut s, key("q")), vec![Effect::Quit]);
        let mut s = state();
        assert_eq!(update(&mut s, Event::Terminate), vec![Effect::Quit]);
        assert!(s.quit);
    }

    #[test]
    fn a_failing_source_keeps_the_last_snapshot_and_marks_it_stale_with_its_first_time() {
        let mut s = state();
        let snap = Arc::new(KubeSnapshot::default());
        update(
            &mut s,
            Event::Source(SourceEvent {
                cluster: 1,
                update: SourceUpdate::Kube(snap.clone()),
            }),
        );
        assert_eq!(s.clusters[1].reachable, Some(true));
        update(&mut s, Event::Tick(ts(10)));
        let failing = || {
            Event::Source(SourceEvent {
                cluster: 1,
                update: SourceUpdate::KubeFailing {
                    reason: "connection refused".into(),
                },
            })
        };
        update(&mut s, failing());
        update(&mut s, Event::Tick(ts(20)));
        update(&mut s, failing());
        let c = &s.clusters[1];
        assert!(
            Arc::ptr_eq(c.kube.as_ref().unwrap(), &snap),
            "last good data stays"
        );
        assert_eq!(c.kube_stale.as_ref().unwrap().since, ts(10));
        assert_eq!(c.reachable, Some(false));
        assert_eq!(c.worst(), Some(Severity::Crit));
        assert!(c.findings[0].message.contains("connection refused"));
        assert_eq!(
            s.clusters[0].reachable, None,
            "the other cluster is untouched"
        );
        update(
            &mut s,
            Event::Source(SourceEvent {
                cluster: 1,
                update: SourceUpdate::Kube(snap),
            }),
        );
        assert!(s.clusters[1].kube_stale.is_none());
        assert!(s.clusters[1].findings.is_empty());
    }

    #[test]
    fn findings_list_is_newest_first_across_clusters() {
        let mut s = state();
        let fail = |c| {
            Event::Source(SourceEvent {
                cluster: c,
                update: SourceUpdate::KubeFailing { reason: "x".into() },
            })
        };
        update(&mut s, fail(0));
        update(&mut s, Event::Tick(ts(5)));
        update(&mut s, fail(1));
        let all = s.all_findings();
        assert_eq!(all.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [1, 0]);
    }
}
