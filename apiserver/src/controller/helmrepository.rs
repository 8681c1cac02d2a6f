//! The HelmRepository kind (`flux-source-controller.md` §1.3, §4.1). A `type: oci` repository
//! is a static holder of a registry URL and credentials for HelmCharts, as in Flux ≥ 2.2: it is
//! never reconciled and keeps no status (a status left by an earlier `type: default` is
//! cleared). A `type: default` (HTTP/S index) repository is not supported by this server: it
//! gets `Stalled=True` and `Ready=False` saying so, once per generation.

use std::sync::Arc;

use openapi::conditions::{self, reasons, types};
use openapi::v1::{HelmRepository, HelmRepositoryStatus};
use storage::{ObjectStore, ResourceKey};

use super::failure::now;
use super::runtime::{Action, Reconcile};

/// Why the HTTP/S index type stalls.
pub const UNSUPPORTED_TYPE_MESSAGE: &str = "HelmRepository type 'default' (an HTTP/S Helm index) is not supported yet by this server: use type 'oci' with an oci:// URL, or an OCIRepository";

/// The HelmRepository reconciler.
#[derive(Debug)]
pub struct HelmRepositoryReconciler {
    store: Arc<dyn ObjectStore>,
}

impl HelmRepositoryReconciler {
    /// A reconciler over the object store.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }
}

/// A failed status write.
#[derive(Debug, thiserror::Error)]
#[error("writing the HelmRepository status")]
pub struct Error(#[source] storage::Error);

impl Reconcile for HelmRepositoryReconciler {
    type Object = HelmRepository;
    type Error = Error;
    const KIND: &'static str = "HelmRepository";

    fn resource(&self) -> ResourceKey {
        super::helm_repositories()
    }

    async fn reconcile(&self, obj: Arc<HelmRepository>) -> Result<Action, Error> {
        if obj.metadata.deletion_timestamp.is_some() {
            return Ok(Action::AwaitChange);
        }
        let current = obj.status.clone().unwrap_or_default();
        let generation = obj.metadata.generation.unwrap_or(0);
        let wanted = if obj.spec.is_oci() {
            HelmRepositoryStatus {
                observed_generation: current.observed_generation,
                last_handled_reconcile_at: current.last_handled_reconcile_at.clone(),
                ..HelmRepositoryStatus::default()
            }
        } else {
            let mut status = current.clone();
            let (g, c) = (Some(generation), &mut status.conditions);
            let m = UNSUPPORTED_TYPE_MESSAGE;
            if !conditions::is_true(c, types::STALLED)
                || conditions::get(c, types::STALLED).and_then(|s| s.observed_generation) != g
            {
                let r = reasons::UNSUPPORTED_SOURCE_KIND;
                conditions::delete(c, types::RECONCILING);
                conditions::mark_true(c, types::STALLED, r, m, g, now());
                conditions::mark_false(c, types::READY, r, m, g, now());
            }
            status.observed_generation = Some(generation);
            status
        };
        if wanted != current {
            let read = serde_json::to_value(&*obj).expect("objects serialize");
            let status = serde_json::to_value(&wanted).expect("status serializes");
            let name = obj.metadata.name.clone().unwrap_or_default();
            let ns = obj.metadata.namespace.clone().unwrap_or_default();
            let key = super::helm_repositories().object(ns, name);
            super::status::write_status(self.store.as_ref(), &key, &read, &status)
                .await
                .map_err(Error)?;
        }
        Ok(Action::AwaitChange)
    }

    async fn error_policy(&self, _obj: Arc<HelmRepository>, _error: &Error) -> Action {
        Action::Backoff
    }

    fn metric_label(_error: &Error) -> &'static str {
        "Storage"
    }
}
