//! `manifest`: being written.
