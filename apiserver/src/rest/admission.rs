//! The admission step every write takes (`k8s.io/apiserver/pkg/admission`): after the object is
//! decoded, converted and defaulted, and before it is validated and stored, each write asks the
//! server's [`Admission`] whether it may proceed. Namespace lifecycle (refusing creates in a
//! missing or terminating namespace, [`namespace_lifecycle`]) is the in-cluster mode's admission;
//! standalone mode admits everything ([`NoAdmission`]).

pub mod namespace_lifecycle;

use std::fmt;

use futures::future::{BoxFuture, FutureExt};
use serde_json::Value;

use crate::auth::UserInfo;
use crate::http::error::ApiError;

/// The kind of write being admitted (`admission.Operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// POST, or a server-side apply that creates.
    Create,
    /// PUT or PATCH (including apply), on the object or its `status`.
    Update,
    /// DELETE of one object or a collection.
    Delete,
}

/// What admission is told about a write (`admission.Attributes`).
#[derive(Debug)]
pub struct Attributes<'a> {
    /// The operation.
    pub operation: Operation,
    /// The resource (plural) being written, e.g. `ocirepositories`.
    pub resource: &'static str,
    /// `status` for the status subresource.
    pub subresource: Option<&'a str>,
    /// The namespace written to.
    pub namespace: Option<&'a str>,
    /// The object's name (none for a collection delete, or a create still to generate one).
    pub name: Option<&'a str>,
    /// The object as it will be validated and stored (storage version); none on delete.
    pub object: Option<&'a Value>,
    /// The stored object an update replaces.
    pub old_object: Option<&'a Value>,
    /// Who asks.
    pub user: &'a UserInfo,
    /// `dryRun=All`: nothing will be stored.
    pub dry_run: bool,
}

/// Decides whether a write may proceed.
pub trait Admission: Send + Sync + fmt::Debug + 'static {
    /// Resolves to `Ok(())` to admit the write.
    ///
    /// # Errors
    /// The [`ApiError`] the client receives (typically 403 Forbidden, as kube-apiserver's
    /// admission plugins answer).
    fn admit<'a>(&'a self, attributes: &'a Attributes<'a>) -> BoxFuture<'a, Result<(), ApiError>>;
}

/// Admits every write (standalone mode: no namespaces to keep a lifecycle for).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoAdmission;

impl Admission for NoAdmission {
    fn admit<'a>(&'a self, _: &'a Attributes<'a>) -> BoxFuture<'a, Result<(), ApiError>> {
        std::future::ready(Ok(())).boxed()
    }
}
