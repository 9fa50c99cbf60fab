//! The simulated fleet.
pub mod seed;
pub mod store;
