//! Printer columns (Flux CRDs' `additionalPrinterColumns`) and `meta.k8s.io/v1 Table` cells.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::{Kind, ResourceInfo};
use crate::version::Version;

/// One column of a `Table` (`meta.k8s.io/v1 TableColumnDefinition`; k8s-openapi has no such
/// type). Serializes as `{"name","type","format","description","priority"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumnDefinition {
    /// Column header, e.g. `URL`.
    pub name: String,
    /// OpenAPI type: `string`, `date`, `integer`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// OpenAPI format (`name` for the Name column, else empty).
    pub format: String,
    /// Column description.
    pub description: String,
    /// 0 = always shown; > 0 only with `-o wide`.
    pub priority: i32,
}

/// The description kube-apiserver gives the implicit Name column (`ObjectMeta.name` docs).
pub const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";

/// How a column's value is found in an object.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// A path of object keys.
    Path(&'static [&'static str]),
    /// A field of the `Ready` condition.
    Ready(&'static str),
}

struct Column {
    name: &'static str,
    type_: &'static str,
    json_path: &'static str,
    source: Source,
}

const URL: Column = Column {
    name: "URL",
    type_: "string",
    json_path: ".spec.url",
    source: Source::Path(&["spec", "url"]),
};
const AGE: Column = Column {
    name: "Age",
    type_: "date",
    json_path: ".metadata.creationTimestamp",
    source: Source::Path(&["metadata", "creationTimestamp"]),
};
const READY: Column = Column {
    name: "Ready",
    type_: "string",
    json_path: ".status.conditions[?(@.type==\"Ready\")].status",
    source: Source::Ready("status"),
};
const STATUS: Column = Column {
    name: "Status",
    type_: "string",
    json_path: ".status.conditions[?(@.type==\"Ready\")].message",
    source: Source::Ready("message"),
};

/// Flux's printer columns per kind; identical in v1 and v1beta2.
fn columns(resource: &ResourceInfo) -> Vec<Column> {
    match resource.kind_enum() {
        Kind::OCIRepository => vec![URL, READY, STATUS, AGE],
        Kind::HelmRepository => vec![URL, AGE, READY, STATUS],
        Kind::HelmChart => vec![
            Column {
                name: "Chart",
                type_: "string",
                json_path: ".spec.chart",
                source: Source::Path(&["spec", "chart"]),
            },
            Column {
                name: "Version",
                type_: "string",
                json_path: ".spec.version",
                source: Source::Path(&["spec", "version"]),
            },
            Column {
                name: "Source Kind",
                type_: "string",
                json_path: ".spec.sourceRef.kind",
                source: Source::Path(&["spec", "sourceRef", "kind"]),
            },
            Column {
                name: "Source Name",
                type_: "string",
                json_path: ".spec.sourceRef.name",
                source: Source::Path(&["spec", "sourceRef", "name"]),
            },
            AGE,
            READY,
            STATUS,
        ],
    }
}

/// The Table columns for `resource` in `version`: `Name` (format `name`) first, then Flux's
/// `additionalPrinterColumns` in CRD order, described as kube-apiserver describes CRD columns
/// without a description (`Custom resource definition column (in JSONPath format): <path>`).
pub fn table_columns(resource: &ResourceInfo, version: Version) -> Vec<TableColumnDefinition> {
    let _ = version; // The columns are the same in both versions (Flux CRDs).
    let mut out = vec![TableColumnDefinition {
        name: "Name".to_owned(),
        type_: "string".to_owned(),
        format: "name".to_owned(),
        description: NAME_DESCRIPTION.to_owned(),
        priority: 0,
    }];
    out.extend(
        columns(resource)
            .into_iter()
            .map(|c| TableColumnDefinition {
                name: c.name.to_owned(),
                type_: c.type_.to_owned(),
                format: String::new(),
                description: format!(
                    "Custom resource definition column (in JSONPath format): {}",
                    c.json_path
                ),
                priority: 0,
            }),
    );
    out
}

/// The cells of one row for a stored v1 object, in [`table_columns`] order: the name, then each
/// column's value. `date` columns render as kubectl's human duration since `now` (`5m`,
/// `3h12m`, `2d`); a value that is absent renders as `null`, as kube-apiserver's CRD table
/// convertor does for a JSONPath without results.
pub fn table_row_cells(
    resource: &ResourceInfo,
    version: Version,
    stored: &Value,
    now: Timestamp,
) -> Vec<Value> {
    let _ = version;
    let name = stored
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or(Value::Null);
    let mut cells = vec![name];
    for c in columns(resource) {
        let value = match c.source {
            Source::Path(path) => path.iter().try_fold(stored, |v, k| v.get(k)).cloned(),
            Source::Ready(field) => stored
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("type") == Some(&Value::String("Ready".into())))
                })
                .and_then(|c| c.get(field))
                .cloned(),
        };
        let cell = match (c.type_, value) {
            (_, None) | (_, Some(Value::Null)) => Value::Null,
            ("date", Some(Value::String(s))) => match s.parse::<Timestamp>() {
                Ok(t) => Value::String(human_duration(now.duration_since(t).as_secs_f64())),
                Err(_) => Value::String("<invalid>".to_owned()),
            },
            (_, Some(v)) => v,
        };
        cells.push(cell);
    }
    cells
}

/// Kubernetes' `duration.HumanDuration` (`k8s.io/apimachinery/pkg/util/duration`), as kubectl
/// prints ages: `45s`, `5m3s` (< 10 min), `42m`, `3h12m` (< 8 h), `20h`, `2d3h` (< 8 d), `20d`,
/// `1y30d` (< 8 y), `9y`. More than 1 s in the future is `<invalid>`.
pub fn human_duration(seconds: f64) -> String {
    let secs = seconds.trunc() as i64;
    if secs < -1 {
        return "<invalid>".to_owned();
    }
    if secs < 0 {
        return "0s".to_owned();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{helm_chart, oci_repository};
    use serde_json::json;

    #[test]
    fn human_durations_match_kubectl() {
        let cases = [
            (-5.0, "<invalid>"),
            (-0.5, "0s"),
            (0.0, "0s"),
            (119.0, "119s"),
            (120.0, "2m"),
            (303.0, "5m3s"),
            (600.0, "10m"),
            (179.0 * 60.0, "179m"),
            (3.0 * 3600.0 + 12.0 * 60.0, "3h12m"),
            (5.0 * 3600.0, "5h"),
            (20.0 * 3600.0, "20h"),
            (51.0 * 3600.0, "2d3h"),
            (48.0 * 3600.0, "2d"),
            (20.0 * 86400.0, "20d"),
            (800.0 * 86400.0, "2y70d"),
            (3650.0 * 86400.0, "10y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn rows_follow_columns() {
        let now: Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "podinfo", "creationTimestamp": "2024-01-01T00:55:00Z"},
            "spec": {"url": "oci://ghcr.io/x/y"},
            "status": {"conditions": [{"type": "Ready", "status": "True", "message": "stored"}]}});
        let cells = table_row_cells(oci_repository(), Version::V1, &obj, now);
        assert_eq!(
            cells,
            vec![
                json!("podinfo"),
                json!("oci://ghcr.io/x/y"),
                json!("True"),
                json!("stored"),
                json!("5m")
            ]
        );
        let cols = table_columns(helm_chart(), Version::V1beta2);
        let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Chart",
                "Version",
                "Source Kind",
                "Source Name",
                "Age",
                "Ready",
                "Status"
            ]
        );
        let empty = table_row_cells(
            helm_chart(),
            Version::V1,
            &json!({"metadata": {"name": "x"}}),
            now,
        );
        assert_eq!(empty.len(), 8);
        assert!(empty[1..].iter().all(Value::is_null));
    }
}
