//! `reference`: being written.
