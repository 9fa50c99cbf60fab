//! ArgoCD actions in the console: refresh, sync and rollback of the selected application,
//! each held by a confirm modal (typed cluster name where `needs_typed_confirmation` says so)
//! and refused in read-only mode.

use ratatui_textarea::TextArea;

use super::state::AppState;
use super::update::Effect;
use crate::keymap::{Key, KeyCode};
use crate::model::argocd::{AppSummary, ArgoAction, needs_typed_confirmation};
use crate::runbook::run::Confirmation;

/// A pending ArgoCD action, exactly as it will be sent.
#[derive(Debug, Clone)]
pub struct ArgoModal {
    pub cluster: usize,
    pub app: String,
    pub action: ArgoAction,
    /// Rollback targets (history id, revision, deployed), newest first; `choice` indexes it.
    pub history: Vec<(i64, String, String)>,
    pub choice: usize,
    /// The cluster name, typed, when the action needs it.
    pub typed: Option<TextArea<'static>>,
    pub error: Option<String>,
}

/// The applications in the order the view lists them: by name, so the selection never moves
/// under the engineer's cursor while states change (marks show which need attention).
pub fn ordered_apps(state: &AppState, cluster: usize) -> Vec<&AppSummary> {
    let Some(snap) = state
        .clusters
        .get(cluster)
        .and_then(|c| c.argocd.data.as_deref())
    else {
        return vec![];
    };
    let mut apps: Vec<&AppSummary> = snap.apps.iter().collect();
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    apps
}

/// Opens the confirm modal for `action` on the selected application.
pub fn request(state: &mut AppState, cluster: usize, action: ArgoAction) -> Vec<Effect> {
    let Some(c) = state.clusters.get(cluster) else {
        return vec![];
    };
    let (protected, read_only) = (c.protected, c.read_only || state.read_only);
    let Some(app) = ordered_apps(state, cluster)
        .get(state.argo_cursor)
        .map(|a| (*a).clone())
    else {
        state.flash = Some("no application selected".into());
        return vec![];
    };
    if read_only && !matches!(action, ArgoAction::Refresh { .. }) {
        state.flash = Some(format!(
            "refused: {} is read-only; {} was not sent",
            c.name,
            action.describe(&app.name)
        ));
        return vec![];
    }
    let mut history: Vec<(i64, String, String)> = app
        .history
        .iter()
        .map(|h| {
            let when = h
                .deployed_at
                .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default();
            (
                h.id,
                crate::model::argocd::short_revision(&h.revision),
                when,
            )
        })
        .collect();
    history.reverse();
    let action = match action {
        ArgoAction::Rollback { .. } => {
            // The newest entry is what runs now: offer the one before it first.
            let Some((id, ..)) = history.get(1).or(history.first()) else {
                state.flash = Some(format!(
                    "{} has no deployment history to roll back to",
                    app.name
                ));
                return vec![];
            };
            ArgoAction::Rollback { id: *id }
        }
        other => other,
    };
    let choice = match action {
        ArgoAction::Rollback { id } => history.iter().position(|h| h.0 == id).unwrap_or(0),
        _ => 0,
    };
    let typed = needs_typed_confirmation(&action, protected).then(TextArea::default);
    state.argo_modal = Some(ArgoModal {
        cluster,
        app: app.name,
        action,
        history,
        choice,
        typed,
        error: None,
    });
    vec![]
}

/// Keys while the ArgoCD modal is open.
pub fn modal_key(state: &mut AppState, key: Key) -> Vec<Effect> {
    let Some(mut m) = state.argo_modal.take() else {
        return vec![];
    };
    let name = state
        .clusters
        .get(m.cluster)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    if key == Key::plain(KeyCode::Esc) || key == Key::ctrl('c') {
        state.flash = Some(format!(
            "cancelled: {} was not sent",
            m.action.describe(&m.app)
        ));
        return vec![];
    }
    if let ArgoAction::Rollback { .. } = m.action
        && matches!(key.code, KeyCode::Up | KeyCode::Down)
    {
        let n = m.history.len().max(1);
        m.choice = if key.code == KeyCode::Up {
            (m.choice + n - 1) % n
        } else {
            (m.choice + 1) % n
        };
        if let Some((id, ..)) = m.history.get(m.choice) {
            m.action = ArgoAction::Rollback { id: *id };
        }
        state.argo_modal = Some(m);
        return vec![];
    }
    let enter = key == Key::plain(KeyCode::Enter);
    let accept = |m: ArgoModal, confirmation| {
        vec![Effect::Argocd {
            cluster: m.cluster,
            app: m.app,
            action: m.action,
            confirmation,
        }]
    };
    match m.typed.as_mut() {
        None if enter || key == Key::ch('y') => return accept(m, Confirmation::Key),
        None if key == Key::ch('n') => {
            state.flash = Some(format!(
                "declined: {} was not sent",
                m.action.describe(&m.app)
            ));
            return vec![];
        }
        None => {}
        Some(input) if enter => {
            if input.lines().join("").trim() == name {
                return accept(m, Confirmation::Typed);
            }
            m.error = Some(format!("type {name} exactly, or esc to cancel"));
        }
        Some(input) => {
            input.input(super::runbooks::to_input(key));
            m.error = None;
        }
    }
    state.argo_modal = Some(m);
    vec![]
}
