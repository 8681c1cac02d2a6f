//! Decodes a YAML manifest (path as the first argument) sent for its own version and prints the
//! stored v1 JSON, the unknown fields and the validation causes.
//!
//! `cargo run -p openapi --example decode -- ../../shared/testdata/flux-examples/apiref-ignore.yaml`

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: decode <manifest.yaml>");
    let text = std::fs::read_to_string(&path).expect("read manifest");
    let body: serde_json::Value = serde_yaml::from_str(&text).expect("parse YAML");
    let kind = body["kind"].as_str().expect("kind");
    let resource = openapi::resource_by_kind(kind).expect("a kind of source.toolkit.fluxcd.io");
    let version: openapi::Version = body["apiVersion"]
        .as_str()
        .and_then(openapi::Version::from_api_version)
        .expect("a served apiVersion");
    match openapi::decode(resource, version, body) {
        Ok(decoded) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&decoded.object).expect("json")
            );
            println!("unknown fields: {:?}", decoded.unknown_fields);
            for cause in openapi::validate(resource, &decoded.object) {
                println!("invalid: {cause}");
            }
        }
        Err(e) => println!("error: {e}; causes: {:?}", e.causes()),
    }
}
