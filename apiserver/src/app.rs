//! The running server: [`App::build`] validates and binds everything (bootstrap files, store,
//! TLS, listener) before anything is served; [`App::run`] serves until the shutdown token is
//! cancelled (SIGTERM/SIGINT in `main`), then drains: stop accepting, end watches, let in-flight
//! requests finish within the grace period, close the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{
    AuthenticatorChain, CertificateAuthenticator, MastersAuthorizer, RequestAuthenticator,
    TokenFileAuthenticator,
};
use crate::config::Config;
use crate::controller::{
    ArtifactUrls, Controller, ExponentialBackoff, LogRecorder, OCIRepositoryReconciler,
    ReconcilerConfig, SecretStore,
};
use crate::http::router::{RouterConfig, router_with};
use crate::http::state::AppState;
use crate::rest::discovery::Documents;
use storage::ArtifactStore;

/// A failure to start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the data directory failed.
    #[error("creating data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Creating or reading the certificates failed.
    #[error("standalone bootstrap")]
    Bootstrap(#[from] crate::auth::pki::Error),
    /// The TLS configuration was refused by OpenSSL.
    #[error("configuring TLS")]
    Tls(#[source] openssl::error::ErrorStack),
    /// The token file could not be read.
    #[error("reading --token-auth-file")]
    TokenFile(#[source] crate::auth::TokenFileError),
    /// Opening the object store failed.
    #[error("opening the object store {path}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: storage::Error,
    },
    /// Connecting to the etcd cluster of `--etcd-servers` failed.
    #[error("opening the etcd object store at {endpoints}")]
    EtcdStore {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// The cause.
        source: storage::Error,
    },
    /// Opening the artifact store failed.
    #[error("opening the artifact store in {path}")]
    Artifacts {
        /// The data directory.
        path: PathBuf,
        /// The cause.
        source: storage::Error,
    },
    /// Binding the listen address failed.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A built server, bound and ready to serve.
pub struct App {
    config: Config,
    listener: TcpListener,
    acceptor: Arc<openssl::ssl::SslAcceptor>,
    state: AppState,
    store: StoreBackend,
    tracker: TaskTracker,
    local_addr: SocketAddr,
    kubeconfig: PathBuf,
    controller: Arc<Controller<OCIRepositoryReconciler>>,
    artifact_listener: Option<(TcpListener, ArtifactStore)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("local_addr", &self.local_addr)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Creates the data directory and bootstrap files, opens the store, configures TLS, binds
    /// the listener and writes `<data-dir>/kubeconfig` naming the bound address.
    ///
    /// # Errors
    /// [`Error`] naming the step that failed.
    pub async fn build(config: Config, shutdown: CancellationToken) -> Result<Self, Error> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let data_dir = config.data_dir.clone();
        let sans = config.tls_sans.clone();
        let bootstrap =
            tokio::task::spawn_blocking(move || crate::auth::pki::ensure(&data_dir, &sans))
                .await
                .expect("bootstrap task panicked")?;
        let (cert, key) = config.serving_cert.clone().unwrap_or_else(|| {
            (
                bootstrap.serving.cert.clone(),
                bootstrap.serving.key.clone(),
            )
        });
        let client_ca = config
            .client_ca_file
            .clone()
            .unwrap_or_else(|| bootstrap.ca_cert.clone());
        let acceptor =
            crate::http::listener::acceptor(&cert, &key, &client_ca).map_err(Error::Tls)?;

        let mut authenticators: Vec<Box<dyn RequestAuthenticator>> =
            vec![Box::new(CertificateAuthenticator)];
        if let Some(path) = &config.token_auth_file {
            authenticators.push(Box::new(
                TokenFileAuthenticator::from_file(path).map_err(Error::TokenFile)?,
            ));
        }

        let backend = StoreBackend::open(&config).await?;
        let store = backend.object_store();

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let kubeconfig =
            crate::auth::pki::write_kubeconfig(&config.data_dir, &bootstrap, local_addr)?;

        let data_dir = config.data_dir.clone();
        let artifacts = tokio::task::spawn_blocking(move || ArtifactStore::open(&data_dir))
            .await
            .expect("artifact store task panicked")
            .map_err(|source| Error::Artifacts {
                path: config.data_dir.clone(),
                source,
            })?;
        let artifact_listener = match config.artifact_listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Bind { addr, source })?;
                Some((listener, artifacts.clone()))
            }
            None => None,
        };
        let urls = match &config.artifact_advertise_address {
            Some(addr) => ArtifactUrls::Advertised(addr.clone()),
            None => {
                let mut addr = local_addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                ArtifactUrls::Subresource(format!("https://{addr}"))
            }
        };
        let reconciler = OCIRepositoryReconciler::new(
            store.clone(),
            artifacts.clone(),
            Arc::new(SecretStore::new(config.secrets_dir.clone())),
            Arc::new(LogRecorder),
            ReconcilerConfig {
                limits: config.artifact_limits,
                retention_ttl: config.artifact_retention_ttl,
                retention_records: config.artifact_retention_records,
                urls,
                scratch_dir: config.data_dir.join("tmp"),
                interval_jitter: 0.05,
            },
        );
        let controller = Controller::new(
            store.clone(),
            reconciler,
            config.concurrent,
            ExponentialBackoff::factory(),
        );
        let scratch = config.data_dir.join("tmp");
        // Leftovers of a crash: extraction directories are never reused.
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(scratch)).await;
        let state = AppState {
            store: store.clone(),
            authenticator: Arc::new(AuthenticatorChain(authenticators)),
            authorizer: Arc::new(MastersAuthorizer),
            documents: Arc::new(Documents::build()),
            shutdown,
            artifacts,
        };
        Ok(Self {
            config,
            listener,
            acceptor,
            state,
            store: backend,
            tracker: TaskTracker::new(),
            local_addr,
            kubeconfig,
            controller,
            artifact_listener,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The kubeconfig written for the admin user.
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Serves until the shutdown token is cancelled, then drains and closes the store.
    pub async fn run(mut self) {
        let shutdown = self.state.shutdown.clone();
        self.controller.spawn(&self.tracker, shutdown.child_token());
        if let Some((listener, store)) = self.artifact_listener.take() {
            self.tracker.spawn(crate::artifacts::artifact_server::serve(
                listener,
                store,
                shutdown.child_token(),
            ));
        }
        tracing::info!(
            addr = %self.local_addr,
            kubeconfig = %self.kubeconfig.display(),
            data_dir = %self.config.data_dir.display(),
            "serving"
        );
        let app = router_with(
            self.state.clone(),
            RouterConfig {
                request_timeout: self.config.request_timeout,
                ..RouterConfig::default()
            },
        );
        crate::http::listener::serve(
            self.listener,
            self.acceptor,
            app,
            shutdown.clone(),
            self.tracker.clone(),
        )
        .await;
        tracing::info!("shutting down: draining in-flight requests");
        self.tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_seconds = self.config.shutdown_grace.as_secs(),
                "grace period over; closing remaining connections"
            );
        }
        if let Err(error) = self.store.close().await {
            tracing::error!(%error, "closing the object store");
        }
        tracing::info!("stopped");
    }
}

/// The object store the server runs on: SQLite under `--data-dir` (the default), or the etcd
/// cluster of `--etcd-servers`.
#[derive(Clone, Debug)]
enum StoreBackend {
    Sqlite(Arc<storage::SqliteStore>),
    Etcd(Arc<storage::EtcdStore>),
}

impl StoreBackend {
    async fn open(config: &Config) -> Result<Self, Error> {
        if let Some(etcd) = &config.etcd {
            let endpoints = etcd.endpoints.join(",");
            let store = storage::EtcdStore::open(etcd.clone())
                .await
                .map_err(|source| Error::EtcdStore { endpoints, source })?;
            return Ok(Self::Etcd(store));
        }
        let db = config.data_dir.join("objects.db");
        let store_config = storage::SqliteConfig {
            retention: storage::Retention::Revisions(config.history_revisions),
            ..storage::SqliteConfig::default()
        };
        let store = storage::SqliteStore::open(&db, store_config)
            .await
            .map_err(|source| Error::Store { path: db, source })?;
        Ok(Self::Sqlite(store))
    }

    fn object_store(&self) -> Arc<dyn storage::ObjectStore> {
        match self {
            Self::Sqlite(store) => store.clone(),
            Self::Etcd(store) => store.clone(),
        }
    }

    async fn close(&self) -> storage::Result<()> {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Etcd(store) => store.close().await,
        }
    }
}
