//! Command-line flags and the validated configuration made from them.
//!
//! Three layers, as STYLE.md §6 describes: [`Flags`] holds what the user typed, [`Config`] is
//! validated plain data with documented defaults, and [`crate::app::App`] (made by
//! `App::build`) binds sockets and opens the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// `source-apiserver`: the Flux source API (`source.toolkit.fluxcd.io`) served as a Kubernetes
/// API server, with objects kept in SQLite.
#[derive(Debug, Parser)]
#[command(name = "source-apiserver", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Flags {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options (also accepted without the `serve` word).
    #[command(flatten)]
    pub serve: ServeFlags,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve(ServeFlags),
}

/// Output format of the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Flags of `source-apiserver serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeFlags {
    /// Directory for the database, artifacts, certificates and the generated kubeconfig.
    #[arg(
        long,
        default_value = "./.source-apiserver",
        env = "SOURCE_APISERVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Address of the HTTPS listener (port 0 picks a free port; the kubeconfig names the bound one).
    #[arg(long, default_value = "127.0.0.1:9443")]
    pub listen: SocketAddr,
    /// Directory of Kubernetes `Secret` manifests used in standalone mode. Default `<data-dir>/secrets`.
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
    /// Extra subject alternative name (DNS name or IP address) for the generated serving certificate. Repeatable.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// Serving certificate (PEM) to use instead of generating one. Needs `--tls-private-key-file`.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// CA bundle (PEM) that signs client certificates. Default: the generated CA.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// Static bearer tokens, a CSV file of `token,user,uid,"group1,group2"` lines (kube-apiserver's `--token-auth-file` format).
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds that SIGTERM waits for in-flight requests before exiting.
    #[arg(long, default_value_t = 30)]
    pub shutdown_grace_seconds: u64,
    /// How long a request other than a watch or an artifact download may take before it is
    /// answered 504, as a Go duration (kube-apiserver's `--request-timeout`).
    #[arg(long, default_value = "60s")]
    pub request_timeout: String,
    /// Number of revisions of history kept for watches and continue tokens.
    #[arg(long, default_value_t = 100_000)]
    pub history_revisions: u64,
    /// Number of OCIRepositories reconciled at the same time (Flux's `--concurrent`). Default
    /// 16 (issue 14, `bench/README.md`): a reconcile mostly waits for the registry and for its
    /// two group commits, so more workers share each fsync; 1,000 objects over 50 artifacts were
    /// Ready in 0.6-0.8x the floor with 16 against 0.9-1.0x with 4, at +6-8 MiB peak RSS.
    #[arg(long, default_value_t = 16)]
    pub concurrent: usize,
    /// Largest artifact accepted, in bytes: the layer blob and the total size of its extracted
    /// files (Flux has no limit). Default 1 GiB.
    #[arg(long, default_value_t = registry::extract::DEFAULT_MAX_SIZE_BYTES)]
    pub artifact_max_size: u64,
    /// Largest number of entries (files and directories) an artifact may extract to (Flux has
    /// no limit).
    #[arg(long, default_value_t = registry::extract::DEFAULT_MAX_FILES)]
    pub artifact_max_files: u64,
    /// How long superseded artifacts are kept before garbage collection, as a Go duration
    /// (Flux's `--artifact-retention-ttl`).
    #[arg(long, default_value = "60s")]
    pub artifact_retention_ttl: String,
    /// How many artifacts (the current one included) are kept per object (Flux's
    /// `--artifact-retention-records`).
    #[arg(long, default_value_t = 2)]
    pub artifact_retention_records: usize,
    /// Also serve artifacts over plain HTTP, without authentication, on this address, at Flux's
    /// paths (`/ocirepository/<namespace>/<name>/<file>`). Off by default.
    #[arg(long)]
    pub artifact_listen: Option<SocketAddr>,
    /// `host:port` that consumers use to reach `--artifact-listen` (Flux's `--storage-adv-addr`).
    /// With it `status.artifact.url` is `http://<host:port>/ocirepository/<namespace>/<name>/<file>`;
    /// without it, the `artifact` subresource URL of this server.
    #[arg(long)]
    pub artifact_advertise_address: Option<String>,
    /// Largest Helm chart archive a HelmChart pulls, in bytes (Flux's `--helm-chart-max-size`,
    /// 10 MiB), refused before the download when the manifest says so, else while streaming.
    #[arg(long, default_value_t = registry::helm::DEFAULT_MAX_CHART_BYTES)]
    pub helm_chart_max_size: u64,
    /// Largest file inside a Helm chart, in bytes (Flux's `--helm-chart-file-max-size`, 5 MiB).
    #[arg(long, default_value_t = registry::helm::DEFAULT_MAX_CHART_FILE_BYTES)]
    pub helm_chart_file_max_size: u64,
    /// In-cluster (aggregated) mode: delegated authentication and authorisation.
    #[command(flatten)]
    pub delegation: DelegationFlags,
    /// Flux's notification-controller address (Flux's `--events-addr`, e.g.
    /// `http://notification-controller.flux-system.svc.cluster.local./`): Normal and Warning
    /// events are also POSTed there, as Flux's controllers do. Off by default (events are
    /// logged).
    #[arg(long)]
    pub events_addr: Option<String>,
    /// The etcd backend (`--etcd-*`); SQLite under `--data-dir` without `--etcd-servers`.
    #[command(flatten)]
    pub etcd: EtcdFlags,
    /// Leader election between replicas on one etcd prefix (`--leader-elect*`).
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
    /// The Sigstore trusted root refreshed over TUF (`--sigstore-tuf-*`).
    #[command(flatten)]
    pub sigstore_tuf: SigstoreTufFlags,
}

/// Validated configuration. Plain data: no sockets, no handles.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory owning every file the server writes.
    pub data_dir: PathBuf,
    /// HTTPS listen address.
    pub listen: SocketAddr,
    /// Directory of Secret manifests (standalone mode).
    pub secrets_dir: PathBuf,
    /// Extra SANs for the generated serving certificate.
    pub tls_sans: Vec<String>,
    /// User-provided serving certificate and key; `None` generates them under `<data-dir>/pki`.
    pub serving_cert: Option<(PathBuf, PathBuf)>,
    /// User-provided client CA; `None` uses the generated CA.
    pub client_ca_file: Option<PathBuf>,
    /// Static token file.
    pub token_auth_file: Option<PathBuf>,
    /// Log format.
    pub log_format: LogFormat,
    /// How long SIGTERM waits for in-flight requests (default 30 s).
    pub shutdown_grace: Duration,
    /// Timeout of requests other than watches and artifact downloads (default 60 s).
    pub request_timeout: Duration,
    /// Revisions kept for watch and continue tokens (default 100,000).
    pub history_revisions: u64,
    /// Concurrent reconciles (default 4, at least 1).
    pub concurrent: usize,
    /// Artifact size (bytes, default 1 GiB) and entry-count (default 100,000) limits.
    pub artifact_limits: registry::Limits,
    /// Age after which superseded artifacts are collected (default 60 s).
    pub artifact_retention_ttl: Duration,
    /// Artifacts kept per object, the current one included (default 2).
    pub artifact_retention_records: usize,
    /// Plain-HTTP artifact listener address; `None` (the default) serves none.
    pub artifact_listen: Option<SocketAddr>,
    /// `host:port` advertised in `status.artifact.url`; `None` advertises the subresource URL.
    pub artifact_advertise_address: Option<String>,
    /// Largest Helm chart archive, in bytes (default 10 MiB).
    pub helm_chart_max_size: u64,
    /// Largest file inside a Helm chart, in bytes (default 5 MiB).
    pub helm_chart_file_max_size: u64,
    /// Standalone or in-cluster, and the delegated authentication and authorisation settings.
    pub delegation: DelegationConfig,
    /// Where events are also posted (`--events-addr`, an `http(s)://` URL); `None` only logs.
    pub events_addr: Option<url::Url>,
    /// The etcd cluster to keep objects in; `None` (the default) keeps them in SQLite at
    /// `<data-dir>/objects.db`.
    pub etcd: Option<storage::EtcdConfig>,
    /// Leader election (on etcd with `--leader-elect`, the default); `None` runs the
    /// controllers at once: SQLite (one replica, always the leader) or `--leader-elect=false`.
    pub leader_election: Option<crate::leader::ElectionConfig>,
    /// Where keyless verification without `trustedRootSecretRef` refreshes the Sigstore trusted
    /// root from; `None` (`--sigstore-tuf-mirror ''`) keeps the embedded public-good root.
    pub sigstore_tuf: Option<SigstoreTufConfig>,
}

/// A flag combination that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file named by a flag does not exist.
    #[error("{flag}: {path} does not exist")]
    MissingFile {
        /// The flag, e.g. `--tls-cert-file`.
        flag: &'static str,
        /// The path given.
        path: PathBuf,
    },
    /// A flag value is out of range or unparsable.
    #[error("{flag}: {message}")]
    InvalidValue {
        /// The flag, e.g. `--artifact-retention-ttl`.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ServeFlags {
    /// Validates the flags. Parsing does not act: nothing is created or bound here.
    ///
    /// # Errors
    /// [`Error::MissingFile`] when a file flag names a file that does not exist.
    pub fn into_config(self) -> Result<Config, Error> {
        let check = |flag: &'static str, path: &Option<PathBuf>| match path {
            Some(p) if !p.exists() => Err(Error::MissingFile {
                flag,
                path: p.clone(),
            }),
            _ => Ok(()),
        };
        check("--tls-cert-file", &self.tls_cert_file)?;
        check("--tls-private-key-file", &self.tls_private_key_file)?;
        check("--client-ca-file", &self.client_ca_file)?;
        check("--token-auth-file", &self.token_auth_file)?;
        let invalid = |flag: &'static str, message: String| Error::InvalidValue { flag, message };
        if self.concurrent == 0 {
            return Err(invalid("--concurrent", "must be at least 1".into()));
        }
        if self.artifact_retention_records == 0 {
            return Err(invalid(
                "--artifact-retention-records",
                "must be at least 1".into(),
            ));
        }
        let artifact_retention_ttl = openapi::parse_go_duration(&self.artifact_retention_ttl)
            .map_err(|e| invalid("--artifact-retention-ttl", e.to_string()))?;
        let request_timeout = openapi::parse_go_duration(&self.request_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                invalid(
                    "--request-timeout",
                    format!("{:?} is not a positive duration", self.request_timeout),
                )
            })?;
        if let Some(addr) = &self.artifact_advertise_address {
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok || addr.contains('/') {
                return Err(invalid(
                    "--artifact-advertise-address",
                    format!("{addr:?} is not host:port"),
                ));
            }
        }
        let delegation = self.delegation.into_config(&ProcessEnvironment)?;
        let listen = delegation.listen(self.listen);
        let events_addr = match &self.events_addr {
            None => None,
            Some(addr) => Some(
                url::Url::parse(addr)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        invalid("--events-addr", format!("{addr:?} is not an http(s) URL"))
                    })?,
            ),
        };
        let etcd = self.etcd.into_config()?;
        let leader_election = self
            .leader_election
            .into_config(etcd.is_some(), self.artifact_listen.is_some())?;
        let secrets_dir = self
            .secrets_dir
            .unwrap_or_else(|| self.data_dir.join("secrets"));
        let sigstore_tuf = self.sigstore_tuf.into_config()?;
        Ok(Config {
            serving_cert: self.tls_cert_file.zip(self.tls_private_key_file),
            data_dir: self.data_dir,
            listen,
            secrets_dir,
            tls_sans: self.tls_sans,
            client_ca_file: self.client_ca_file,
            token_auth_file: self.token_auth_file,
            log_format: self.log_format,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_seconds),
            request_timeout,
            history_revisions: self.history_revisions,
            concurrent: self.concurrent,
            artifact_limits: registry::Limits {
                max_size_bytes: self.artifact_max_size,
                max_files: self.artifact_max_files,
            },
            artifact_retention_ttl,
            artifact_retention_records: self.artifact_retention_records,
            artifact_listen: self.artifact_listen,
            artifact_advertise_address: self.artifact_advertise_address,
            helm_chart_max_size: self.helm_chart_max_size,
            helm_chart_file_max_size: self.helm_chart_file_max_size,
            delegation,
            events_addr,
            etcd,
            leader_election,
            sigstore_tuf,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The Sigstore trusted root refreshed over TUF (`registry::cosign::tuf`, docs/signing.md).
// ---------------------------------------------------------------------------------------------

/// Flags of the TUF refresh of the Sigstore trusted root used by keyless verification without
/// `trustedRootSecretRef` (and by keyless HelmCharts).
#[derive(Clone, Debug, clap::Args)]
pub struct SigstoreTufFlags {
    /// TUF repository the Sigstore trusted root (`trusted_root.json` target) is refreshed from,
    /// at start-up in the background and then every 24 h (cached under `<data-dir>/tuf`).
    /// Empty: no refresh, the root embedded in this build is used.
    #[arg(long, default_value = registry::cosign::tuf::PUBLIC_GOOD_TUF_MIRROR, value_name = "URL")]
    pub sigstore_tuf_mirror: String,
    /// Initial TUF root metadata (`root.json`) the chain of trust starts from, for a private
    /// Sigstore deployment. Default: the public-good root embedded in this build.
    #[arg(long, value_name = "FILE")]
    pub sigstore_tuf_root: Option<PathBuf>,
}

/// Validated TUF refresh settings.
#[derive(Clone, Debug)]
pub struct SigstoreTufConfig {
    /// The TUF repository (`http(s)://`).
    pub mirror: url::Url,
    /// `--sigstore-tuf-root`; `None` starts from the embedded public-good `root.json`.
    pub root: Option<PathBuf>,
}

impl SigstoreTufFlags {
    /// Validates the flags: `None` when the mirror is empty (refresh off).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a mirror that is not an `http(s)://` URL, or a root with an
    /// empty mirror; [`Error::MissingFile`] for a root file that does not exist.
    pub fn into_config(self) -> Result<Option<SigstoreTufConfig>, Error> {
        if self.sigstore_tuf_mirror.is_empty() {
            return match self.sigstore_tuf_root {
                Some(_) => Err(Error::InvalidValue {
                    flag: "--sigstore-tuf-root",
                    message: "needs a --sigstore-tuf-mirror".into(),
                }),
                None => Ok(None),
            };
        }
        let mirror = url::Url::parse(&self.sigstore_tuf_mirror)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| Error::InvalidValue {
                flag: "--sigstore-tuf-mirror",
                message: format!("{:?} is not an http(s) URL", self.sigstore_tuf_mirror),
            })?;
        if let Some(path) = self.sigstore_tuf_root.as_ref().filter(|p| !p.exists()) {
            return Err(Error::MissingFile {
                flag: "--sigstore-tuf-root",
                path: path.clone(),
            });
        }
        Ok(Some(SigstoreTufConfig {
            mirror,
            root: self.sigstore_tuf_root,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// In-cluster (aggregated) mode: k8s.io/apiserver's delegated authentication and authorisation
// flags (`pkg/server/options/authentication.go`, `authorization.go`), with their names,
// defaults and meanings.
// ---------------------------------------------------------------------------------------------

/// Where the service-account token of a pod is mounted (client-go's `rest.InClusterConfig`).
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Flags of the in-cluster mode.
#[derive(Clone, Debug, clap::Args)]
pub struct DelegationFlags {
    /// kubeconfig of the Kubernetes API this server delegates to (TokenReview,
    /// SubjectAccessReview, the extension-apiserver-authentication ConfigMap). Setting it
    /// selects the in-cluster mode; without it, the pod's service account does when
    /// KUBERNETES_SERVICE_HOST is set and its token is mounted.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig for TokenReview and the ConfigMap lookup. Default: `--kubeconfig`, else the
    /// pod's service account.
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// kubeconfig for SubjectAccessReview. Default: `--kubeconfig`, else the pod's service
    /// account.
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Do not read `kube-system/extension-apiserver-authentication`; only the flags configure
    /// client certificates and front-proxy headers.
    #[arg(long)]
    pub authentication_skip_lookup: bool,
    /// CA bundle (PEM) that signs the front proxy's client certificate. Default: the
    /// ConfigMap's `requestheader-client-ca-file`.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names the front proxy's certificate may have (comma-separated); empty allows any
    /// name signed by the requestheader CA.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    /// Headers holding the user name, first non-empty wins.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-User")]
    pub requestheader_username_headers: Vec<String>,
    /// Headers holding the groups (every value of every header).
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Group")]
    pub requestheader_group_headers: Vec<String>,
    /// Headers holding the user's uid, first non-empty wins (kube 1.32+, feature gate
    /// `RemoteRequestHeaderUID`; the ConfigMap's `requestheader-uid-headers` when it has them).
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Uid")]
    pub requestheader_uid_headers: Vec<String>,
    /// Header prefixes of the user's extra attributes.
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Non-resource paths allowed without a SubjectAccessReview (a trailing `*` matches a
    /// prefix), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
    /// How long TokenReview answers are cached (Go duration).
    #[arg(long, default_value = "10s")]
    pub authentication_token_webhook_cache_ttl: String,
    /// How long allowing SubjectAccessReview answers are cached (Go duration).
    #[arg(long, default_value = "10s")]
    pub authorization_webhook_cache_authorized_ttl: String,
    /// How long denying SubjectAccessReview answers are cached (Go duration).
    #[arg(long, default_value = "10s")]
    pub authorization_webhook_cache_unauthorized_ttl: String,
    /// kube's name for the port of `--listen` (overrides it).
    #[arg(long)]
    pub secure_port: Option<u16>,
    /// kube's name for the address of `--listen` (overrides it).
    #[arg(long)]
    pub bind_address: Option<std::net::IpAddr>,
}

/// The two ways to run (DESIGN.md §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No cluster: the generated PKI, client certificates and `system:masters`.
    Standalone,
    /// Aggregated behind kube-apiserver: delegated authentication and authorisation.
    InCluster,
}

/// Where a Kubernetes API client gets its connection and credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterSource {
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT`, the mounted token and CA).
    ServiceAccount,
}

/// Front-proxy request-header settings given by flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeaderFlags {
    /// `--requestheader-client-ca-file`; `None` takes the ConfigMap's (and its header names).
    pub client_ca_file: Option<PathBuf>,
    /// `--requestheader-allowed-names`.
    pub allowed_names: Vec<String>,
    /// `--requestheader-username-headers` (default `X-Remote-User`).
    pub username_headers: Vec<String>,
    /// `--requestheader-group-headers` (default `X-Remote-Group`).
    pub group_headers: Vec<String>,
    /// `--requestheader-uid-headers` (default `X-Remote-Uid`).
    pub uid_headers: Vec<String>,
    /// `--requestheader-extra-headers-prefix` (default `X-Remote-Extra-`).
    pub extra_headers_prefix: Vec<String>,
}

/// Validated in-cluster settings.
#[derive(Clone, Debug)]
pub struct DelegationConfig {
    /// The mode chosen: in-cluster when any kubeconfig flag is set or the pod's service
    /// account exists.
    pub mode: Mode,
    /// Client for TokenReview and the ConfigMap (in-cluster mode only).
    pub authentication_source: Option<ClusterSource>,
    /// Client for SubjectAccessReview (in-cluster mode only).
    pub authorization_source: Option<ClusterSource>,
    /// Client for everything else, e.g. namespaces (in-cluster mode only).
    pub cluster_source: Option<ClusterSource>,
    /// `--authentication-skip-lookup`.
    pub skip_lookup: bool,
    /// Front-proxy settings from flags.
    pub request_header: RequestHeaderFlags,
    /// `--authorization-always-allow-paths` (default `/healthz`, `/readyz`, `/livez`).
    pub always_allow_paths: Vec<String>,
    /// TokenReview cache TTL (default 10 s).
    pub token_cache_ttl: Duration,
    /// SubjectAccessReview allow cache TTL (default 10 s).
    pub authorized_cache_ttl: Duration,
    /// SubjectAccessReview deny cache TTL (default 10 s).
    pub unauthorized_cache_ttl: Duration,
    secure_port: Option<u16>,
    bind_address: Option<std::net::IpAddr>,
}

/// Reads the process environment; a trait so tests inject values (STYLE.md §6).
pub trait Environment {
    /// The variable's value, `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
    /// Whether a file exists.
    fn file_exists(&self, path: &std::path::Path) -> bool;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn file_exists(&self, path: &std::path::Path) -> bool {
        path.exists()
    }
}

impl DelegationFlags {
    /// Validates the flags and chooses the mode from them and `env`.
    ///
    /// # Errors
    /// [`Error::MissingFile`] for a kubeconfig or CA file that does not exist,
    /// [`Error::InvalidValue`] for a TTL that is not a Go duration.
    pub fn into_config(self, env: &dyn Environment) -> Result<DelegationConfig, Error> {
        for (flag, path) in [
            ("--kubeconfig", &self.kubeconfig),
            (
                "--authentication-kubeconfig",
                &self.authentication_kubeconfig,
            ),
            ("--authorization-kubeconfig", &self.authorization_kubeconfig),
            (
                "--requestheader-client-ca-file",
                &self.requestheader_client_ca_file,
            ),
        ] {
            if let Some(path) = path.as_ref().filter(|p| !env.file_exists(p)) {
                return Err(Error::MissingFile {
                    flag,
                    path: path.clone(),
                });
            }
        }
        let ttl = |flag: &'static str, value: &str| {
            openapi::parse_go_duration(value).map_err(|e| Error::InvalidValue {
                flag,
                message: e.to_string(),
            })
        };
        let in_pod = env.var("KUBERNETES_SERVICE_HOST").is_some()
            && env.file_exists(std::path::Path::new(SERVICE_ACCOUNT_TOKEN));
        let general = self
            .kubeconfig
            .clone()
            .map(ClusterSource::Kubeconfig)
            .or(in_pod.then_some(ClusterSource::ServiceAccount));
        let pick = |specific: Option<PathBuf>| {
            specific
                .map(ClusterSource::Kubeconfig)
                .or_else(|| general.clone())
        };
        let authentication_source = pick(self.authentication_kubeconfig);
        let authorization_source = pick(self.authorization_kubeconfig);
        let mode = if general.is_some()
            || authentication_source.is_some()
            || authorization_source.is_some()
        {
            Mode::InCluster
        } else {
            Mode::Standalone
        };
        let cluster_source = general
            .or_else(|| authentication_source.clone())
            .or_else(|| authorization_source.clone());
        Ok(DelegationConfig {
            mode,
            authentication_source,
            authorization_source,
            cluster_source,
            skip_lookup: self.authentication_skip_lookup,
            request_header: RequestHeaderFlags {
                client_ca_file: self.requestheader_client_ca_file,
                allowed_names: self.requestheader_allowed_names,
                username_headers: self.requestheader_username_headers,
                group_headers: self.requestheader_group_headers,
                uid_headers: self.requestheader_uid_headers,
                extra_headers_prefix: self.requestheader_extra_headers_prefix,
            },
            always_allow_paths: self.authorization_always_allow_paths,
            token_cache_ttl: ttl(
                "--authentication-token-webhook-cache-ttl",
                &self.authentication_token_webhook_cache_ttl,
            )?,
            authorized_cache_ttl: ttl(
                "--authorization-webhook-cache-authorized-ttl",
                &self.authorization_webhook_cache_authorized_ttl,
            )?,
            unauthorized_cache_ttl: ttl(
                "--authorization-webhook-cache-unauthorized-ttl",
                &self.authorization_webhook_cache_unauthorized_ttl,
            )?,
            secure_port: self.secure_port,
            bind_address: self.bind_address,
        })
    }
}

impl DelegationConfig {
    /// `--listen` with `--bind-address` and `--secure-port` applied.
    pub fn listen(&self, mut listen: SocketAddr) -> SocketAddr {
        if let Some(ip) = self.bind_address {
            listen.set_ip(ip);
        }
        if let Some(port) = self.secure_port {
            listen.set_port(port);
        }
        listen
    }
}
// ------------------------------------- end of in-cluster flags -------------------------------

/// The etcd backend's flags, with kube-apiserver's names. Without `--etcd-servers` the server
/// keeps its objects in SQLite under `--data-dir`.
#[derive(Clone, Debug, clap::Args)]
pub struct EtcdFlags {
    /// etcd client URLs (`http://host:2379` or `https://...`), comma-separated or repeated;
    /// keeps objects in that etcd cluster instead of SQLite, so several replicas can share them.
    #[arg(long, value_delimiter = ',')]
    pub etcd_servers: Vec<String>,
    /// Key prefix of every object in etcd.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// CA bundle (PEM) that verifies the etcd members' serving certificates.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate (PEM) presented to etcd. Needs `--etcd-keyfile`.
    #[arg(long, requires = "etcd_keyfile")]
    pub etcd_certfile: Option<PathBuf>,
    /// Private key (PEM) of `--etcd-certfile`.
    #[arg(long, requires = "etcd_certfile")]
    pub etcd_keyfile: Option<PathBuf>,
    /// Interval of the compaction of etcd's history, as a Go duration; `0` disables it (as
    /// kube-apiserver's flag of the same name). Replicas coordinate, so the cluster is
    /// compacted once per interval.
    #[arg(long, default_value = "5m")]
    pub etcd_compaction_interval: String,
}

impl EtcdFlags {
    /// The etcd configuration, or `None` without `--etcd-servers`.
    ///
    /// # Errors
    /// [`Error::MissingFile`] for a TLS file that does not exist; [`Error::InvalidValue`] for
    /// a server that is not an `http(s)://` URL or an unparsable compaction interval.
    pub fn into_config(self) -> Result<Option<storage::EtcdConfig>, Error> {
        let servers: Vec<String> = self
            .etcd_servers
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Ok(None);
        }
        let invalid = |flag: &'static str, message: String| Error::InvalidValue { flag, message };
        if let Some(bad) = servers
            .iter()
            .find(|s| !s.starts_with("http://") && !s.starts_with("https://"))
        {
            return Err(invalid(
                "--etcd-servers",
                format!("{bad:?} is not an http:// or https:// URL"),
            ));
        }
        for (flag, path) in [
            ("--etcd-cafile", &self.etcd_cafile),
            ("--etcd-certfile", &self.etcd_certfile),
            ("--etcd-keyfile", &self.etcd_keyfile),
        ] {
            if let Some(p) = path.as_ref().filter(|p| !p.exists()) {
                return Err(Error::MissingFile {
                    flag,
                    path: p.clone(),
                });
            }
        }
        let compaction_interval = openapi::parse_go_duration(&self.etcd_compaction_interval)
            .map_err(|e| invalid("--etcd-compaction-interval", e.to_string()))?;
        Ok(Some(storage::EtcdConfig {
            prefix: self.etcd_prefix,
            tls: storage::EtcdTls {
                ca_file: self.etcd_cafile,
                cert_file: self.etcd_certfile,
                key_file: self.etcd_keyfile,
            },
            compaction_interval,
            ..storage::EtcdConfig::new(servers)
        }))
    }
}

/// Leader election, with kube-controller-manager's flag names and client-go's defaults
/// (`k8s.io/component-base/config/options` `BindLeaderElectionFlags`). It applies on etcd
/// only: with SQLite the single replica always leads.
#[derive(Clone, Debug, clap::Args)]
pub struct LeaderElectionFlags {
    /// Elect one leader among the replicas on one etcd prefix: only it runs the controllers;
    /// every replica serves the API. `--leader-elect=false` runs the controllers on every
    /// replica (one replica only!). Ignored with SQLite.
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// TTL of the leader's etcd lease: how long after the leader's last renewal another
    /// replica may take over (Go duration).
    #[arg(long, default_value = "15s")]
    pub leader_elect_lease_duration: String,
    /// How long the leader retries renewing before it gives up leadership and exits; shorter
    /// than the lease duration (Go duration).
    #[arg(long, default_value = "10s")]
    pub leader_elect_renew_deadline: String,
    /// Interval between tries to acquire or renew leadership (Go duration).
    #[arg(long, default_value = "2s")]
    pub leader_elect_retry_period: String,
    /// Name of the leader key (`<etcd-prefix>/leaderelection/<name>`).
    #[arg(long, default_value = "source-apiserver")]
    pub leader_elect_resource_name: String,
    /// `http://host:port` at which the other replicas reach this replica's `--artifact-listen`
    /// (in a pod: `http://$(POD_IP):9090`). Recorded while this replica leads; the others
    /// fetch artifacts they do not hold from it. Needs `--artifact-listen`.
    #[arg(long)]
    pub peer_advertise_address: Option<String>,
}

impl LeaderElectionFlags {
    /// The election configuration, `None` without etcd or with `--leader-elect=false`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for an unparsable duration, durations out of client-go's order
    /// (lease duration > renew deadline > 1.2 × retry period), a peer address that is not an
    /// `http(s)://` URL, or one without `--artifact-listen`.
    pub fn into_config(
        self,
        etcd: bool,
        artifact_listen: bool,
    ) -> Result<Option<crate::leader::ElectionConfig>, Error> {
        let invalid = |flag: &'static str, message: String| Error::InvalidValue { flag, message };
        let duration = |flag: &'static str, value: &str| {
            openapi::parse_go_duration(value)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| invalid(flag, format!("{value:?} is not a positive duration")))
        };
        let lease_duration = duration(
            "--leader-elect-lease-duration",
            &self.leader_elect_lease_duration,
        )?;
        let renew_deadline = duration(
            "--leader-elect-renew-deadline",
            &self.leader_elect_renew_deadline,
        )?;
        let retry_period = duration(
            "--leader-elect-retry-period",
            &self.leader_elect_retry_period,
        )?;
        if lease_duration <= renew_deadline {
            return Err(invalid(
                "--leader-elect-lease-duration",
                "must be greater than --leader-elect-renew-deadline".into(),
            ));
        }
        if renew_deadline <= retry_period.mul_f64(1.2) {
            return Err(invalid(
                "--leader-elect-renew-deadline",
                "must be greater than 1.2 × --leader-elect-retry-period".into(),
            ));
        }
        if let Some(addr) = &self.peer_advertise_address {
            if url::Url::parse(addr)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .is_none()
            {
                return Err(invalid(
                    "--peer-advertise-address",
                    format!("{addr:?} is not an http(s)://host:port URL"),
                ));
            }
            if !artifact_listen {
                return Err(invalid(
                    "--peer-advertise-address",
                    "needs --artifact-listen: the peers fetch artifacts from it".into(),
                ));
            }
        }
        if !etcd || !self.leader_elect {
            return Ok(None);
        }
        Ok(Some(crate::leader::ElectionConfig {
            name: self.leader_elect_resource_name,
            lease_duration,
            renew_deadline,
            retry_period,
            identity: crate::leader::default_identity(),
            peer_address: self.peer_advertise_address,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_consistent() {
        Flags::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_defaults_match_the_docs() {
        let flags = Flags::try_parse_from(["source-apiserver"]).unwrap();
        assert!(flags.command.is_none());
        let config = flags.serve.into_config().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9443");
        assert_eq!(config.data_dir, PathBuf::from("./.source-apiserver"));
        assert_eq!(
            config.secrets_dir,
            PathBuf::from("./.source-apiserver/secrets")
        );
        assert_eq!(config.concurrent, 16);
        assert_eq!(config.artifact_limits.max_size_bytes, 1 << 30);
        assert_eq!(config.artifact_limits.max_files, 100_000);
        assert_eq!(config.artifact_retention_ttl, Duration::from_secs(60));
        assert_eq!(config.request_timeout, Duration::from_secs(60));
        assert_eq!(config.artifact_retention_records, 2);
        assert!(config.artifact_listen.is_none());
        assert!(config.artifact_advertise_address.is_none());
        assert!(config.etcd.is_none(), "SQLite is the default");
    }

    #[test]
    fn etcd_flags_select_etcd_with_kube_apiservers_defaults() {
        let flags = Flags::try_parse_from([
            "source-apiserver",
            "--etcd-servers",
            "http://127.0.0.1:2379,http://127.0.0.1:22379",
        ])
        .unwrap();
        let etcd = flags.serve.into_config().unwrap().etcd.unwrap();
        assert_eq!(
            etcd.endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
        );
        assert_eq!(etcd.prefix, "/registry");
        assert_eq!(etcd.compaction_interval, Duration::from_secs(300));
        for (args, want) in [
            (vec!["--etcd-servers", "127.0.0.1:2379"], "--etcd-servers"),
            (
                vec![
                    "--etcd-servers",
                    "http://e:2379",
                    "--etcd-compaction-interval",
                    "x",
                ],
                "--etcd-compaction-interval",
            ),
            (
                vec![
                    "--etcd-servers",
                    "http://e:2379",
                    "--etcd-cafile",
                    "/nonexistent/ca",
                ],
                "--etcd-cafile",
            ),
        ] {
            let flags =
                Flags::try_parse_from(std::iter::once("source-apiserver").chain(args)).unwrap();
            let err = flags.serve.into_config().unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn leader_election_is_on_with_etcd_with_client_gos_defaults() {
        let parse = |args: &[&str]| {
            Flags::try_parse_from(std::iter::once("source-apiserver").chain(args.iter().copied()))
                .unwrap()
                .serve
                .into_config()
        };
        assert!(
            parse(&[]).unwrap().leader_election.is_none(),
            "SQLite always leads"
        );
        let etcd = ["--etcd-servers", "http://e:2379"];
        let election = parse(&etcd).unwrap().leader_election.unwrap();
        assert_eq!(election.lease_duration, Duration::from_secs(15));
        assert_eq!(election.renew_deadline, Duration::from_secs(10));
        assert_eq!(election.retry_period, Duration::from_secs(2));
        assert_eq!(election.name, "source-apiserver");
        assert!(election.peer_address.is_none());
        let off = parse(&[&etcd[..], &["--leader-elect=false"]].concat()).unwrap();
        assert!(off.leader_election.is_none());
        let peer = parse(
            &[
                &etcd[..],
                &[
                    "--leader-elect",
                    "--artifact-listen",
                    "0.0.0.0:9090",
                    "--peer-advertise-address",
                    "http://10.0.0.5:9090",
                ],
            ]
            .concat(),
        )
        .unwrap()
        .leader_election
        .unwrap();
        assert_eq!(peer.peer_address.as_deref(), Some("http://10.0.0.5:9090"));
        for (args, want) in [
            (
                vec!["--leader-elect-renew-deadline", "15s"],
                "--leader-elect-lease-duration",
            ),
            (
                vec!["--leader-elect-retry-period", "9s"],
                "--leader-elect-renew-deadline",
            ),
            (
                vec!["--leader-elect-retry-period", "0s"],
                "--leader-elect-retry-period",
            ),
            (
                vec!["--peer-advertise-address", "http://h:1"],
                "--peer-advertise-address",
            ),
            (
                vec![
                    "--artifact-listen",
                    "0.0.0.0:9090",
                    "--peer-advertise-address",
                    "h:1",
                ],
                "--peer-advertise-address",
            ),
        ] {
            let err = parse(&[&etcd[..], &args].concat()).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn bad_artifact_flags_are_named() {
        for (args, want) in [
            (
                vec!["--artifact-retention-ttl", "soon"],
                "--artifact-retention-ttl",
            ),
            (vec!["--concurrent", "0"], "--concurrent"),
            (vec!["--request-timeout", "0s"], "--request-timeout"),
            (vec!["--request-timeout", "a minute"], "--request-timeout"),
            (
                vec!["--artifact-advertise-address", "http://x"],
                "--artifact-advertise-address",
            ),
        ] {
            let mut argv = vec!["source-apiserver"];
            argv.extend(args);
            let err = Flags::try_parse_from(argv)
                .unwrap()
                .serve
                .into_config()
                .unwrap_err();
            assert!(err.to_string().starts_with(want), "{err}");
        }
    }

    #[test]
    fn a_cert_without_a_key_is_refused() {
        let err =
            Flags::try_parse_from(["source-apiserver", "--tls-cert-file", "x.pem"]).unwrap_err();
        assert!(err.to_string().contains("--tls-private-key-file"), "{err}");
    }

    #[test]
    fn a_missing_client_ca_file_is_named() {
        let flags = Flags::try_parse_from([
            "source-apiserver",
            "--client-ca-file",
            "/nonexistent/ca.pem",
        ])
        .unwrap();
        let err = flags.serve.into_config().unwrap_err();
        assert_eq!(
            err.to_string(),
            "--client-ca-file: /nonexistent/ca.pem does not exist"
        );
    }

    struct FakeEnvironment {
        host: Option<&'static str>,
        token: bool,
    }

    impl Environment for FakeEnvironment {
        fn var(&self, name: &str) -> Option<String> {
            (name == "KUBERNETES_SERVICE_HOST")
                .then_some(self.host)
                .flatten()
                .map(String::from)
        }
        fn file_exists(&self, path: &std::path::Path) -> bool {
            self.token && path == std::path::Path::new(SERVICE_ACCOUNT_TOKEN) || path.exists()
        }
    }

    fn delegation(args: &[&str], env: &FakeEnvironment) -> DelegationConfig {
        let mut argv = vec!["source-apiserver"];
        argv.extend(args);
        Flags::try_parse_from(argv)
            .unwrap()
            .serve
            .delegation
            .into_config(env)
            .unwrap()
    }

    #[test]
    fn the_mode_is_standalone_without_a_cluster_and_in_cluster_with_one() {
        let none = FakeEnvironment {
            host: None,
            token: false,
        };
        let pod = FakeEnvironment {
            host: Some("10.96.0.1"),
            token: true,
        };
        let host_only = FakeEnvironment {
            host: Some("10.96.0.1"),
            token: false,
        };
        assert_eq!(delegation(&[], &none).mode, Mode::Standalone);
        assert_eq!(delegation(&[], &host_only).mode, Mode::Standalone);
        let config = delegation(&[], &pod);
        assert_eq!(config.mode, Mode::InCluster);
        assert_eq!(
            config.authorization_source,
            Some(ClusterSource::ServiceAccount)
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        let config = delegation(&["--kubeconfig", path], &none);
        assert_eq!(config.mode, Mode::InCluster);
        assert_eq!(
            config.authentication_source,
            Some(ClusterSource::Kubeconfig(file.path().into()))
        );
    }

    #[test]
    fn delegation_defaults_are_kubes() {
        let config = delegation(
            &[],
            &FakeEnvironment {
                host: None,
                token: false,
            },
        );
        assert_eq!(
            config.always_allow_paths,
            vec!["/healthz", "/readyz", "/livez"]
        );
        assert_eq!(
            config.request_header.username_headers,
            vec!["X-Remote-User"]
        );
        assert_eq!(config.request_header.group_headers, vec!["X-Remote-Group"]);
        assert_eq!(
            config.request_header.extra_headers_prefix,
            vec!["X-Remote-Extra-"]
        );
        assert_eq!(config.token_cache_ttl, Duration::from_secs(10));
        assert_eq!(config.authorized_cache_ttl, Duration::from_secs(10));
        assert_eq!(config.unauthorized_cache_ttl, Duration::from_secs(10));
    }

    #[test]
    fn secure_port_and_bind_address_override_listen() {
        let config = Flags::try_parse_from([
            "source-apiserver",
            "--secure-port",
            "6443",
            "--bind-address",
            "0.0.0.0",
        ])
        .unwrap()
        .serve
        .into_config()
        .unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:6443");
    }
}
