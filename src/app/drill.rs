//! The cluster drill-down in the console: the pods table (sort, filter, namespace), a pod's
//! detail with events and its live log, the cluster's warning events, the workloads, and the
//! quick actions (restart, delete, scale, trigger, exec), each held by the confirmation overlay.

use super::confirm::{Confirm, ConfirmTarget, Proof};
use super::state::{AppState, View};
use super::update::Effect;
use crate::drill::actions::{QuickAction, QuickActionKind, WorkloadKind};
use crate::drill::events::EventRow;
use crate::drill::logs::{LogBuffer, LogEvent};
use crate::drill::pod::PodDetail;
use crate::drill::pods::PodTable;
use crate::drill::workloads::WorkloadRow;
use crate::keymap::{Key, KeyCode};
use crate::runbook::run::Confirmation;

/// The pods table of one cluster.
#[derive(Debug, Clone)]
pub struct PodsState {
    pub cluster: usize,
    pub table: PodTable,
    /// The filter being typed (`/`); `None` when not editing.
    pub editing: Option<String>,
}

/// One pod's detail.
#[derive(Debug, Clone)]
pub struct PodView {
    pub cluster: usize,
    pub namespace: String,
    pub name: String,
    pub detail: Option<PodDetail>,
    pub events: Vec<EventRow>,
    pub workload: Option<(WorkloadKind, String)>,
    pub error: Option<String>,
}

/// A pod's log tail.
#[derive(Debug, Clone)]
pub struct LogsState {
    pub cluster: usize,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub previous: bool,
    pub buffer: LogBuffer,
    pub following: bool,
    pub wrap: bool,
    pub search: String,
    /// The search being typed (`/`).
    pub searching: Option<String>,
    pub scroll: Option<usize>,
    pub status: Option<String>,
    /// Which stream these lines belong to (a restart of the tail bumps it).
    pub generation: u64,
}

/// A list fetched on demand (warning events, workloads).
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub cluster: usize,
    pub rows: Vec<T>,
    pub selected: usize,
    pub loading: bool,
    pub error: Option<String>,
}

impl<T> Fetched<T> {
    fn loading(cluster: usize) -> Self {
        Fetched {
            cluster,
            rows: Vec::new(),
            selected: 0,
            loading: true,
            error: None,
        }
    }
}

/// The new replica count being typed for a scale, before its confirmation opens.
#[derive(Debug, Clone)]
pub struct CountPrompt {
    pub action: QuickAction,
    pub protected: bool,
    pub count: String,
    pub error: Option<String>,
    /// A count that needs saying twice (more than 10x the current one, or above
    /// `scale_ceiling`), once typed: the same count typed again confirms it.
    pub unusual: Option<i32>,
}

/// The longest count the prompt takes (more digits are refused as they are typed); a
/// count that does not fit a replica count is an error at enter.
const COUNT_MAX_DIGITS: usize = 32;

/// Why a scale from `from` to `to` replicas needs the count typed again, if it does.
pub fn unusual_scale(from: i32, to: i32, ceiling: u32) -> Option<String> {
    let mut why = Vec::new();
    if i64::from(to) > 10 * i64::from(from.max(0)) && to > from {
        why.push("more than 10x".to_string());
    }
    if i64::from(to) > i64::from(ceiling) {
        why.push(format!("above scale_ceiling {ceiling}"));
    }
    (!why.is_empty()).then(|| why.join(" / "))
}

/// Everything of the drill-down.
#[derive(Debug, Clone, Default)]
pub struct DrillState {
    pub pods: Option<PodsState>,
    pub pod: Option<PodView>,
    pub logs: Option<LogsState>,
    pub events: Option<Fetched<EventRow>>,
    pub workloads: Option<Fetched<WorkloadRow>>,
    /// A scale's count prompt (the confirmation opens once the count is typed).
    pub count: Option<CountPrompt>,
    /// `scale_ceiling` from the config (`None`: the default).
    pub scale_ceiling: Option<u32>,
    generation: u64,
}

impl DrillState {
    pub fn with_scale_ceiling(ceiling: u32) -> DrillState {
        DrillState {
            scale_ceiling: Some(ceiling),
            ..DrillState::default()
        }
    }
}

/// Opens the pods table of `cluster`.
pub fn open_pods(state: &mut AppState, cluster: usize) {
    let pods = state
        .clusters
        .get(cluster)
        .and_then(|c| c.kube.as_ref())
        .map(|s| s.pods.clone())
        .unwrap_or_default();
    match state.drill.pods.as_mut() {
        Some(p) if p.cluster == cluster => p.table.set_pods(pods),
        _ => {
            state.drill.pods = Some(PodsState {
                cluster,
                table: PodTable::new(pods),
                editing: None,
            })
        }
    }
}

/// A new Kubernetes snapshot reaches the open pods table.
pub fn on_snapshot(state: &mut AppState, cluster: usize) {
    let pods = state
        .clusters
        .get(cluster)
        .and_then(|c| c.kube.as_ref())
        .map(|s| s.pods.clone());
    if let (Some(p), Some(pods)) = (state.drill.pods.as_mut(), pods)
        && p.cluster == cluster
    {
        p.table.set_pods(pods);
    }
}

/// Opens the selected pod's detail and asks for it.
pub fn open_pod(state: &mut AppState) -> Vec<Effect> {
    let Some(p) = &state.drill.pods else {
        return vec![];
    };
    let Some(pod) = p.table.selected_pod() else {
        return vec![];
    };
    let (cluster, namespace, name) = (p.cluster, pod.namespace.clone(), pod.name.clone());
    state.drill.pod = Some(PodView {
        cluster,
        namespace: namespace.clone(),
        name: name.clone(),
        detail: None,
        events: vec![],
        workload: None,
        error: None,
    });
    state.view = View::Pod;
    state.scroll = 0;
    vec![Effect::FetchPod {
        cluster,
        namespace,
        name,
    }]
}

/// Opens the log tail of the pod in view (or selected in the table).
pub fn open_logs(state: &mut AppState, previous: bool) -> Vec<Effect> {
    let target = match (&state.drill.pod, &state.drill.pods, state.view) {
        (Some(p), _, View::Pod) => {
            let container = p
                .detail
                .as_ref()
                .and_then(|d| d.default_container())
                .unwrap_or_default()
                .to_string();
            Some((p.cluster, p.namespace.clone(), p.name.clone(), container))
        }
        (_, Some(t), _) => t.table.selected_pod().map(|p| {
            (
                t.cluster,
                p.namespace.clone(),
                p.name.clone(),
                String::new(),
            )
        }),
        _ => None,
    };
    let Some((cluster, namespace, pod, container)) = target else {
        return vec![];
    };
    state.drill.generation += 1;
    let generation = state.drill.generation;
    state.drill.logs = Some(LogsState {
        cluster,
        namespace: namespace.clone(),
        pod: pod.clone(),
        container: container.clone(),
        previous,
        buffer: LogBuffer::new(crate::drill::logs::DEFAULT_CAPACITY),
        following: !previous,
        wrap: false,
        search: String::new(),
        searching: None,
        scroll: None,
        status: Some("connecting…".into()),
        generation,
    });
    state.view = View::Logs;
    vec![Effect::StartLogs {
        cluster,
        namespace,
        pod,
        container: (!container.is_empty()).then_some(container),
        previous,
        generation,
    }]
}

/// A log stream's line or end, for the view it was started for.
pub fn on_log(state: &mut AppState, generation: u64, event: LogEvent) {
    let Some(l) = state
        .drill
        .logs
        .as_mut()
        .filter(|l| l.generation == generation)
    else {
        return;
    };
    match event {
        LogEvent::Line(line) => {
            l.status = None;
            l.buffer.push(line);
        }
        LogEvent::Ended => {
            l.following = false;
            l.status = Some("stream ended".into());
        }
        LogEvent::Error(e) => {
            l.following = false;
            l.status = Some(e);
        }
    }
}

/// Leaving the logs stops the stream.
pub fn close_logs(state: &mut AppState) -> Vec<Effect> {
    match state.drill.logs.take() {
        Some(l) => vec![Effect::StopLogs {
            generation: l.generation,
        }],
        None => vec![],
    }
}

pub fn open_events(state: &mut AppState) -> Vec<Effect> {
    let cluster = state.focus;
    state.drill.events = Some(Fetched::loading(cluster));
    state.view = View::Events;
    vec![Effect::FetchEvents { cluster }]
}

pub fn open_workloads(state: &mut AppState) -> Vec<Effect> {
    let cluster = state.focus;
    state.drill.workloads = Some(Fetched::loading(cluster));
    state.view = View::Workloads;
    vec![Effect::FetchWorkloads { cluster }]
}

/// Moves the selection of the drill-down view in front.
pub fn move_selection(state: &mut AppState, delta: isize, to_end: Option<bool>) {
    fn step(sel: usize, len: usize, delta: isize, to_end: Option<bool>) -> usize {
        let last = len.saturating_sub(1);
        match to_end {
            Some(true) => last,
            Some(false) => 0,
            None => (sel as isize + delta).clamp(0, last as isize) as usize,
        }
    }
    match state.view {
        View::Pods(_) => {
            if let Some(p) = state.drill.pods.as_mut() {
                match to_end {
                    Some(true) => p.table.select_last(),
                    Some(false) => p.table.select_first(),
                    None => p.table.move_selection(delta),
                }
            }
        }
        View::Events => {
            if let Some(e) = state.drill.events.as_mut() {
                e.selected = step(e.selected, e.rows.len(), delta, to_end);
            }
        }
        View::Workloads => {
            if let Some(w) = state.drill.workloads.as_mut() {
                w.selected = step(w.selected, w.rows.len(), delta, to_end);
            }
        }
        View::Logs => {
            if let Some(l) = state.drill.logs.as_mut() {
                let len = l.buffer.len();
                l.scroll = match (to_end, l.scroll) {
                    (Some(true), _) => None,
                    (Some(false), _) => Some(0),
                    (None, None) if delta < 0 => Some(len.saturating_sub(1 + delta.unsigned_abs())),
                    (None, None) => None,
                    (None, Some(s)) => {
                        let n = (s as isize + delta).max(0) as usize;
                        (n + 1 < len).then_some(n)
                    }
                };
            }
        }
        _ => {}
    }
}

/// The action a key asks for on the thing in front, ready for the modal.
fn quick_target(state: &AppState, kind: &str) -> Option<(QuickAction, usize)> {
    let cluster_of = |c: usize| {
        state
            .clusters
            .get(c)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    };
    let (cluster, k) = match (state.view, kind) {
        (View::Pods(_), "delete") => {
            let p = state.drill.pods.as_ref()?;
            let pod = p.table.selected_pod()?;
            (
                p.cluster,
                QuickActionKind::DeletePod {
                    ns: pod.namespace.clone(),
                    name: pod.name.clone(),
                },
            )
        }
        (View::Pod, "delete") => {
            let p = state.drill.pod.as_ref()?;
            (
                p.cluster,
                QuickActionKind::DeletePod {
                    ns: p.namespace.clone(),
                    name: p.name.clone(),
                },
            )
        }
        (View::Pod, "restart") => {
            let p = state.drill.pod.as_ref()?;
            let (wk, name) = p.workload.clone()?;
            (
                p.cluster,
                QuickActionKind::Restart {
                    kind: wk,
                    ns: p.namespace.clone(),
                    name,
                },
            )
        }
        (View::Pod, "exec") => {
            let p = state.drill.pod.as_ref()?;
            let container = p.detail.as_ref()?.default_container()?.to_string();
            (
                p.cluster,
                QuickActionKind::Exec {
                    ns: p.namespace.clone(),
                    pod: p.name.clone(),
                    container,
                },
            )
        }
        (View::Workloads, k) => {
            let w = state.drill.workloads.as_ref()?;
            let row = w.rows.get(w.selected)?;
            let (ns, name) = (row.namespace.clone(), row.name.clone());
            match (k, row.workload_kind()) {
                ("restart", Some(wk)) if row.kind != "CronJob" => {
                    (w.cluster, QuickActionKind::Restart { kind: wk, ns, name })
                }
                ("scale", Some(wk)) if matches!(row.kind, "Deployment" | "StatefulSet") => (
                    w.cluster,
                    QuickActionKind::Scale {
                        kind: wk,
                        ns,
                        name,
                        from: row.desired,
                        to: row.desired,
                    },
                ),
                ("trigger", _) if row.kind == "CronJob" => {
                    (w.cluster, QuickActionKind::TriggerJob { ns, cronjob: name })
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((
        QuickAction {
            kind: k,
            cluster: cluster_of(cluster),
        },
        cluster,
    ))
}

/// What accepting a quick action needs: the workload's name for a scale to 0 (or, on a
/// protected cluster, the cluster's name), the cluster's name for any state change on a
/// protected cluster, else one key.
pub fn quick_proof(action: &QuickAction, protected: bool) -> Proof {
    match &action.kind {
        QuickActionKind::Scale { to: 0, .. } if protected => Proof::Typed(action.cluster.clone()),
        QuickActionKind::Scale { to: 0, name, .. } => Proof::Typed(name.clone()),
        _ if action.needs_typed_confirmation(protected) => Proof::Typed(action.cluster.clone()),
        _ => Proof::Key,
    }
}

/// Asks for a quick action on what is in front (refusing in read-only mode): a scale asks
/// for the count first, everything else opens its confirmation.
pub fn request_quick(state: &mut AppState, kind: &str) -> Vec<Effect> {
    let Some((action, cluster)) = quick_target(state, kind) else {
        state.flash = Some(match kind {
            "restart" => {
                "restart: select a Deployment, StatefulSet or DaemonSet (W), or open a pod of one"
                    .into()
            }
            "scale" => "scale: select a Deployment or StatefulSet in the workloads view (W)".into(),
            "trigger" => "trigger: select a CronJob in the workloads view (W)".into(),
            "exec" => "exec: open a pod first (its detail must have loaded)".into(),
            _ => "select a pod first".into(),
        });
        return vec![];
    };
    let Some(c) = state.clusters.get(cluster) else {
        return vec![];
    };
    if (c.read_only || state.read_only) && action.is_state_changing() {
        state.flash = Some(format!(
            "read-only mode: {} is refused (start opsdeck without --read-only to act)",
            action.audit_name()
        ));
        return vec![];
    }
    let protected = c.protected;
    if matches!(action.kind, QuickActionKind::Scale { .. }) {
        state.drill.count = Some(CountPrompt {
            action,
            protected,
            count: String::new(),
            error: None,
            unusual: None,
        });
        return vec![];
    }
    confirm_quick(state, action, protected);
    vec![]
}

/// Opens the confirmation of exactly `action`.
fn confirm_quick(state: &mut AppState, action: QuickAction, protected: bool) {
    let proof = quick_proof(&action, protected);
    let context = state
        .clusters
        .iter()
        .find(|c| c.name == action.cluster)
        .map(|c| c.context.clone())
        .unwrap_or_default();
    let title = match &proof {
        Proof::Typed(word) if *word == action.cluster => " Confirm: type the cluster name ",
        Proof::Typed(_) => " Confirm: type the workload's name ",
        Proof::Key => " Confirm ",
    };
    let confirmation = match proof {
        Proof::Key => Confirmation::Key,
        Proof::Typed(_) => Confirmation::Typed,
    };
    let described = action.describe();
    let mut lines = vec![described.clone()];
    if let QuickActionKind::Scale { to: 0, .. } = action.kind {
        lines.push(
            "Scaling to 0 stops every pod of it: nothing serves until it is scaled up.".into(),
        );
    }
    let c = Confirm::new(
        title,
        proof,
        Effect::Quick {
            action: action.clone(),
            confirmation,
        },
    )
    .target(ConfirmTarget {
        cluster: action.cluster.clone(),
        context,
        protected,
    })
    .lines(lines)
    .messages(
        format!("cancelled: {described} was not done"),
        format!("declined: {described} was not done"),
    );
    super::confirm::open(state, c);
}

/// Keys while a scale's replica count is typed: digits, backspace, enter (opens the
/// confirmation of that exact count), esc.
pub fn count_key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let Some(mut p) = state.drill.count.take() else {
        return vec![];
    };
    match key.code {
        KeyCode::Esc => {
            state.flash = Some(format!("cancelled: {} was not done", p.action.describe()));
            return vec![];
        }
        _ if key == Key::ctrl('c') => {
            state.flash = Some(format!("cancelled: {} was not done", p.action.describe()));
            return vec![];
        }
        KeyCode::Char(c) if c.is_ascii_digit() && !key.ctrl => {
            if p.count.len() < COUNT_MAX_DIGITS {
                p.count.push(c);
                p.error = None;
            } else {
                p.error = Some(format!(
                    "a replica count has at most {COUNT_MAX_DIGITS} digits"
                ));
            }
        }
        KeyCode::Backspace => {
            p.count.pop();
            p.error = None;
        }
        KeyCode::Enter => match p.count.parse::<i32>() {
            Ok(n) => {
                let ceiling = state
                    .drill
                    .scale_ceiling
                    .unwrap_or(crate::config::DEFAULT_SCALE_CEILING);
                let QuickActionKind::Scale {
                    to,
                    from,
                    kind,
                    name,
                    ..
                } = &mut p.action.kind
                else {
                    return vec![];
                };
                let from = *from;
                let what = format!("scale {}/{name}", kind.as_str().to_lowercase());
                match unusual_scale(from, n, ceiling) {
                    Some(why) if p.unusual != Some(n) => {
                        *to = n;
                        p.error = Some(format!(
                            "{what} from {from} to {n}? that is {why}: type the count again to confirm"
                        ));
                        p.unusual = Some(n);
                        p.count.clear();
                    }
                    _ => {
                        *to = n;
                        confirm_quick(state, p.action, p.protected);
                        return vec![];
                    }
                }
            }
            Err(_) if p.count.is_empty() => {
                p.error = Some("type the new replica count first".into())
            }
            Err(_) => {
                p.error = Some(format!(
                    "{} is not a replica count (at most {}): nothing was accepted",
                    p.count,
                    i32::MAX
                ));
                p.count.clear();
                p.unusual = None;
            }
        },
        _ => {}
    }
    state.drill.count = Some(p);
    vec![]
}

/// Keys while a filter (pods) or a search (logs) is being typed.
pub fn text_key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let done = matches!(key.code, KeyCode::Enter | KeyCode::Esc);
    if let Some(p) = state
        .drill
        .pods
        .as_mut()
        .filter(|p| p.editing.is_some() && matches!(state.view, View::Pods(_)))
    {
        let text = p.editing.get_or_insert_with(String::new);
        match key.code {
            KeyCode::Char(c) if !key.ctrl => text.push(c),
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Esc => text.clear(),
            _ => {}
        }
        let text = text.clone();
        p.table.set_filter(&text);
        if done {
            p.editing = None;
        }
        return vec![];
    }
    if let Some(l) = state.drill.logs.as_mut().filter(|l| l.searching.is_some()) {
        let text = l.searching.get_or_insert_with(String::new);
        match key.code {
            KeyCode::Char(c) if !key.ctrl => text.push(c),
            KeyCode::Backspace => {
                text.pop();
            }
            _ => {}
        }
        l.search = text.clone();
        if done {
            l.searching = None;
            if key.code == KeyCode::Esc {
                l.search.clear();
            }
        }
    }
    vec![]
}

/// Whether keys go to a text being typed (filter or search) rather than to the keymap.
pub fn typing(state: &AppState) -> bool {
    (matches!(state.view, View::Pods(_))
        && state
            .drill
            .pods
            .as_ref()
            .is_some_and(|p| p.editing.is_some()))
        || (state.view == View::Logs
            && state
                .drill
                .logs
                .as_ref()
                .is_some_and(|l| l.searching.is_some()))
}
