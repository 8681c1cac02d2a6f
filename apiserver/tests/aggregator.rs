//! The kube-aggregator contract over one HTTP/2 connection to the binary, as the aggregator's
//! proxy talks to an APIService backend (reference: aggregated-apiserver.md §1.4–§1.6): many
//! watches multiplexed as streams of one connection, the availability probe, aggregated
//! discovery with its content type and ETag, and the OpenAPI v2 and v3 downloads.

#[path = "common/https.rs"]
mod https;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::future::join_all;
use http::{Method, StatusCode, header};
use https::{Frames, Protocol, connect, request};
use serde_json::{Value, json};
use test_support::server::{ApiServer, ServerOptions};

const GV: &str = "/apis/source.toolkit.fluxcd.io/v1";
const BASE: &str = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/ocirepositories";

/// More watches than hyper's default stream limit (200), fewer than kube's 1,000.
const WATCHES: usize = 300;

/// How long a due frame may take on a shared, loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn server() -> ApiServer {
    ApiServer::start(
        Path::new(env!("CARGO_BIN_EXE_source-apiserver")),
        ServerOptions::default(),
    )
}

async fn send(
    sender: &mut hyper::client::conn::http2::SendRequest<Body>,
    request: http::Request<Body>,
) -> http::Response<Body> {
    sender.ready().await.unwrap();
    sender.send_request(request).await.unwrap().map(Body::new)
}

async fn body(response: http::Response<Body>) -> Vec<u8> {
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_watches_share_one_http2_connection_and_all_receive_an_event() {
    let server = server();
    let connection = connect(&server, Protocol::Http2).await;
    let mut sender = connection.http2();
    let list = send(&mut sender, request(Method::GET, BASE, &[], None)).await;
    let list: Value = serde_json::from_slice(&body(list).await).unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let watches = (0..WATCHES).map(|_| {
        let mut sender = connection.http2();
        let uri = format!("{BASE}?watch=true&resourceVersion={rv}&allowWatchBookmarks=false");
        async move {
            let response = tokio::time::timeout(
                PATIENCE,
                send(&mut sender, request(Method::GET, &uri, &[], None)),
            )
            .await
            .expect("the server accepts the stream");
            assert_eq!(response.status(), StatusCode::OK);
            Frames::new(response.into_body())
        }
    });
    let mut streams = join_all(watches).await;
    assert_eq!(streams.len(), WATCHES);

    let repo = json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "OCIRepository",
        "metadata": {"name": "multiplexed", "namespace": "default"},
        "spec": {"url": "oci://registry.example/podinfo", "interval": "5m",
                 "ref": {"tag": "latest"}, "suspend": true}
    });
    let created = send(&mut sender, request(Method::POST, BASE, &[], Some(&repo))).await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let frames = join_all(streams.iter_mut().map(|s| s.next(PATIENCE))).await;
    for (i, frame) in frames.into_iter().enumerate() {
        let frame = frame.unwrap_or_else(|| panic!("watch {i} received nothing"));
        assert_eq!(frame["type"], "ADDED", "watch {i}: {frame}");
        assert_eq!(frame["object"]["metadata"]["name"], "multiplexed");
    }
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregators_probe_discovery_and_openapi_downloads_are_answered() {
    let server = server();
    let connection = connect(&server, Protocol::Http2).await;
    let mut sender = connection.http2();

    // Availability: GET /apis/<group>/<version>, any 2xx within the aggregator's 5 s timeout.
    let started = Instant::now();
    let probe = send(&mut sender, request(Method::GET, GV, &[], None)).await;
    assert!(probe.status().is_success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let list: Value = serde_json::from_slice(&body(probe).await).unwrap();
    assert_eq!(list["kind"], "APIResourceList");

    // Aggregated discovery: used only when the Content-Type carries g, v and as; the ETag then
    // makes the minutely refresh a 304.
    for version in ["v2", "v2beta1"] {
        let accept =
            format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
        let response = send(
            &mut sender,
            request(Method::GET, "/apis", &[("accept", &accept)], None),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        for param in [
            "g=apidiscovery.k8s.io",
            &format!("v={version}"),
            "as=APIGroupDiscoveryList",
        ] {
            assert!(content_type.contains(param), "{content_type}");
        }
        let etag = response.headers()[header::ETAG]
            .to_str()
            .unwrap()
            .to_string();
        let document: Value = serde_json::from_slice(&body(response).await).unwrap();
        assert_eq!(document["kind"], "APIGroupDiscoveryList");
        assert_eq!(
            document["items"][0]["metadata"]["name"],
            "source.toolkit.fluxcd.io"
        );
        let again = send(
            &mut sender,
            request(
                Method::GET,
                "/apis",
                &[("accept", &accept), ("if-none-match", &etag)],
                None,
            ),
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    }

    // OpenAPI v2: Accept application/json, ETag, 304 on If-None-Match.
    let v2 = send(
        &mut sender,
        request(
            Method::GET,
            "/openapi/v2",
            &[("accept", "application/json")],
            None,
        ),
    )
    .await;
    assert_eq!(v2.status(), StatusCode::OK);
    let etag = v2.headers()[header::ETAG].to_str().unwrap().to_string();
    let spec: Value = serde_json::from_slice(&body(v2).await).unwrap();
    assert_eq!(spec["swagger"], "2.0");
    assert!(
        spec["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| p.starts_with("/apis/source.toolkit.fluxcd.io/"))
    );
    let again = send(
        &mut sender,
        request(
            Method::GET,
            "/openapi/v2",
            &[("accept", "application/json"), ("if-none-match", &etag)],
            None,
        ),
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // OpenAPI v3: the root lists only our group-versions; the per-GV URL with its hash is
    // immutable, a stale hash redirects.
    let root = send(
        &mut sender,
        request(
            Method::GET,
            "/openapi/v3",
            &[("accept", "application/json")],
            None,
        ),
    )
    .await;
    assert_eq!(root.status(), StatusCode::OK);
    let root: Value = serde_json::from_slice(&body(root).await).unwrap();
    let paths = root["paths"].as_object().unwrap();
    assert!(
        paths
            .keys()
            .all(|k| k.starts_with("apis/source.toolkit.fluxcd.io/")),
        "{root}"
    );
    let url = paths["apis/source.toolkit.fluxcd.io/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = send(
        &mut sender,
        request(Method::GET, &url, &[("accept", "application/json")], None),
    )
    .await;
    assert_eq!(doc.status(), StatusCode::OK);
    let cache = doc.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cache.contains("immutable"), "{cache}");
    let stale = url.split_once("?hash=").unwrap().0.to_string() + "?hash=00";
    let redirect = send(
        &mut sender,
        request(Method::GET, &stale, &[("accept", "application/json")], None),
    )
    .await;
    assert_eq!(redirect.status(), StatusCode::MOVED_PERMANENTLY);
    server.stop();
}
