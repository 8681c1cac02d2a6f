//! `pki`: being written.
