//! The cluster's Secrets, from a list+watch of `/api/v1/secrets` ([`Reflector`]): what the
//! reconcilers' `spec.secretRef`, `certSecretRef`, `proxySecretRef`, `verify.secretRef` and the
//! ServiceAccounts' `imagePullSecrets` resolve to in the in-cluster mode, read from memory as
//! Flux's source-controller reads them through controller-runtime's cached client (a watch, not
//! a GET per reconcile). Needs `get`, `list` and `watch` on `secrets` cluster-wide.

use k8s_openapi::api::core::v1::Secret;

use crate::kube::reflector::Reflector;

/// The Secrets cache.
pub type SecretCache = Reflector<Secret>;
