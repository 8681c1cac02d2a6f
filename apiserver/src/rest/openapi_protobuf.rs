//! The OpenAPI v2 document in gnostic's protobuf form (`openapi.v2.Document`,
//! `google/gnostic-models: openapiv2/OpenAPIv2.proto`), media types [`MEDIA_TYPES`].
//!
//! kubectl up to 1.27 fetches `/openapi/v2` only in this form before `apply` (client-side schema
//! validation) and fails on anything else, with no JSON fallback. The encoding covers what
//! kube-openapi's `proto` models and kubectl's query-parameter verifier read: definitions
//! (types, properties, items, additionalProperties, required, `$ref`, descriptions, enums,
//! defaults, vendor extensions) and paths (operations, parameters, responses, vendor
//! extensions). As gnostic does, `default`, `example`, `enum` values and vendor extensions are
//! `Any { yaml }` (JSON text is valid YAML).

use serde_json::{Map, Value};

/// Media types a client asks for the protobuf form with (the deprecated `@` one first, as
/// client-go sends it; kube-openapi `pkg/handler/handler.go`).
pub const MEDIA_TYPES: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// A protobuf message being written (wire format: varint keys, length-delimited fields).
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    /// A string field; proto3 omits empty strings.
    fn string(&mut self, field: u32, value: Option<&str>) {
        if let Some(s) = value.filter(|s| !s.is_empty()) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn strings(&mut self, field: u32, value: &Value) {
        for s in value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            self.bytes(field, s.as_bytes());
        }
    }

    fn boolean(&mut self, field: u32, value: &Value) {
        if value.as_bool() == Some(true) {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int(&mut self, field: u32, value: &Value) {
        if let Some(n) = value.as_i64().filter(|n| *n != 0) {
            self.key(field, 0);
            self.varint(n as u64);
        }
    }

    fn double(&mut self, field: u32, value: &Value) {
        if let Some(n) = value.as_f64().filter(|n| *n != 0.0) {
            self.key(field, 1);
            self.0.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn message(&mut self, field: u32, message: Message) {
        self.bytes(field, &message.0);
    }
}

/// `Any { yaml = 2 }`.
fn any(value: &Value) -> Message {
    let mut m = Message::default();
    m.string(2, Some(&serde_json::to_string(value).unwrap_or_default()));
    m
}

/// `repeated NamedAny vendor_extension` for every `x-` key of `object`.
fn vendor_extensions(m: &mut Message, field: u32, object: &Map<String, Value>) {
    for (name, value) in object.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Message::default();
        named.string(1, Some(name));
        named.message(2, any(value));
        m.message(field, named);
    }
}

fn schema(value: &Value) -> Message {
    let mut m = Message::default();
    let Some(o) = value.as_object() else {
        return m;
    };
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    m.string(1, get("$ref").as_str());
    m.string(2, get("format").as_str());
    m.string(3, get("title").as_str());
    m.string(4, get("description").as_str());
    if let Some(d) = o.get("default") {
        m.message(5, any(d));
    }
    m.double(7, get("maximum"));
    m.double(9, get("minimum"));
    m.int(11, get("maxLength"));
    m.int(12, get("minLength"));
    m.string(13, get("pattern").as_str());
    m.int(14, get("maxItems"));
    m.int(15, get("minItems"));
    m.boolean(16, get("uniqueItems"));
    m.int(17, get("maxProperties"));
    m.int(18, get("minProperties"));
    m.strings(19, get("required"));
    for e in get("enum").as_array().into_iter().flatten() {
        m.message(20, any(e));
    }
    if let Some(item) = additional_properties(o.get("additionalProperties")) {
        m.message(21, item);
    }
    if let Some(item) = schema_type(o.get("type")) {
        m.message(22, item);
    }
    if let Some(item) = schema_items(o.get("items")) {
        m.message(23, item);
    }
    for s in get("allOf").as_array().into_iter().flatten() {
        m.message(24, schema(s));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        let mut properties = Message::default();
        for (name, s) in props {
            properties.message(1, named(name, schema(s)));
        }
        m.message(25, properties);
    }
    m.boolean(27, get("readOnly"));
    if let Some(e) = o.get("example") {
        m.message(30, any(e));
    }
    vendor_extensions(&mut m, 31, o);
    m
}

/// `additionalProperties`: a boolean or a schema (`SchemaOrBool`).
fn additional_properties(value: Option<&Value>) -> Option<Message> {
    let mut item = Message::default();
    match value {
        Some(Value::Bool(b)) => {
            item.key(2, 0);
            item.varint(u64::from(*b));
        }
        Some(s @ Value::Object(_)) => item.message(1, schema(s)),
        _ => return None,
    }
    Some(item)
}

/// `type`: one name or several (`StringArray`).
fn schema_type(value: Option<&Value>) -> Option<Message> {
    let mut item = Message::default();
    match value {
        Some(Value::String(t)) => item.string(1, Some(t)),
        Some(types @ Value::Array(_)) => item.strings(1, types),
        _ => return None,
    }
    Some(item)
}

/// `items`: one schema or a list of them (`ItemsOrSchemas`).
fn schema_items(value: Option<&Value>) -> Option<Message> {
    let mut item = Message::default();
    match value {
        Some(items @ Value::Object(_)) => item.message(1, schema(items)),
        Some(Value::Array(list)) => {
            for s in list {
                item.message(1, schema(s));
            }
        }
        _ => return None,
    }
    Some(item)
}

fn named(name: &str, value: Message) -> Message {
    let mut m = Message::default();
    m.string(1, Some(name));
    m.message(2, value);
    m
}

/// `ParametersItem`: a `$ref`, a body parameter, or a query/path/header sub-schema.
fn parameter(value: &Value) -> Message {
    let mut item = Message::default();
    if let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        let mut r = Message::default();
        r.string(1, Some(reference));
        item.message(2, r);
        return item;
    }
    let get = |k: &str| value.get(k).unwrap_or(&Value::Null);
    let mut parameter = Message::default();
    if get("in") == "body" {
        let mut body = Message::default();
        body.string(1, get("description").as_str());
        body.string(2, get("name").as_str());
        body.string(3, Some("body"));
        body.boolean(4, get("required"));
        if let Some(s) = value.get("schema") {
            body.message(5, schema(s));
        }
        parameter.message(1, body);
    } else {
        // Query (3), path (4) and header (1) sub-schemas share the first fields' layout except
        // the query one, which has allow_empty_value at 5 and its types one place later.
        let (variant, type_field) = match get("in").as_str() {
            Some("path") => (4, 5),
            Some("header") => (1, 5),
            _ => (3, 6),
        };
        let mut sub = Message::default();
        sub.boolean(1, get("required"));
        sub.string(2, get("in").as_str());
        sub.string(3, get("description").as_str());
        sub.string(4, get("name").as_str());
        if variant == 3 {
            sub.boolean(5, get("uniqueItems"));
        }
        sub.string(type_field, get("type").as_str());
        sub.string(type_field + 1, get("format").as_str());
        let mut non_body = Message::default();
        non_body.message(variant, sub);
        parameter.message(2, non_body);
    }
    item.message(1, parameter);
    item
}

fn operation(value: &Value) -> Message {
    let mut m = Message::default();
    let Some(o) = value.as_object() else {
        return m;
    };
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    m.strings(1, get("tags"));
    m.string(2, get("summary").as_str());
    m.string(3, get("description").as_str());
    m.string(5, get("operationId").as_str());
    m.strings(6, get("produces"));
    m.strings(7, get("consumes"));
    for p in get("parameters").as_array().into_iter().flatten() {
        m.message(8, parameter(p));
    }
    if let Some(responses) = get("responses").as_object() {
        let mut r = Message::default();
        for (code, response) in responses {
            let mut resp = Message::default();
            resp.string(1, response.get("description").and_then(Value::as_str));
            if let Some(s) = response.get("schema") {
                let mut item = Message::default();
                item.message(1, schema(s));
                resp.message(2, item);
            }
            let mut rv = Message::default();
            rv.message(1, resp);
            r.message(1, named(code, rv));
        }
        m.message(9, r);
    }
    m.strings(10, get("schemes"));
    m.boolean(11, get("deprecated"));
    vendor_extensions(&mut m, 13, o);
    m
}

/// Encodes a Swagger 2.0 document (as JSON) into gnostic's protobuf.
pub fn encode(document: &Value) -> Vec<u8> {
    let mut doc = Message::default();
    let get = |k: &str| document.get(k).unwrap_or(&Value::Null);
    doc.string(1, get("swagger").as_str());
    if let Some(info) = get("info").as_object() {
        let mut i = Message::default();
        i.string(1, info.get("title").and_then(Value::as_str));
        i.string(2, info.get("version").and_then(Value::as_str));
        i.string(3, info.get("description").and_then(Value::as_str));
        doc.message(2, i);
    }
    doc.string(3, get("host").as_str());
    doc.string(4, get("basePath").as_str());
    doc.strings(5, get("schemes"));
    doc.strings(6, get("consumes"));
    doc.strings(7, get("produces"));
    if let Some(paths) = get("paths").as_object() {
        let mut p = Message::default();
        for (path, item) in paths {
            let mut pi = Message::default();
            let Some(item) = item.as_object() else {
                continue;
            };
            pi.string(1, item.get("$ref").and_then(Value::as_str));
            for (field, method) in [
                (2, "get"),
                (3, "put"),
                (4, "post"),
                (5, "delete"),
                (6, "options"),
                (7, "head"),
                (8, "patch"),
            ] {
                if let Some(op) = item.get(method) {
                    pi.message(field, operation(op));
                }
            }
            for param in item
                .get("parameters")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                pi.message(9, parameter(param));
            }
            vendor_extensions(&mut pi, 10, item);
            p.message(2, named(path, pi));
        }
        doc.message(8, p);
    }
    if let Some(definitions) = get("definitions").as_object() {
        let mut d = Message::default();
        for (name, s) in definitions {
            d.message(1, named(name, schema(s)));
        }
        doc.message(9, d);
    }
    if let Some(parameters) = get("parameters").as_object() {
        let mut d = Message::default();
        for (name, p) in parameters {
            // ParameterDefinitions holds `Parameter`, not `ParametersItem`: unwrap one level.
            let item = parameter(p);
            d.message(1, named(name, Message(strip_first_field(&item.0))));
        }
        doc.message(10, d);
    }
    if let Some(root) = document.as_object() {
        vendor_extensions(&mut doc, 16, root);
    }
    doc.0
}

/// The payload of the first length-delimited field of an encoded message.
fn strip_first_field(bytes: &[u8]) -> Vec<u8> {
    let mut i = 1; // skip the key byte (field numbers below 16)
    let mut len: usize = 0;
    let mut shift = 0;
    while let Some(&b) = bytes.get(i) {
        len |= usize::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    bytes
        .get(i..i + len)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn varints_and_strings_use_the_wire_format() {
        let mut m = Message::default();
        m.string(1, Some("2.0"));
        assert_eq!(m.0, [0x0a, 3, b'2', b'.', b'0']);
        let mut m = Message::default();
        m.varint(300);
        assert_eq!(m.0, [0xac, 0x02]);
    }

    #[test]
    fn empty_values_are_omitted_as_proto3_does() {
        assert!(encode(&json!({})).is_empty());
        let mut m = Message::default();
        m.string(1, Some(""));
        m.boolean(2, &json!(false));
        m.int(3, &json!(0));
        assert!(m.0.is_empty());
    }

    #[test]
    fn a_definition_carries_its_type_and_vendor_extension() {
        let bytes = encode(&json!({
            "swagger": "2.0",
            "definitions": {"X": {"type": "object", "x-kubernetes-group-version-kind": [{"group": "g", "kind": "K", "version": "v1"}]}}
        }));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("x-kubernetes-group-version-kind"));
        assert!(text.contains(r#"[{"group":"g","kind":"K","version":"v1"}]"#));
        assert!(text.contains("object"));
    }
}
