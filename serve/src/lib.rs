//! Shared HTTPS serving for Kompox servers.
