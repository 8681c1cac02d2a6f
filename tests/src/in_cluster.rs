//! The in-cluster setup of the contract tests: the small fake of the Kubernetes API
//! ([`KubeFake`], standing in for kube-apiserver, which cannot run here), the real
//! `source-apiserver` binary in-cluster against it, the test front proxy ([`Aggregator`]) in
//! front of it, and kubectl through the proxy as an admin in `system:masters`.

use std::path::Path;

use crate::aggregator::Aggregator;
use crate::kube_fake::{KubeFake, Policy, authentication_config_map};
use crate::kubectl::Kubectl;
use crate::pki::TestCa;
use crate::server::{ApiServer, ServerOptions};

/// The front proxy's client certificate CN, among the allowed names.
pub const FRONT_PROXY_NAME: &str = "front-proxy-client";

/// The admin user kubectl authenticates as (allowed everything by the fake's policy).
pub const ADMIN: &str = "admin";

/// A running in-cluster setup.
#[derive(Debug)]
pub struct InCluster {
    /// The Kubernetes API fake.
    pub fake: KubeFake,
    /// The server under test.
    pub server: ApiServer,
    /// The front proxy.
    pub aggregator: Aggregator,
    /// kubectl as [`ADMIN`] through the proxy (namespace `default`).
    pub kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

impl InCluster {
    /// Starts the fake (authentication ConfigMap published, [`ADMIN`] allowed everything), the
    /// binary `binary` with `--kubeconfig <fake>` plus `args`, and the proxy.
    ///
    /// # Panics
    /// When a part fails to start.
    pub fn start(binary: &Path, args: &[&str]) -> Self {
        let fake = KubeFake::start();
        let client_ca = TestCa::with_name("cluster client CA");
        let front_proxy_ca = TestCa::with_name("front-proxy CA");
        fake.set_authentication_config_map(&authentication_config_map(
            &client_ca,
            &front_proxy_ca,
            &[FRONT_PROXY_NAME],
        ));
        fake.set_policy(Policy::default().allow(ADMIN, &["*"], &["*"]));
        let mut all = vec![
            "--kubeconfig".to_string(),
            fake.kubeconfig().display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let server = ApiServer::start(
            binary,
            ServerOptions {
                args: all,
                ..Default::default()
            },
        );
        let aggregator = Aggregator::start(
            &server.url(),
            &server.ca_cert(),
            front_proxy_ca.issue_client(FRONT_PROXY_NAME, None::<&str>),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = aggregator.kubeconfig(dir.path(), ADMIN, &["system:masters"]);
        Self {
            fake,
            server,
            aggregator,
            kubectl: Kubectl::new(None, &kubeconfig),
            _dir: dir,
        }
    }
}
