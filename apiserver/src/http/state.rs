//! What every handler shares, as cheap `Arc` clones: the store, the authenticator and
//! authoriser, the discovery documents, the artifact files and the shutdown signal. This module
//! depends on none of the modules that use it, so the router, the REST handlers and discovery
//! all import it without importing each other.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::{Authorizer, RequestAuthenticator};
use crate::rest::discovery::Documents;

/// Shared state: cheap `Arc` clones.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The object store.
    pub store: Arc<dyn storage::ObjectStore>,
    /// Who is calling.
    pub authenticator: Arc<dyn RequestAuthenticator>,
    /// What they may do.
    pub authorizer: Arc<dyn Authorizer>,
    /// Discovery and OpenAPI documents, built once.
    pub documents: Arc<Documents>,
    /// Cancelled when the server shuts down: watches end, new requests get 503.
    pub shutdown: CancellationToken,
    /// Stored artifact files (the `artifact` subresource).
    pub artifacts: storage::ArtifactStore,
    /// With several replicas: where a missing artifact is fetched from (the leader);
    /// `None` with one replica.
    pub peers: Option<Arc<crate::artifacts::peer::Peers>>,
}
