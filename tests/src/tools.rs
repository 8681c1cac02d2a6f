//! `tools`: being written.
