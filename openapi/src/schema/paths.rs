//! Path items and operations of the OpenAPI documents.

use serde_json::{Map, Value, json};

use super::{META, definition_name, gvk, reference};
use crate::resource::{ResourceInfo, resources};
use crate::version::{GROUP, Version};

/// Which document flavour to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    /// Swagger 2.0.
    V2,
    /// OpenAPI 3.0.
    V3,
}

/// Media types of PATCH bodies (never `application/strategic-merge-patch+json`).
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];
const OBJECT_TYPES: &[&str] = &["application/json", "application/yaml"];
const WATCH_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/json;stream=watch",
];
const ARTIFACT_TYPES: &[&str] = &["application/gzip", "application/octet-stream"];

struct Param {
    name: &'static str,
    location: &'static str,
    type_: &'static str,
    description: &'static str,
}

const fn q(name: &'static str, type_: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        type_,
        description,
    }
}

const PRETTY: Param = q(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed.",
);
const DRY_RUN: Param = q(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. The only valid value is All.",
);
const FIELD_MANAGER: Param = q(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. Required for apply requests (application/apply-patch+yaml).",
);
const FIELD_VALIDATION: Param = q(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields: Ignore, Warn (default) or Strict.",
);
const FORCE: Param = q(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests: re-acquire conflicting fields owned by other people. Must be unset for non-apply patch requests.",
);
const RESOURCE_VERSION: Param = q(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served from.",
);
const LIST_PARAMS: [Param; 9] = [
    q(
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    ),
    q(
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server.",
    ),
    q(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields (metadata.name, metadata.namespace).",
    ),
    q(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels.",
    ),
    q(
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call.",
    ),
    RESOURCE_VERSION,
    q(
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls.",
    ),
    q(
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call.",
    ),
    q(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    ),
];
const DELETE_PARAMS: [Param; 4] = [
    DRY_RUN,
    q(
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted.",
    ),
    q(
        "orphanDependents",
        "boolean",
        "Deprecated: please use the PropagationPolicy.",
    ),
    q(
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed: Orphan, Background or Foreground.",
    ),
];

struct Op {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: Vec<&'static Param>,
    body: Option<(Value, &'static [&'static str])>,
    responses: Vec<(&'static str, &'static str, Value)>,
    produces: &'static [&'static str],
    kind: &'static str,
}

fn render_param(p: &Param, style: Style, required: bool) -> Value {
    let mut v = json!({"name": p.name, "in": p.location, "description": p.description});
    if required {
        v["required"] = json!(true);
    }
    match style {
        Style::V2 => {
            v["type"] = json!(p.type_);
            if p.location == "query" {
                v["uniqueItems"] = json!(true);
            }
        }
        Style::V3 => v["schema"] = json!({"type": p.type_, "uniqueItems": true}),
    }
    v
}

fn render(op: &Op, version: Version, style: Style) -> Value {
    let tag = format!("sourceToolkitFluxcdIo_{}", version.as_str());
    let mut v = json!({
        "description": op.description,
        "operationId": op.id,
        "tags": [tag],
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": gvk(op.kind, version),
    });
    let mut params: Vec<Value> = op
        .params
        .iter()
        .map(|p| render_param(p, style, false))
        .collect();
    let mut responses = Map::new();
    match style {
        Style::V2 => {
            v["schemes"] = json!(["https"]);
            v["produces"] = json!(op.produces);
            if let Some((schema, types)) = &op.body {
                v["consumes"] = json!(types);
                params.push(
                    json!({"name": "body", "in": "body", "required": true, "schema": schema}),
                );
            } else {
                v["consumes"] = json!(["*/*"]);
            }
            for (code, desc, schema) in &op.responses {
                responses.insert(
                    (*code).to_owned(),
                    json!({"description": desc, "schema": schema}),
                );
            }
        }
        Style::V3 => {
            if let Some((schema, types)) = &op.body {
                let content: Map<String, Value> = types
                    .iter()
                    .map(|t| ((*t).to_owned(), json!({"schema": schema})))
                    .collect();
                v["requestBody"] = json!({"content": content, "required": true});
            }
            for (code, desc, schema) in &op.responses {
                let content: Map<String, Value> = op
                    .produces
                    .iter()
                    .map(|t| ((*t).to_owned(), json!({"schema": schema})))
                    .collect();
                responses.insert(
                    (*code).to_owned(),
                    json!({"description": desc, "content": content}),
                );
            }
        }
    }
    responses.insert("401".to_owned(), json!({"description": "Unauthorized"}));
    v["parameters"] = json!(params);
    v["responses"] = Value::Object(responses);
    v
}

fn path_item(ops: &[Op], path_params: &[&'static str], version: Version, style: Style) -> Value {
    let mut item = Map::new();
    for op in ops {
        item.insert(op.method.to_owned(), render(op, version, style));
    }
    let mut params: Vec<Value> = path_params
        .iter()
        .map(|name| {
            let description = if *name == "name" {
                "name of the object"
            } else {
                "object name and auth scope, such as for teams and projects"
            };
            let p = Param {
                name,
                location: "path",
                type_: "string",
                description,
            };
            render_param(&p, style, true)
        })
        .collect();
    params.push(render_param(&PRETTY, style, false));
    item.insert("parameters".to_owned(), Value::Array(params));
    Value::Object(item)
}

fn id(verb: &str, version: Version, middle: &str, kind: &str, suffix: &str) -> String {
    let v = version.as_str();
    let vcap = format!("{}{}", v[..1].to_uppercase(), &v[1..]);
    format!("{verb}SourceToolkitFluxcdIo{vcap}{middle}{kind}{suffix}")
}

fn resource_paths(
    r: &'static ResourceInfo,
    version: Version,
    style: Style,
    out: &mut Map<String, Value>,
) {
    let base = format!("/apis/{GROUP}/{}", version.as_str());
    let object = reference(&definition_name(r, version, false));
    let list = reference(&definition_name(r, version, true));
    let status = reference(&format!("{META}Status"));
    let watch_event = reference(&format!("{META}WatchEvent"));
    let delete_options = reference(&format!("{META}DeleteOptions"));
    let patch = reference(&format!("{META}Patch"));
    let k = r.kind;
    let list_params: Vec<&'static Param> = LIST_PARAMS.iter().collect();
    let write_params = vec![&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
    let patch_params = vec![&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
    let mut delete_collection_params: Vec<&'static Param> = DELETE_PARAMS.iter().collect();
    delete_collection_params.extend(LIST_PARAMS.iter());
    let ok = |schema: &Value| vec![("200", "OK", schema.clone())];
    let created = |schema: &Value| {
        vec![
            ("200", "OK", schema.clone()),
            ("201", "Created", schema.clone()),
            ("202", "Accepted", schema.clone()),
        ]
    };
    let op =
        |method, action, id: String, description: String, params, body, responses, produces| Op {
            method,
            action,
            id,
            description,
            params,
            body,
            responses,
            produces,
            kind: k,
        };

    out.insert(
        format!("{base}/{}", r.plural),
        path_item(
            &[op(
                "get",
                "list",
                id("list", version, "", k, "ForAllNamespaces"),
                format!("list objects of kind {k}"),
                list_params.clone(),
                None,
                ok(&list),
                WATCH_TYPES,
            )],
            &[],
            version,
            style,
        ),
    );
    out.insert(
        format!("{base}/namespaces/{{namespace}}/{}", r.plural),
        path_item(
            &[
                op(
                    "get",
                    "list",
                    id("list", version, "Namespaced", k, ""),
                    format!("list objects of kind {k}"),
                    list_params.clone(),
                    None,
                    ok(&list),
                    WATCH_TYPES,
                ),
                op(
                    "post",
                    "post",
                    id("create", version, "Namespaced", k, ""),
                    format!("create an {k}"),
                    write_params.clone(),
                    Some((object.clone(), OBJECT_TYPES)),
                    created(&object),
                    OBJECT_TYPES,
                ),
                op(
                    "delete",
                    "deletecollection",
                    id("deleteCollection", version, "Namespaced", k, ""),
                    format!("delete collection of {k}"),
                    delete_collection_params,
                    Some((delete_options.clone(), OBJECT_TYPES)),
                    ok(&status),
                    OBJECT_TYPES,
                ),
            ],
            &["namespace"],
            version,
            style,
        ),
    );
    let named = format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural);
    let mut delete_params: Vec<&'static Param> = DELETE_PARAMS.iter().collect();
    delete_params.shrink_to_fit();
    out.insert(
        named.clone(),
        path_item(
            &[
                op(
                    "get",
                    "get",
                    id("read", version, "Namespaced", k, ""),
                    format!("read the specified {k}"),
                    vec![&RESOURCE_VERSION],
                    None,
                    ok(&object),
                    OBJECT_TYPES,
                ),
                op(
                    "put",
                    "put",
                    id("replace", version, "Namespaced", k, ""),
                    format!("replace the specified {k}"),
                    write_params.clone(),
                    Some((object.clone(), OBJECT_TYPES)),
                    created(&object),
                    OBJECT_TYPES,
                ),
                op(
                    "patch",
                    "patch",
                    id("patch", version, "Namespaced", k, ""),
                    format!("partially update the specified {k}"),
                    patch_params.clone(),
                    Some((patch.clone(), PATCH_TYPES)),
                    created(&object),
                    OBJECT_TYPES,
                ),
                op(
                    "delete",
                    "delete",
                    id("delete", version, "Namespaced", k, ""),
                    format!("delete an {k}"),
                    delete_params,
                    Some((delete_options.clone(), OBJECT_TYPES)),
                    vec![
                        ("200", "OK", object.clone()),
                        ("202", "Accepted", object.clone()),
                    ],
                    OBJECT_TYPES,
                ),
            ],
            &["namespace", "name"],
            version,
            style,
        ),
    );
    out.insert(
        format!("{named}/status"),
        path_item(
            &[
                op(
                    "get",
                    "get",
                    id("read", version, "Namespaced", k, "Status"),
                    format!("read status of the specified {k}"),
                    vec![&RESOURCE_VERSION],
                    None,
                    ok(&object),
                    OBJECT_TYPES,
                ),
                op(
                    "put",
                    "put",
                    id("replace", version, "Namespaced", k, "Status"),
                    format!("replace status of the specified {k}"),
                    write_params,
                    Some((object.clone(), OBJECT_TYPES)),
                    created(&object),
                    OBJECT_TYPES,
                ),
                op(
                    "patch",
                    "patch",
                    id("patch", version, "Namespaced", k, "Status"),
                    format!("partially update status of the specified {k}"),
                    patch_params,
                    Some((patch, PATCH_TYPES)),
                    created(&object),
                    OBJECT_TYPES,
                ),
            ],
            &["namespace", "name"],
            version,
            style,
        ),
    );
    if r.has_artifact {
        let binary = json!({"type": "string", "format": "binary"});
        out.insert(
            format!("{named}/artifact"),
            path_item(
                &[op("get", "get", id("read", version, "Namespaced", k, "Artifact"), format!("download the stored artifact (gzip tarball) of the specified {k}; ETag is the artifact digest"), vec![], None, ok(&binary), ARTIFACT_TYPES)],
                &["namespace", "name"],
                version,
                style,
            ),
        );
    }
    out.insert(
        format!("{base}/watch/{}", r.plural),
        path_item(
            &[op("get", "watchlist", id("watch", version, "", k, "ListForAllNamespaces"), format!("watch individual changes to a list of {k}. deprecated: use the 'watch' parameter with a list operation instead."), list_params.clone(), None, ok(&watch_event), WATCH_TYPES)],
            &[],
            version,
            style,
        ),
    );
    out.insert(
        format!("{base}/watch/namespaces/{{namespace}}/{}", r.plural),
        path_item(
            &[op("get", "watchlist", id("watch", version, "Namespaced", k, "List"), format!("watch individual changes to a list of {k}. deprecated: use the 'watch' parameter with a list operation instead."), list_params.clone(), None, ok(&watch_event), WATCH_TYPES)],
            &["namespace"],
            version,
            style,
        ),
    );
    out.insert(
        format!("{base}/watch/namespaces/{{namespace}}/{}/{{name}}", r.plural),
        path_item(
            &[op("get", "watch", id("watch", version, "Namespaced", k, ""), format!("watch changes to an object of kind {k}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."), list_params, None, ok(&watch_event), WATCH_TYPES)],
            &["namespace", "name"],
            version,
            style,
        ),
    );
}

/// Every path of the given versions, sorted.
pub(super) fn paths(versions: &[Version], style: Style) -> Value {
    let mut out = Map::new();
    for &version in versions {
        for r in resources() {
            resource_paths(r, version, style, &mut out);
        }
    }
    let mut sorted: Vec<(String, Value)> = out.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(sorted.into_iter().collect())
}
