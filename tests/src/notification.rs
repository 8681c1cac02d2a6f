//! An HTTP receiver standing in for Flux's notification-controller event endpoint
//! (`POST /`, fluxcd/notification-controller `internal/server/event_handlers.go`): each body
//! is checked against Flux's `Event` schema (fluxcd/pkg `apis/event/v1beta1/event.go`) and
//! kept; accepted events get `202 Accepted` as from notification-controller, malformed ones
//! `400`. The first `fail_first` requests get `500` to exercise the sender's retries.
//!
//! ```no_run
//! let receiver = test_support::notification::NotificationReceiver::start(0);
//! println!("--events-addr {}", receiver.url());
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The fields of Flux's `Event` (`event.toolkit.fluxcd.io`), v1beta1 and v1.
const EVENT_FIELDS: [&str; 10] = [
    "involvedObject",
    "severity",
    "timestamp",
    "message",
    "reason",
    "metadata",
    "reportingController",
    "reportingInstance",
    "action",
    "relatedObject",
];

/// The fields of a `corev1.ObjectReference`.
const REFERENCE_FIELDS: [&str; 7] = [
    "kind",
    "namespace",
    "name",
    "uid",
    "apiVersion",
    "resourceVersion",
    "fieldPath",
];

#[derive(Debug, Default)]
struct Shared {
    events: Mutex<Vec<Value>>,
    rejected: Mutex<Vec<String>>,
    requests: AtomicUsize,
    stop: AtomicBool,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct NotificationReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl NotificationReceiver {
    /// Listens on a free loopback port; the first `fail_first` requests are answered `500`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    let _ = handle(stream, &state, fail_first);
                }
            }
        });
        Self { addr, shared }
    }

    /// The address to pass as `--events-addr`: `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The events accepted so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.events.lock().expect("lock").clone()
    }

    /// Why bodies were rejected (each violation of the schema), in arrival order.
    pub fn rejected(&self) -> Vec<String> {
        self.shared.rejected.lock().expect("lock").clone()
    }

    /// Requests received, failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for NotificationReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// One request per connection (`Connection: close`).
fn handle(stream: TcpStream, shared: &Shared, fail_first: usize) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    let status = if n < fail_first {
        "500 Internal Server Error"
    } else {
        let checked = if !request_line.starts_with("POST / ") {
            Err(format!("not a POST to /: {}", request_line.trim()))
        } else if content_type != "application/json" {
            Err(format!("Content-Type {content_type:?}"))
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| format!("invalid JSON: {e}"))
                .and_then(|v: Value| validate_event(&v).map(|()| v))
        };
        match checked {
            Ok(event) => {
                shared.events.lock().expect("lock").push(event);
                "202 Accepted"
            }
            Err(why) => {
                shared.rejected.lock().expect("lock").push(why);
                "400 Bad Request"
            }
        }
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()
}

/// Checks `event` against Flux's `Event` schema: only its fields; `involvedObject` an object
/// reference with `kind`, `namespace` and `name`; `severity` `info` or `error` (`trace` is never
/// sent to notification-controller); an RFC 3339 `timestamp`; non-empty `message`, `reason` and
/// `reportingController`; `metadata` a map of strings.
///
/// # Errors
/// The first violation found.
pub fn validate_event(event: &Value) -> Result<(), String> {
    let object = event.as_object().ok_or("the body is not an object")?;
    if let Some(extra) = object.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field {extra:?}"));
    }
    let text = |field: &str| -> Result<&str, String> {
        object
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{field} must be a non-empty string"))
    };
    let involved = object
        .get("involvedObject")
        .and_then(Value::as_object)
        .ok_or("involvedObject must be an object")?;
    if let Some(extra) = involved
        .keys()
        .find(|k| !REFERENCE_FIELDS.contains(&k.as_str()))
    {
        return Err(format!("unknown involvedObject field {extra:?}"));
    }
    for field in ["kind", "namespace", "name"] {
        if involved
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!("involvedObject.{field} must be a non-empty string"));
        }
    }
    match text("severity")? {
        "info" | "error" => {}
        other => return Err(format!("severity {other:?} is not info or error")),
    }
    let timestamp = text("timestamp")?;
    if !is_rfc3339(timestamp) {
        return Err(format!("timestamp {timestamp:?} is not RFC 3339"));
    }
    text("message")?;
    text("reason")?;
    text("reportingController")?;
    if let Some(instance) = object.get("reportingInstance") {
        instance
            .as_str()
            .ok_or("reportingInstance must be a string")?;
    }
    if let Some(metadata) = object.get("metadata") {
        let map = metadata.as_object().ok_or("metadata must be an object")?;
        if map.values().any(|v| !v.is_string()) {
            return Err("metadata values must be strings".into());
        }
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, as Go's `metav1.Time` parses it.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    let zone = s.ends_with('Z') || s.len() >= 6 && matches!(b[b.len() - 6], b'+' | b'-');
    shape && zone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_events_pass_and_malformed_ones_fail() {
        let good = serde_json::json!({
            "involvedObject": {"kind": "OCIRepository", "namespace": "default", "name": "app",
                "apiVersion": "source.toolkit.fluxcd.io/v1"},
            "severity": "info", "timestamp": "2026-01-01T00:00:00Z",
            "message": "stored artifact", "reason": "NewArtifact",
            "metadata": {"source.toolkit.fluxcd.io/revision": "v1@sha256:abc"},
            "reportingController": "source-controller", "reportingInstance": "host"
        });
        assert_eq!(validate_event(&good), Ok(()));
        for (field, value) in [
            ("severity", serde_json::json!("trace")),
            ("timestamp", serde_json::json!("yesterday")),
            ("reason", serde_json::json!("")),
            ("metadata", serde_json::json!({"n": 1})),
            ("extra", serde_json::json!(1)),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            assert!(validate_event(&bad).is_err(), "{field}");
        }
        let mut no_name = good.clone();
        no_name["involvedObject"]
            .as_object_mut()
            .unwrap()
            .remove("name");
        assert!(validate_event(&no_name).is_err());
    }
}
