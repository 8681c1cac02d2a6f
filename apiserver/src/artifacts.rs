//! Artifact downloads: everything that serves a stored artifact file lives in
//! [`artifact_server`], used by both ways of downloading one: the authorised `artifact`
//! subresource (`GET .../ocirepositories/<name>/artifact`, routed by [`crate::rest`]) and the
//! plain-HTTP artifact listener (`--artifact-listen`) laid out as Flux's file server.

pub mod artifact_server;
pub mod peer;
