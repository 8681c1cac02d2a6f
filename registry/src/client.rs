//! `client`: being written.
