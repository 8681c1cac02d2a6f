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

use crate::artifacts::peer::Peers;
use crate::auth::{
    AuthenticatorChain, Authorizer, CertificateAuthenticator, RequestAuthenticator,
    StandaloneAuthorizer, TokenFileAuthenticator,
};
use crate::config::Config;
use crate::controller::events::notification::RetryPolicy;
use crate::controller::events::{EventRecorder, NotificationRecorder};
use crate::controller::{
    ArtifactUrls, Controller, ExponentialBackoff, HelmChartConfig, HelmChartReconciler,
    HelmRepositoryReconciler, LogRecorder, OCIRepositoryReconciler, ReconcilerConfig, SecretStore,
};
use crate::http::router::{RouterConfig, router_with};
use crate::http::state::AppState;
use crate::leader::{LeaderElector, Leadership};
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
    /// Setting up delegated authentication and authorisation failed (in-cluster mode).
    #[error("in-cluster mode")]
    InCluster(#[from] crate::auth::in_cluster::Error),
    /// The `--events-addr` HTTP client could not be built.
    #[error("starting the --events-addr client")]
    EventsClient(#[source] reqwest::Error),
    /// `--sigstore-tuf-root` could not be read.
    #[error("reading --sigstore-tuf-root {path}")]
    ReadSigstoreTufRoot {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--sigstore-tuf-mirror` cannot be used as a TUF repository URL.
    #[error("--sigstore-tuf-mirror")]
    SigstoreTufMirror(#[source] registry::cosign::tuf::RefreshError),
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
    helm_charts: Arc<Controller<HelmChartReconciler>>,
    helm_repositories: Arc<Controller<HelmRepositoryReconciler>>,
    artifact_listener: Option<(TcpListener, ArtifactStore)>,
    delegation: Option<crate::auth::in_cluster::Delegation>,
    /// Leader election (etcd); `None` runs the controllers at once.
    elector: Option<Arc<LeaderElector>>,
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
        let (acceptor, authenticator, authorizer, delegation) =
            authentication(&config, &cert, &key, &bootstrap).await?;

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
        crate::metrics::watch_artifact_store(artifacts.root());
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
        let sigstore_root = sigstore_root(&config).map_err(|e| *e)?;
        let reconciler_config = ReconcilerConfig {
            limits: config.artifact_limits,
            retention_ttl: config.artifact_retention_ttl,
            retention_records: config.artifact_retention_records,
            urls,
            scratch_dir: config.data_dir.join("tmp"),
            interval_jitter: 0.05,
            sigstore_root: sigstore_root.clone(),
        };
        let events: Arc<dyn EventRecorder> = match &config.events_addr {
            Some(addr) => Arc::new(
                NotificationRecorder::start(addr.clone(), RetryPolicy::default())
                    .map_err(Error::EventsClient)?,
            ),
            None => Arc::new(LogRecorder),
        };
        // In-cluster: events.k8s.io/v1 Events too.
        let events: Arc<dyn EventRecorder> = match &delegation {
            Some(delegation) => Arc::new(crate::controller::events::KubeRecorder::start_here(
                delegation.client.clone(),
                events,
            )),
            None => events,
        };
        let tracker = TaskTracker::new();
        // The Sigstore trusted root: cache, then refresh over TUF, in the background.
        tracker.spawn(sigstore_root.run(
            registry::cosign::tuf::REFRESH_INTERVAL,
            shutdown.child_token(),
        ));
        // In-cluster: Secrets and ServiceAccounts from list+watch caches of the cluster.
        let secrets = Arc::new(match &delegation {
            Some(delegation) => {
                let secrets = Arc::new(crate::kube::secrets::SecretCache::new());
                let accounts = Arc::new(crate::kube::service_accounts::ServiceAccountCache::new());
                let client = delegation.client.clone();
                tracker.spawn(secrets.clone().run(client.clone(), shutdown.child_token()));
                tracker.spawn(accounts.clone().run(client, shutdown.child_token()));
                SecretStore::Cluster {
                    secrets,
                    service_accounts: accounts,
                }
            }
            None => SecretStore::new(config.secrets_dir.clone()),
        });
        let helm_charts = Controller::new(
            store.clone(),
            HelmChartReconciler::new(
                store.clone(),
                artifacts.clone(),
                secrets.clone(),
                events.clone(),
                HelmChartConfig {
                    base: reconciler_config.clone(),
                    max_chart_bytes: config.helm_chart_max_size,
                    max_file_bytes: config.helm_chart_file_max_size,
                },
            ),
            config.concurrent,
            ExponentialBackoff::factory(),
        );
        let helm_repositories = Controller::new(
            store.clone(),
            HelmRepositoryReconciler::new(store.clone()).with_chart_requeue({
                let charts = helm_charts.clone();
                Arc::new(move |key| charts.enqueue(key))
            }),
            1,
            ExponentialBackoff::factory(),
        );
        let reconciler = OCIRepositoryReconciler::new(
            store.clone(),
            artifacts.clone(),
            secrets,
            events,
            reconciler_config,
        );
        let controller = Controller::new(
            store.clone(),
            reconciler,
            config.concurrent,
            ExponentialBackoff::factory(),
        );
        // Several replicas on etcd: one leader runs the controllers, the others fetch the
        // artifacts they are asked for from it (docs/high-availability.md).
        let elector = match (&backend, &config.leader_election) {
            (StoreBackend::Etcd(etcd), Some(election)) => Some(LeaderElector::new(
                Arc::new(etcd.leader_lock(&election.name, election.lease_duration)),
                election.clone(),
            )),
            (StoreBackend::Etcd(_), None) => {
                tracing::warn!(
                    "--leader-elect=false: this replica runs the controllers whatever other replicas do"
                );
                None
            }
            (StoreBackend::Sqlite(_), _) => None,
        };
        let peers = elector.as_ref().map(|elector| {
            Peers::new(
                elector.clone(),
                artifacts.clone(),
                store.clone(),
                config.artifact_retention_ttl,
                config.artifact_retention_records,
            )
        });
        let scratch = config.data_dir.join("tmp");
        // Leftovers of a crash: extraction directories are never reused.
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(scratch)).await;
        let state = AppState {
            store: store.clone(),
            authenticator,
            authorizer,
            documents: Arc::new(Documents::build()),
            shutdown,
            artifacts,
            peers,
        };
        Ok(Self {
            config,
            listener,
            acceptor,
            state,
            store: backend,
            tracker,
            local_addr,
            kubeconfig,
            controller,
            helm_charts,
            helm_repositories,
            artifact_listener,
            delegation,
            elector,
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
        let election = self.start_controllers(&shutdown);
        if let Some(reload) = self
            .delegation
            .as_mut()
            .and_then(|d| d.reload(shutdown.child_token()))
        {
            self.tracker.spawn(reload);
        }
        if let Some((listener, store)) = self.artifact_listener.take() {
            self.tracker.spawn(crate::artifacts::artifact_server::serve(
                listener,
                store,
                self.state.peers.clone(),
                shutdown.child_token(),
            ));
        }
        tracing::info!(
            addr = %self.local_addr,
            kubeconfig = %self.kubeconfig.display(),
            data_dir = %self.config.data_dir.display(),
            "serving"
        );
        // In-cluster: NamespaceLifecycle over a watch of the cluster's namespaces.
        let admission: Arc<dyn crate::rest::admission::Admission> = match &self.delegation {
            Some(delegation) => {
                let (lifecycle, watch) =
                    crate::rest::admission::namespace_lifecycle::NamespaceLifecycle::start(
                        delegation.client.clone(),
                        shutdown.child_token(),
                    );
                self.tracker.spawn(watch);
                Arc::new(lifecycle)
            }
            None => Arc::new(crate::rest::admission::NoAdmission),
        };
        let app = router_with(
            self.state.clone(),
            RouterConfig {
                request_timeout: self.config.request_timeout,
                admission,
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
        if let Some((stop, elector)) = election {
            // The controllers have stopped: hand the leader key over at once.
            stop.cancel();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), elector).await;
        }
        if let Err(error) = self.store.close().await {
            tracing::error!(%error, "closing the object store");
        }
        tracing::info!("stopped");
    }
}

impl App {
    /// Starts the controllers: at once with one replica (SQLite, or `--leader-elect=false`),
    /// else once this replica leads. Losing leadership exits the process with status 1, as
    /// client-go's and controller-runtime's managers do: that ends every running reconcile
    /// before the lease can expire (`crate::leader`). Returns the elector's stop token (cancel
    /// once the controllers stopped, to release the key) and task.
    fn start_controllers(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<(CancellationToken, tokio::task::JoinHandle<Leadership>)> {
        let spawn = {
            let (ocirepositories, charts, repositories) = (
                self.controller.clone(),
                self.helm_charts.clone(),
                self.helm_repositories.clone(),
            );
            let (tracker, shutdown) = (self.tracker.clone(), shutdown.clone());
            move || {
                ocirepositories.spawn(&tracker, shutdown.child_token());
                charts.spawn(&tracker, shutdown.child_token());
                repositories.spawn(&tracker, shutdown.child_token());
            }
        };
        let Some(elector) = self.elector.clone() else {
            spawn();
            return None;
        };
        let (mut leading, mut lost) = (elector.subscribe(), elector.subscribe());
        let stop = CancellationToken::new();
        let task = tokio::spawn(elector.run(stop.clone()));
        let shutdown = shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                Ok(_) = leading.wait_for(|l| *l == Leadership::Leading) => spawn(),
            }
        });
        tokio::spawn(async move {
            if lost.wait_for(|l| *l == Leadership::Lost).await.is_ok() {
                tracing::error!("exiting: leadership lost, so no reconcile may run here any more");
                std::process::exit(1);
            }
        });
        Some((stop, task))
    }
}

/// The TLS acceptor, authenticator and authoriser of the configured mode (logged): standalone
/// (the client CA in the handshake, client certificates and the token file, `system:masters`)
/// or in-cluster (delegated to the cluster, [`crate::auth::in_cluster`]).
async fn authentication(
    config: &Config,
    cert: &std::path::Path,
    key: &std::path::Path,
    bootstrap: &crate::auth::pki::Bootstrap,
) -> Result<
    (
        Arc<openssl::ssl::SslAcceptor>,
        Arc<dyn RequestAuthenticator>,
        Arc<dyn Authorizer>,
        Option<crate::auth::in_cluster::Delegation>,
    ),
    Error,
> {
    if config.delegation.mode == crate::config::Mode::InCluster {
        tracing::info!(
            mode = "in-cluster",
            authentication = ?config.delegation.authentication_source,
            authorization = ?config.delegation.authorization_source,
            "delegating authentication and authorisation to the cluster"
        );
        let delegation = crate::auth::in_cluster::Delegation::build(
            &config.delegation,
            config.client_ca_file.as_deref(),
        )
        .await?;
        let acceptor = crate::http::listener::acceptor(cert, key, None).map_err(Error::Tls)?;
        return Ok((
            acceptor,
            delegation.authenticator.clone(),
            delegation.authorizer.clone(),
            Some(delegation),
        ));
    }
    tracing::info!(mode = "standalone", "no cluster configured");
    let client_ca = config
        .client_ca_file
        .clone()
        .unwrap_or_else(|| bootstrap.ca_cert.clone());
    let acceptor =
        crate::http::listener::acceptor(cert, key, Some(&client_ca)).map_err(Error::Tls)?;
    let mut authenticators: Vec<Box<dyn RequestAuthenticator>> =
        vec![Box::new(CertificateAuthenticator)];
    if let Some(path) = &config.token_auth_file {
        authenticators.push(Box::new(
            TokenFileAuthenticator::from_file(path).map_err(Error::TokenFile)?,
        ));
    }
    Ok((
        acceptor,
        Arc::new(AuthenticatorChain(authenticators)),
        Arc::new(StandaloneAuthorizer),
        None,
    ))
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

/// The Sigstore trusted root for keyless verification without `trustedRootSecretRef`: the
/// embedded public-good root, refreshed over TUF from `--sigstore-tuf-mirror` (trust starting
/// from `--sigstore-tuf-root`, cached under `<data-dir>/tuf`) unless the mirror is empty.
fn sigstore_root(config: &Config) -> Result<registry::cosign::TrustedRootProvider, Box<Error>> {
    use registry::cosign::{TrustedRootProvider, TufConfig};
    let Some(tuf) = &config.sigstore_tuf else {
        return Ok(TrustedRootProvider::embedded());
    };
    let mut settings = TufConfig::new(tuf.mirror.clone(), config.data_dir.join("tuf"));
    if let Some(path) = &tuf.root {
        let root = std::fs::read(path).map_err(|source| {
            Box::new(Error::ReadSigstoreTufRoot {
                path: path.clone(),
                source,
            })
        })?;
        settings = settings.with_initial_root(root);
    }
    TrustedRootProvider::new(settings).map_err(|e| Box::new(Error::SigstoreTufMirror(e)))
}
