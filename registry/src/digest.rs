//! `digest`: being written.
