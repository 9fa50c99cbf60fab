//! The console's state and the pure reducer that changes it: events and actions in,
//! state changes and effects out. No I/O here.

pub mod action;
pub mod argocd;
pub mod confirm;
pub mod drill;
pub mod runbooks;
pub mod state;
pub mod update;

pub use action::Action;
pub use state::{AppState, ClusterView, View};
pub use update::{Effect, Event, update};
