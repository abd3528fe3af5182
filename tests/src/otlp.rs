//! A real OTLP trace receiver for integration tests (cargo feature `otlp`).
//!
//! [`OtlpReceiver`] listens on `127.0.0.1:<free port>` and decodes what an exporter sends with the official
//! protobuf definitions from `opentelemetry-proto`, so a test checks the bytes on the wire rather than a
//! mock's idea of them. Two transports:
//!
//! - [`OtlpReceiver::start_http`]: OTLP/HTTP, `POST /v1/traces` with `Content-Type:
//!   application/x-protobuf`, answered with an empty `ExportTraceServiceResponse`. Point an exporter at
//!   `format!("{}/v1/traces", receiver.endpoint())`, or use [`OtlpReceiver::endpoint`] as the base endpoint
//!   (`OTEL_EXPORTER_OTLP_ENDPOINT`), to which exporters append `/v1/traces` themselves.
//! - [`OtlpReceiver::start_grpc`]: OTLP/gRPC, `opentelemetry.proto.collector.trace.v1.TraceService/Export`
//!   served by tonic. Point an exporter at [`OtlpReceiver::endpoint`].
//!
//! Each receiver runs on its own thread with its own single-threaded tokio runtime, so it works the same
//! from a plain `#[test]` and from `#[tokio::test]`, and it stops when dropped.
//!
//! With [`OtlpReceiver::set_failing`] the receiver answers `503 Service Unavailable` or gRPC `UNAVAILABLE`,
//! to test how an exporter reports failed exports. Both are retryable in the OTLP specification, so an
//! exporter with its default retry policy sends each batch several times: [`OtlpReceiver::requests`] counts
//! every attempt.
//!
//! A note for the exporter side rather than the receiver: `opentelemetry-otlp`'s tonic exporter needs a tokio
//! runtime that keeps running while it exports. Under a current-thread `#[tokio::test]`, a blocking
//! `provider.shutdown()` on the test's own thread stalls that runtime; use
//! `#[tokio::test(flavor = "multi_thread")]` or call it from `spawn_blocking` (the same goes for
//! [`OtlpReceiver::wait_for_spans`], which blocks). The blocking HTTP exporter, for its part, must not run on
//! an async runtime's thread.
//!
//! ```no_run
//! use std::time::Duration;
//! use sightline_testkit::otlp::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start_http();
//! let traces_url = format!("{}/v1/traces", receiver.endpoint());
//! // ... build an exporter for `traces_url`, record two spans, shut the provider down ...
//! let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
//! assert_eq!(spans.len(), 2);
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;

/// The largest request either transport accepts: `opentelemetry-otlp`'s default maximum body size, so that
/// no batch an exporter is willing to send is refused for its size.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// A span as the receiver decoded it, flattened with its resource and scope for easy assertions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// The trace id as 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id as 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id as 16 lowercase hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The OTLP `SpanKind`: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// The span's attributes, stringified by [`attribute_string`] (the last of duplicate keys wins).
    pub attributes: BTreeMap<String, String>,
    /// The attributes of the resource that sent the span (`service.name`, ...), stringified likewise.
    pub resource: BTreeMap<String, String>,
    /// The name of the instrumentation scope (the tracer's name); empty when the exporter sent none.
    pub scope: String,
    /// The OTLP `Status.code`: 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// The status message; empty unless the status is an error with a description.
    pub status_message: String,
    /// The start time in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// The end time in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The names of the span's events, in the order the exporter sent them.
    pub events: Vec<String>,
}

/// A running OTLP trace receiver; see the [module documentation](self). Dropping it stops the server.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the receiver has seen, shared between its server thread and the test.
#[derive(Debug, Default)]
struct Shared {
    seen: Mutex<Seen>,
    /// Signalled whenever a request or spans are recorded.
    changed: Condvar,
    failing: AtomicBool,
}

#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    headers: Vec<Vec<(String, String)>>,
    spans: Vec<ReceivedSpan>,
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Http,
    Grpc,
}

/// The tonic service behind [`OtlpReceiver::start_grpc`].
#[derive(Debug)]
struct GrpcTraceService {
    shared: Arc<Shared>,
}

// === impl OtlpReceiver ===

impl OtlpReceiver {
    /// Starts an OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on a free port of 127.0.0.1.
    ///
    /// Panics when the port cannot be bound or the server thread cannot start, which fails the test that
    /// asked for it.
    pub fn start_http() -> Self {
        Self::start(Transport::Http)
    }

    /// Starts an OTLP/gRPC receiver (`TraceService/Export`) on a free port of 127.0.0.1.
    ///
    /// Panics when the port cannot be bound or the server thread cannot start, which fails the test that
    /// asked for it.
    pub fn start_grpc() -> Self {
        Self::start(Transport::Grpc)
    }

    /// The receiver's base URL, `http://127.0.0.1:PORT`, without a path.
    ///
    /// For OTLP/HTTP a signal-specific endpoint (`with_endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) needs
    /// `/v1/traces` appended; the base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`) is this URL as it is.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the receiver listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many export requests arrived, including those refused while [failing](Self::set_failing) and
    /// those that could not be decoded. Each retry of an exporter counts as a request.
    pub fn requests(&self) -> usize {
        self.shared.seen().requests
    }

    /// The spans of every accepted request so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.seen().spans.clone()
    }

    /// The request headers (HTTP) or metadata (gRPC) of every request, one list per request in arrival
    /// order, as `(lowercase name, value)` pairs; a value that is not visible ASCII is decoded lossily.
    pub fn headers(&self) -> Vec<Vec<(String, String)>> {
        self.shared.seen().headers.clone()
    }

    /// Waits until at least `n` spans have arrived or `timeout` has passed, and returns the spans received by
    /// then (possibly fewer than `n`: the caller's assertion then shows what did arrive).
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        self.shared.wait_until(timeout, |seen| seen.spans.len() >= n).spans.clone()
    }

    /// Waits until at least `n` requests have arrived or `timeout` has passed, and returns the number of
    /// requests by then.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> usize {
        self.shared.wait_until(timeout, |seen| seen.requests >= n).requests
    }

    /// Makes the receiver refuse (`true`) or accept (`false`) the requests that follow: refused requests get
    /// HTTP `503 Service Unavailable` or gRPC `UNAVAILABLE`, are counted and their headers kept, and their
    /// spans are dropped.
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    fn start(transport: Transport) -> Self {
        // Bound here rather than on the server thread so that the port is known, and already accepting
        // connections into the backlog, when this function returns.
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|err| panic!("OTLP receiver: cannot bind 127.0.0.1:0: {err}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("OTLP receiver: cannot read the bound address: {err}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|err| panic!("OTLP receiver: cannot make the listener non-blocking: {err}"));

        let shared = Arc::new(Shared::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{transport}"))
            .spawn({
                let shared = Arc::clone(&shared);
                move || serve(transport, listener, shared, stop_rx, ready_tx)
            })
            .unwrap_or_else(|err| panic!("OTLP receiver: cannot spawn the server thread: {err}"));
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => panic!("OTLP receiver ({transport}) failed to start: {err}"),
            Err(mpsc::RecvError) => {
                panic!("OTLP receiver ({transport}): server thread exited while starting")
            }
        }
        Self { addr, shared, stop: Some(stop_tx), thread: Some(thread) }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only when the server thread has already ended, which is what we want anyway.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread was already printed; panicking again in drop would abort.
            let _ = thread.join();
        }
    }
}

// === impl Shared ===

impl Shared {
    fn seen(&self) -> MutexGuard<'_, Seen> {
        // A panic while holding the lock cannot leave `Seen` half-updated in a way that matters to a test.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request and keeps its headers; returns whether it is to be refused.
    fn record_request(&self, headers: Vec<(String, String)>) -> bool {
        let failing = self.failing.load(Ordering::SeqCst);
        let mut seen = self.seen();
        seen.requests += 1;
        seen.headers.push(headers);
        drop(seen);
        self.changed.notify_all();
        failing
    }

    fn record_spans(&self, request: ExportTraceServiceRequest) {
        let spans = received_spans(request);
        self.seen().spans.extend(spans);
        self.changed.notify_all();
    }

    fn wait_until(&self, timeout: Duration, done: impl Fn(&Seen) -> bool) -> MutexGuard<'_, Seen> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if done(&seen) || remaining.is_zero() {
                return seen;
            }
            seen = self.changed.wait_timeout(seen, remaining).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
}

// === impl Transport ===

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        })
    }
}

// === impl GrpcTraceService ===

#[tonic::async_trait]
impl TraceService for GrpcTraceService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = header_pairs(&request.metadata().clone().into_headers());
        if self.shared.record_request(headers) {
            return Err(tonic::Status::unavailable("the test's OTLP receiver is set to fail"));
        }
        self.shared.record_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

// === server ===

/// The server thread: builds a runtime, reports readiness, then serves until `stop` fires.
fn serve(
    transport: Transport,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Receiver<()>,
    ready: mpsc::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = ready.send(Err(format!("cannot build a tokio runtime: {err}")));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(err) => {
                let _ = ready.send(Err(format!("cannot register the listener with tokio: {err}")));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let result = match transport {
            Transport::Http => {
                let app = axum::Router::new()
                    .route("/v1/traces", axum::routing::post(export_http))
                    .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
                    .with_state(shared);
                until_stopped(async { axum::serve(listener, app).await.map_err(|e| e.to_string()) }, stop)
                    .await
            }
            Transport::Grpc => {
                let service = TraceServiceServer::new(GrpcTraceService { shared })
                    .max_decoding_message_size(MAX_REQUEST_BYTES);
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let server = tonic::transport::Server::builder().serve_with_incoming(service, incoming);
                until_stopped(async { server.await.map_err(|e| e.to_string()) }, stop).await
            }
        };
        if let Err(err) = result {
            // The test then sees no requests; this says why.
            eprintln!("OTLP receiver ({transport}) stopped with an error: {err}");
        }
    });
    // Dropping the runtime here cancels the connection tasks, so a client that keeps a connection open
    // (an exporter that is never shut down) cannot hold up the receiver's drop.
}

/// Runs `server` until it ends or `stop` fires (or its sender is dropped).
async fn until_stopped(
    server: impl Future<Output = Result<(), String>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<(), String> {
    tokio::select! {
        result = server => result,
        _ = stop => Ok(()),
    }
}

/// `POST /v1/traces`.
async fn export_http(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if shared.record_request(header_pairs(&headers)) {
        return (StatusCode::SERVICE_UNAVAILABLE, "the test's OTLP receiver is set to fail").into_response();
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("");
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/x-protobuf") {
        let message = format!("expected Content-Type application/x-protobuf, got {content_type:?}");
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        let message = format!("the test's OTLP receiver does not decompress (Content-Encoding {encoding:?})");
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, message).into_response();
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            shared.record_spans(request);
            let response = ExportTraceServiceResponse::default().encode_to_vec();
            ([(header::CONTENT_TYPE, "application/x-protobuf")], response).into_response()
        }
        Err(err) => {
            (StatusCode::BAD_REQUEST, format!("not an ExportTraceServiceRequest: {err}")).into_response()
        }
    }
}

// === decoding ===

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
        })
        .collect()
}

fn received_spans(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attribute_map(r.attributes)).unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|scope| scope.name).unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                received.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                    kind: span.kind,
                    attributes: attribute_map(span.attributes),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    status_code: status.code,
                    status_message: status.message,
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    events: span.events.into_iter().map(|event| event.name).collect(),
                });
            }
        }
    }
    received
}

fn attribute_map(attributes: Vec<KeyValue>) -> BTreeMap<String, String> {
    attributes
        .into_iter()
        .map(|kv| (kv.key, kv.value.as_ref().map(attribute_string).unwrap_or_default()))
        .collect()
}

/// Renders an OTLP attribute value as a string, the way [`ReceivedSpan`]'s maps hold it.
///
/// Strings as they are; booleans, integers and doubles with `to_string`; arrays as `[a,b]` (the format of
/// `opentelemetry::Value::Array`'s `Display`); key-value lists as `{k=v,k2=v2}`; bytes as lowercase hex; an
/// empty value as the empty string.
pub fn attribute_string(value: &AnyValue) -> String {
    match &value.value {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(attribute_string).collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|kv| {
                    format!("{}={}", kv.key, kv.value.as_ref().map(attribute_string).unwrap_or_default())
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(any_value::Value::BytesValue(bytes)) => hex(bytes),
        // An index into a profiles dictionary; trace exports do not use it.
        Some(any_value::Value::StringValueStrindex(index)) => format!("strindex:{index}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Installs rustls's ring provider for the process, once. Needed before building a reqwest client when
/// feature unification turned on reqwest's `rustls-no-provider` (as the server does); harmless otherwise.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &str) -> AnyValue {
        AnyValue { value: Some(any_value::Value::StringValue(s.to_owned())) }
    }

    #[test]
    fn stringify_renders_every_value_kind() {
        let int = AnyValue { value: Some(any_value::Value::IntValue(-7)) };
        let array = AnyValue {
            value: Some(any_value::Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: vec![string("a"), int.clone()],
            })),
        };
        let kvlist = AnyValue {
            value: Some(any_value::Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(string("v")),
                        ..Default::default()
                    }],
                },
            )),
        };
        let rendered: Vec<String> = [
            string("plain"),
            AnyValue { value: Some(any_value::Value::BoolValue(true)) },
            int,
            AnyValue { value: Some(any_value::Value::DoubleValue(1.5)) },
            array,
            kvlist,
            AnyValue { value: Some(any_value::Value::BytesValue(vec![0, 0xab])) },
            AnyValue { value: None },
        ]
        .iter()
        .map(attribute_string)
        .collect();
        assert_eq!(rendered, ["plain", "true", "-7", "1.5", "[a,-7]", "{k=v}", "00ab", ""]);
    }

    #[test]
    fn hex_is_lowercase_and_zero_padded() {
        assert_eq!(hex(&[0x01, 0xfe, 0x00]), "01fe00");
        assert_eq!(hex(&[]), "");
    }
}
