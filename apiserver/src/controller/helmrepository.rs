//! The HelmRepository kind (`flux-source-controller.md` §1.3, §4.1). A `type: oci` repository
//! is a static holder of a registry URL and credentials for HelmCharts, as in Flux ≥ 2.2: it is
//! never reconciled and keeps no status (a status left by an earlier `type: default` is
//! cleared). A `type: default` (HTTP/S index) repository is not supported by this server: it
//! gets `Stalled=True` and `Ready=False` saying so, once per generation.
//!
//! Every reconcile (a new repository, a new generation — URL, `secretRef`, `insecure`… —, a
//! `reconcile.fluxcd.io/requestedAt`) requeues the HelmCharts whose `sourceRef` names the
//! repository, as Flux's HelmChart controller watches HelmRepositories and maps them through
//! its `sourceRef` index (`fluxcd/source-controller: internal/controller/helmchart_controller.go`,
//! `requestsForHelmRepositoryChange`). Flux filters that watch on a new artifact revision,
//! which an OCI repository never has; here a spec change is enough, so a chart follows a
//! changed URL or credentials at once instead of at its next interval.

use std::sync::Arc;

use openapi::conditions::{self, reasons, types};
use openapi::v1::{HelmRepository, HelmRepositoryStatus};
use storage::{ListOptions, ObjectKey, ObjectStore, ResourceKey};

use super::failure::now;
use super::runtime::{Action, Reconcile};

/// Why the HTTP/S index type stalls.
pub const UNSUPPORTED_TYPE_MESSAGE: &str = "HelmRepository type 'default' (an HTTP/S Helm index) is not supported yet by this server: use type 'oci' with an oci:// URL, or an OCIRepository";

/// Queues a HelmChart (by its storage key) for a reconcile now: in the server,
/// [`Controller::enqueue`](super::runtime::Controller::enqueue) of the HelmChart controller.
pub type ChartRequeue = Arc<dyn Fn(ObjectKey) + Send + Sync>;

/// The HelmRepository reconciler.
pub struct HelmRepositoryReconciler {
    store: Arc<dyn ObjectStore>,
    charts: Option<ChartRequeue>,
}

impl std::fmt::Debug for HelmRepositoryReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelmRepositoryReconciler")
            .field("requeues_charts", &self.charts.is_some())
            .finish_non_exhaustive()
    }
}

impl HelmRepositoryReconciler {
    /// A reconciler over the object store that requeues no charts.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            store,
            charts: None,
        }
    }

    /// Requeues, through `requeue`, the HelmCharts naming a repository on each of its
    /// reconciles.
    #[must_use]
    pub fn with_chart_requeue(mut self, requeue: ChartRequeue) -> Self {
        self.charts = Some(requeue);
        self
    }

    /// Queues the HelmCharts of `obj`'s namespace whose `sourceRef` is this HelmRepository.
    ///
    /// # Errors
    /// [`Error`] when the HelmCharts cannot be listed.
    async fn requeue_charts(&self, obj: &HelmRepository) -> Result<(), Error> {
        let Some(requeue) = &self.charts else {
            return Ok(());
        };
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        let name = obj.metadata.name.clone().unwrap_or_default();
        let resource = super::helm_charts();
        let mut opts = ListOptions::default();
        loop {
            let page = self
                .store
                .list(&resource, Some(&ns), &opts)
                .await
                .map_err(Error)?;
            for chart in &page.items {
                let source = &chart["spec"]["sourceRef"];
                if source["kind"] == "HelmRepository" && source["name"] == name.as_str() {
                    let chart_name = chart["metadata"]["name"].as_str().unwrap_or_default();
                    tracing::debug!(chart = chart_name, "repository changed: requeueing chart");
                    requeue(resource.object(ns.clone(), chart_name.to_owned()));
                }
            }
            match page.continue_token {
                Some(token) => opts.continue_token = Some(token),
                None => return Ok(()),
            }
        }
    }
}

/// A failed status write, or a failed list of the HelmCharts to requeue.
#[derive(Debug, thiserror::Error)]
#[error("writing the HelmRepository status or listing its HelmCharts")]
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
        self.requeue_charts(&obj).await?;
        Ok(Action::AwaitChange)
    }

    async fn error_policy(&self, _obj: Arc<HelmRepository>, _error: &Error) -> Action {
        Action::Backoff
    }

    fn metric_label(_error: &Error) -> &'static str {
        "Storage"
    }
}
