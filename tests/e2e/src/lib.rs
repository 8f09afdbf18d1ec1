//! Test harness for the local control plane.
