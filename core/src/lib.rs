//! Kompox core: the API types, compose parsing, rendering, naming and hashing.
//!
//! Everything in this crate is pure: no network, no files, no clock. Callers pass
//! in what the cluster holds and get back values; the servers are thin layers over it.

pub mod api;
pub mod compose;
pub mod dotenv;
pub mod hash;
pub mod naming;
pub mod provider;
pub mod redact;
pub mod render;
#[cfg(test)]
mod test_rng;
pub mod well_known;
