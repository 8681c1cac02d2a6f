//! `ignore`: being written.
