//! ArgoCD actions in the console: refresh, sync and rollback of the selected application,
//! each held by the confirmation overlay (the cluster's name typed where
//! `needs_typed_confirmation` says so) and refused in read-only mode.

use super::confirm::{Choice, Confirm, ConfirmTarget, Proof};
use super::state::AppState;
use super::update::Effect;
use crate::model::argocd::{AppSummary, ArgoAction, needs_typed_confirmation};
use crate::runbook::run::Confirmation;

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

/// Opens the confirmation for `action` on the selected application.
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
    let proof = if needs_typed_confirmation(&action, protected) {
        Proof::Typed(c.name.clone())
    } else {
        Proof::Key
    };
    let confirmation = match proof {
        Proof::Key => Confirmation::Key,
        Proof::Typed(_) => Confirmation::Typed,
    };
    let effect = |action: ArgoAction| Effect::Argocd {
        cluster,
        app: app.name.clone(),
        action,
        confirmation,
    };
    let described = action.describe(&app.name);
    let target = ConfirmTarget {
        cluster: c.name.clone(),
        context: c.context.clone(),
        protected,
    };
    let title = match proof {
        Proof::Key => " Confirm ",
        Proof::Typed(_) => " Confirm: type the cluster name ",
    };
    let mut confirm = Confirm::new(title, proof, effect(action))
        .target(target)
        .messages(
            format!("cancelled: {described} was not sent"),
            format!("declined: {described} was not sent"),
        );
    if let ArgoAction::Rollback { id } = action {
        let chosen = history.iter().position(|h| h.0 == id).unwrap_or(0);
        let choices = history
            .iter()
            .map(|(id, rev, when)| Choice {
                label: format!("id {id:<4} {rev:<8} {when}"),
                effect: effect(ArgoAction::Rollback { id: *id }),
            })
            .collect();
        confirm = confirm.choices(choices, chosen);
    }
    super::confirm::open(state, confirm);
    vec![]
}
