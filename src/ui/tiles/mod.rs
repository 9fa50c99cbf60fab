//! Feature tiles of a cluster column and their full-screen details.

pub mod argocd;
