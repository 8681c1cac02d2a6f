//! Schemathesis (PyPI) fuzzes the server from its own OpenAPI v3 document
//! (`/openapi/v3/apis/source.toolkit.fluxcd.io/v1`) and must find no 5xx and no response that
//! breaks the schema.
//!
//! One deliberate change to the document it is given: the `watch` query parameter is removed.
//! `watch=true` turns a list into a stream of newline-delimited events that lasts until the
//! server's timeout, which a request/response fuzzer can neither wait for nor read as one
//! document. Watches are covered by the kubectl suite (`get -w`, `wait`).

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use test_support::server::{ApiServer, ServerOptions};

fn remove_watch_parameter(document: &mut Value) -> usize {
    let mut removed = 0;
    if let Some(paths) = document["paths"].as_object_mut() {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                if let Some(parameters) = operation
                    .get_mut("parameters")
                    .and_then(Value::as_array_mut)
                {
                    let before = parameters.len();
                    parameters.retain(|p| p["name"] != "watch");
                    removed += before - parameters.len();
                }
            }
        }
    }
    removed
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let schemathesis = test_support::tools::require("schemathesis");
    let curl = test_support::tools::require("curl");
    let server = ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    );
    let pki = server.data_dir().join("pki");
    let (ca, cert, key) = (
        pki.join("ca.crt"),
        pki.join("admin.crt"),
        pki.join("admin.key"),
    );
    let out = Command::new(curl)
        .arg("-sf")
        .arg("--cacert")
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg(format!(
            "{}/openapi/v3/apis/source.toolkit.fluxcd.io/v1",
            server.url()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fetching the OpenAPI v3 document failed"
    );
    let mut document: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        remove_watch_parameter(&mut document) > 0,
        "the list operations document `watch`"
    );
    let schema = server.scratch().join("openapi-v3.json");
    std::fs::write(&schema, serde_json::to_vec(&document).unwrap()).unwrap();

    let run = Command::new(schemathesis)
        .current_dir(server.scratch())
        .arg("run")
        .arg(&schema)
        .arg("--url")
        .arg(server.url())
        .arg("--tls-verify")
        .arg(&ca)
        .arg("--request-cert")
        .arg(&cert)
        .arg("--request-cert-key")
        .arg(&key)
        .args(["--checks", "not_a_server_error,response_schema_conformance"])
        .args([
            "--max-examples",
            "10",
            "--request-timeout",
            "10",
            "--seed",
            "1",
        ])
        .env("SCHEMATHESIS_DISABLE_TELEMETRY", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        server.log()
    );
    assert!(
        report.contains("44 selected"),
        "unexpected operation count:\n{report}"
    );
}
