//! `artifact`: being written.
