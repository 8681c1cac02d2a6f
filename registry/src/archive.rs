//! `archive`: being written.
