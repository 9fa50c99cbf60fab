//! Named actions: what a key can ask for. Keymaps refer to them by name.

use std::fmt;
use std::str::FromStr;

macro_rules! actions {
    ($($variant:ident => $name:literal, $desc:literal;)*) => {
        /// Everything the engineer can ask the console to do with a key.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action { $($variant),* }

        impl Action {
            /// Every action, in help order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The name keymaps use.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name),* }
            }

            /// One line for the help screen.
            pub fn description(self) -> &'static str {
                match self { $(Action::$variant => $desc),* }
            }
        }
    };
}

actions! {
    Quit => "quit", "quit opsdeck";
    Help => "help", "show or hide this help";
    Findings => "findings", "list every finding of every cluster";
    Overview => "overview", "back to the clusters side by side";
    FocusNextCluster => "focus_next_cluster", "next cluster";
    FocusPrevCluster => "focus_prev_cluster", "previous cluster";
    Open => "open", "open the selected cluster or runbook";
    Back => "back", "close the view or overlay";
    ScrollDown => "scroll_down", "scroll down";
    ScrollUp => "scroll_up", "scroll up";
    PageDown => "page_down", "scroll a page down";
    PageUp => "page_up", "scroll a page up";
    Top => "top", "go to the top";
    Bottom => "bottom", "go to the bottom";
    Runbooks => "runbooks", "list the runbooks";
    Forwards => "forwards", "port-forward shortcuts: start/stop, state, bytes";
    CopyUrl => "copy_url", "copy the selected forward's address (OSC 52, works over SSH)";
    PanelPgbouncer => "pgbouncer", "PgBouncer pools of the focused cluster";
    PanelRedis => "redis", "Redis persistence of the focused cluster";
    PanelArgocd => "argocd", "ArgoCD applications of the focused cluster";
    PanelBackups => "backups", "backup ages per destination of the focused cluster";
    Pods => "pods", "the focused cluster's pods table";
    Events => "events", "the focused cluster's warning events";
    Workloads => "workloads", "the focused cluster's workloads";
    Filter => "filter", "filter the pods (text, label=value) or search the log";
    SortNext => "sort_next", "sort the pods by the next column";
    SortReverse => "sort_reverse", "reverse the pods' sort";
    NamespaceNext => "namespace_next", "show the next namespace (then all)";
    Logs => "logs", "follow the selected pod's log";
    LogsPrevious => "logs_previous", "the previous (crashed) container's log";
    Wrap => "wrap", "wrap long log lines";
    DeletePod => "delete_pod", "delete the pod (asks first)";
    Restart => "restart", "rollout restart the workload (asks first)";
    Scale => "scale", "scale the workload (asks the new count)";
    TriggerJob => "trigger_job", "run a Job now from the CronJob (asks first)";
    Exec => "exec", "a shell in the pod's container (asks first)";
    ArgoRefresh => "argo_refresh", "refresh the selected ArgoCD application";
    ArgoHardRefresh => "argo_hard_refresh", "hard-refresh the selected application (regenerate manifests)";
    ArgoSync => "argo_sync", "sync the selected application (asks first)";
    ArgoSyncPrune => "argo_sync_prune", "sync the selected application with prune (asks first)";
    ArgoRollback => "argo_rollback", "roll the selected application back to a chosen history entry (typed)";
    RunStep => "run_step", "run the selected step (asks first)";
    EditStep => "edit_step", "edit the selected step's command, then run it";
    SkipStep => "skip_step", "skip the selected step, with a reason";
    CancelStep => "cancel_step", "cancel the running step (SIGTERM, then SIGKILL)";
    NextTarget => "next_target", "run the runbook against the next cluster";
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
                format!("unknown action {s:?}; known actions: {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_name() {
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>(), Ok(*a));
        }
        assert!(
            "launch_missiles"
                .parse::<Action>()
                .unwrap_err()
                .contains("focus_next_cluster")
        );
    }
}
