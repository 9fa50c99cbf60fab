//! Compact tiles for a cluster column and their full-screen detail views, one file per data
//! panel. Each is a pure function of its snapshot, staleness, size, clock and theme.

pub mod argocd;
pub mod backups;
pub mod pgbouncer;
pub mod redis;
mod text;
