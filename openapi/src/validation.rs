//! Validation of v1 objects: every problem is reported as a [`Cause`] with its field path.
//!
//! Checks follow Flux's CRD schemas (required fields, enums, patterns, the HelmChart CEL rule)
//! and the checks Flux's controller makes at reconcile time that can be decided from the object
//! alone (no tag or digest in an `oci://` URL, digest syntax, semver constraints and regular
//! expressions that compile), plus Kubernetes' object-metadata rules (`metadata.name` a DNS-1123
//! subdomain, `metadata.namespace` a DNS-1123 label, label and annotation syntax).

mod metadata;
mod sources;

use serde_json::Value;

use crate::codec::typed_v1;
use crate::convert;
use crate::error::Cause;
use crate::resource::{Kind, ResourceInfo};
use crate::v1;

/// Validates a v1 object (as [`crate::decode`] returns it) and returns every problem found,
/// in a stable order; an empty vector means valid.
///
/// A value that does not even deserialize into the v1 types (a wrong JSON type) gives a
/// single `FieldValueTypeInvalid` cause for that field.
pub fn validate(resource: &ResourceInfo, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    match resource.kind_enum() {
        Kind::OCIRepository => match typed_v1::<v1::OCIRepository>(object) {
            Ok(obj) => {
                metadata::validate(&obj.metadata, &mut causes);
                sources::oci_repository(&obj, &mut causes);
                conversion(convert::oci_repository_to_v1beta2(obj).err(), &mut causes);
            }
            Err(e) => causes.extend(e.causes()),
        },
        Kind::HelmRepository => match typed_v1::<v1::HelmRepository>(object) {
            Ok(obj) => {
                metadata::validate(&obj.metadata, &mut causes);
                sources::helm_repository(&obj, &mut causes);
            }
            Err(e) => causes.extend(e.causes()),
        },
        Kind::HelmChart => match typed_v1::<v1::HelmChart>(object) {
            Ok(obj) => {
                metadata::validate(&obj.metadata, &mut causes);
                sources::helm_chart(&obj, &mut causes);
                conversion(convert::helm_chart_to_v1beta2(obj).err(), &mut causes);
            }
            Err(e) => causes.extend(e.causes()),
        },
    }
    causes
}

/// A corrupt [`convert::V1BETA2_FIELDS_ANNOTATION`] would make every v1beta2 read fail, so it
/// is rejected on write.
fn conversion(err: Option<crate::Error>, causes: &mut Vec<Cause>) {
    if let Some(crate::Error::Conversion { message, .. }) = err {
        causes.push(Cause::invalid(
            "metadata.annotations",
            convert::V1BETA2_FIELDS_ANNOTATION,
            &format!("must hold the v1beta2-only fields as a JSON object: {message}"),
        ));
    }
}
