//! Assembles the in-cluster mode's authentication and authorisation from the configuration:
//! the Kubernetes clients, the trust settings (flags, then the ConfigMap read once before
//! serving, unless `--authentication-skip-lookup`), the authenticator chain and the authoriser.
//! [`Delegation::reload`] is the task that keeps the trust settings current.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::authorization::DelegatingAuthorizer;
use crate::auth::client_certificate::X509Authenticator;
use crate::auth::delegating::DelegatingAuthenticator;
use crate::auth::request_header::RequestHeaderAuthenticator;
use crate::auth::subject_access_review::{CacheTtls, SubjectAccessReviewAuthorizer};
use crate::auth::token_review::TokenReviewAuthenticator;
use crate::auth::trust::{self, AuthenticationTrust};
use crate::auth::{Authorizer, RequestAuthenticator};
use crate::config::{ClusterSource, DelegationConfig};
use crate::kube::{Client, ClusterConfig};

/// A failure to set up the in-cluster mode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection settings of a client could not be loaded.
    #[error("loading the Kubernetes connection settings ({source_name})")]
    LoadClusterConfig {
        /// `--kubeconfig <path>` or `service account`.
        source_name: String,
        /// The cause.
        source: crate::kube::config::Error,
    },
    /// A client could not be built.
    #[error("building a Kubernetes client")]
    BuildClient(#[source] crate::kube::Error),
    /// The trust settings could not be built or read.
    #[error("configuring delegated authentication")]
    Trust(#[source] trust::Error),
}

/// The in-cluster mode's parts.
#[derive(Debug)]
pub struct Delegation {
    /// The authentication chain.
    pub authenticator: Arc<dyn RequestAuthenticator>,
    /// The authoriser.
    pub authorizer: Arc<dyn Authorizer>,
    /// A client of the cluster for other uses (namespaces).
    pub client: Client,
    reload: Option<(Arc<AuthenticationTrust>, Client, String)>,
}

fn client(source: &Option<ClusterSource>) -> Result<Client, Error> {
    let source = source.clone().unwrap_or(ClusterSource::ServiceAccount);
    let config = ClusterConfig::load(&source).map_err(|e| Error::LoadClusterConfig {
        source_name: match &source {
            ClusterSource::Kubeconfig(path) => format!("kubeconfig {}", path.display()),
            ClusterSource::ServiceAccount => "service account".into(),
        },
        source: e,
    })?;
    Client::new(&config).map_err(Error::BuildClient)
}

impl Delegation {
    /// Builds the clients and the chain, and reads the ConfigMap once.
    ///
    /// # Errors
    /// [`Error`] naming the step; a ConfigMap that cannot be read (other than missing) stops
    /// the start, as upstream without `--authentication-tolerate-lookup-failure`.
    pub async fn build(
        config: &DelegationConfig,
        client_ca_file: Option<&Path>,
    ) -> Result<Self, Error> {
        let authentication = client(&config.authentication_source)?;
        let authorization = client(&config.authorization_source)?;
        let general = client(&config.cluster_source)?;
        let trust = Arc::new(
            AuthenticationTrust::new(client_ca_file, &config.request_header)
                .map_err(Error::Trust)?,
        );
        let reload = if config.skip_lookup {
            None
        } else {
            let version = trust.load(&authentication).await.map_err(Error::Trust)?;
            Some((trust.clone(), authentication.clone(), version))
        };
        let current = trust.current();
        tracing::info!(
            client_ca = current.client_ca.is_some(),
            requestheader_ca = current.request_header.is_some(),
            allowed_names = ?current.request_header.as_ref().map(|r| &r.allowed_names),
            "delegated authentication configured"
        );
        let authenticator = DelegatingAuthenticator::new(
            vec![
                Box::new(RequestHeaderAuthenticator::new(trust.clone())),
                Box::new(X509Authenticator::new(trust.clone())),
                Box::new(TokenReviewAuthenticator::new(
                    authentication,
                    config.token_cache_ttl,
                )),
            ],
            trust,
        );
        let reviewer = SubjectAccessReviewAuthorizer::new(
            authorization,
            CacheTtls {
                authorized: config.authorized_cache_ttl,
                unauthorized: config.unauthorized_cache_ttl,
            },
        );
        Ok(Self {
            authenticator: Arc::new(authenticator),
            authorizer: Arc::new(DelegatingAuthorizer::new(
                config.always_allow_paths.clone(),
                Box::new(reviewer),
            )),
            client: general,
            reload,
        })
    }

    /// The task that watches the ConfigMap until `shutdown` (none with
    /// `--authentication-skip-lookup`).
    pub fn reload(
        &mut self,
        shutdown: CancellationToken,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let (trust, client, version) = self.reload.take()?;
        Some(trust::watch(trust, client, version, shutdown))
    }
}
