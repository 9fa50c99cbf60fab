//! opsdeck: a terminal operations console for on-call engineers.
//!
//! Data flows one way: sources (tokio tasks) send whole snapshots as events, a pure
//! reducer folds events and actions into `AppState`, and the view renders that state.

pub mod app;
pub mod cli;
pub mod cli_forward;
pub mod cli_runbook;
pub mod config;
pub mod crash;
pub mod doctor;
pub mod drill;
pub mod effects;
pub mod forward;
pub mod init;
pub mod keymap;
pub mod lines;
pub mod model;
pub mod runbook;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sources;
pub mod status;
pub mod tui;
pub mod ui;
