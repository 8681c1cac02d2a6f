//! The cluster's ServiceAccounts, from a list+watch of `/api/v1/serviceaccounts`
//! ([`Reflector`]): an OCIRepository's `spec.serviceAccountName` pulls with the Secrets named by
//! that ServiceAccount's `imagePullSecrets`, as Flux's source-controller does
//! (fluxcd/pkg `runtime/secrets` `PullSecretsFromServiceAccountRef`). Needs `get`, `list` and
//! `watch` on `serviceaccounts` cluster-wide.

use k8s_openapi::api::core::v1::ServiceAccount;

use crate::kube::reflector::Reflector;

/// The ServiceAccounts cache.
pub type ServiceAccountCache = Reflector<ServiceAccount>;

/// The names of `account`'s `imagePullSecrets`, in order, empty names skipped.
pub fn image_pull_secrets(account: &ServiceAccount) -> Vec<String> {
    account
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .collect()
}
