//! `extract`: being written.
