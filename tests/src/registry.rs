//! `registry`: being written.
