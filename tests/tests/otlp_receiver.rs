//! Self-tests of `sightline_testkit::otlp`: the real `opentelemetry-otlp` exporters send to the receiver over
//! OTLP/HTTP and OTLP/gRPC, and the receiver must decode what they sent.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{
    Protocol, RetryPolicy, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sightline_testkit::otlp::{OtlpReceiver, ReceivedSpan};

/// Generous: only a broken receiver waits this long.
const WAIT: Duration = Duration::from_secs(30);

fn http_exporter(receiver: &OtlpReceiver) -> SpanExporter {
    sightline_testkit::otlp::install_crypto_provider();
    SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", receiver.endpoint()))
        .with_headers(HashMap::from([("x-api-key".to_owned(), "secret".to_owned())]))
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .expect("HTTP exporter")
}

/// Must be called inside a tokio runtime, which the tonic channel runs on.
fn grpc_exporter(receiver: &OtlpReceiver) -> SpanExporter {
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("x-api-key", "secret".parse().expect("an ASCII metadata value"));
    SpanExporter::builder()
        .with_tonic()
        .with_endpoint(receiver.endpoint())
        .with_metadata(metadata)
        .with_retry_policy(RetryPolicy::disabled())
        .build()
        .expect("gRPC exporter")
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("otlp-selftest")
        .with_attribute(KeyValue::new("deployment.environment", "test"))
        .build()
}

/// Records a server span `parent` with a client span `child` inside it.
fn record_parent_and_child(provider: &SdkTracerProvider) {
    let tracer = provider.tracer("sightline-testkit-selftest");
    let mut parent = tracer
        .span_builder("parent")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("retries", 3_i64),
            KeyValue::new("cached", true),
            KeyValue::new("ratio", 0.5),
        ])
        .start(&tracer);
    parent.add_event("started", vec![]);
    let cx = Context::current_with_span(parent);
    let mut child = tracer.span_builder("child").with_kind(SpanKind::Client).start_with_context(&tracer, &cx);
    child.set_attribute(KeyValue::new("db.system", "postgresql"));
    child.set_status(Status::error("connection refused"));
    child.end();
    cx.span().end();
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks what `record_parent_and_child` should have produced, whatever the order of arrival.
fn assert_parent_and_child(spans: &[ReceivedSpan]) {
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let parent = spans.iter().find(|s| s.name == "parent").expect("parent span received");
    let child = spans.iter().find(|s| s.name == "child").expect("child span received");

    assert!(is_lower_hex(&parent.trace_id, 32), "{}", parent.trace_id);
    assert!(is_lower_hex(&parent.span_id, 16), "{}", parent.span_id);
    assert_eq!(parent.parent_span_id, None);
    assert_eq!(child.trace_id, parent.trace_id);
    assert_eq!(child.parent_span_id.as_deref(), Some(parent.span_id.as_str()));
    assert_ne!(child.span_id, parent.span_id);

    assert_eq!(parent.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(child.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(
        parent.attributes,
        map(&[("cached", "true"), ("http.route", "/users/{id}"), ("ratio", "0.5"), ("retries", "3")])
    );
    assert_eq!(child.attributes, map(&[("db.system", "postgresql")]));
    for span in [parent, child] {
        assert_eq!(
            span.resource,
            map(&[("deployment.environment", "test"), ("service.name", "otlp-selftest")])
        );
        assert_eq!(span.scope, "sightline-testkit-selftest");
        assert!(span.start_unix_nanos > 0 && span.start_unix_nanos <= span.end_unix_nanos, "{span:?}");
    }
    assert_eq!(parent.events, ["started"]);
    assert!(child.events.is_empty());
    assert_eq!((parent.status_code, parent.status_message.as_str()), (0, ""), "STATUS_CODE_UNSET");
    assert_eq!((child.status_code, child.status_message.as_str()), (2, "connection refused"), "ERROR");
    assert!(
        child.start_unix_nanos >= parent.start_unix_nanos && child.end_unix_nanos <= parent.end_unix_nanos
    );
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// OTLP/HTTP from a plain `#[test]`, with the simple processor: one request per span.
#[test]
fn http_receiver_decodes_spans_from_the_real_exporter() {
    let receiver = OtlpReceiver::start_http();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_simple_exporter(http_exporter(&receiver))
        .build();
    record_parent_and_child(&provider);
    provider.shutdown().expect("provider shutdown");

    assert_parent_and_child(&receiver.wait_for_spans(2, WAIT));
    assert_eq!(receiver.requests(), 2);
    let headers = receiver.headers();
    assert_eq!(headers.len(), 2);
    for request in &headers {
        assert_eq!(header(request, "x-api-key"), Some("secret"), "{request:?}");
        assert_eq!(header(request, "content-type"), Some("application/x-protobuf"), "{request:?}");
    }
}

/// OTLP/gRPC from a `#[tokio::test]`, with the batch processor: one request for both spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_receiver_decodes_spans_from_a_tokio_test() {
    let receiver = OtlpReceiver::start_grpc();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(grpc_exporter(&receiver))
        .build();
    record_parent_and_child(&provider);
    // Shutdown blocks until the batch thread's export is done; the export runs on this runtime.
    tokio::task::spawn_blocking(move || provider.shutdown()).await.unwrap().expect("provider shutdown");

    assert_parent_and_child(&receiver.spans());
    assert_eq!(receiver.requests(), 1);
    let headers = receiver.headers();
    assert_eq!(header(&headers[0], "x-api-key"), Some("secret"), "{headers:?}");
    assert_eq!(header(&headers[0], "content-type"), Some("application/grpc"), "{headers:?}");
}

fn record(provider: &SdkTracerProvider, name: &'static str) {
    provider.tracer("sightline-testkit-selftest").start(name).end();
}

/// A failing OTLP/HTTP receiver answers 503, which the exporter reports; after recovery exports go through.
#[test]
fn failing_http_receiver_fails_exports_until_it_recovers() {
    let receiver = OtlpReceiver::start_http();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(http_exporter(&receiver))
        .build();

    receiver.set_failing(true);
    record(&provider, "refused");
    let refused = provider.force_flush().expect_err("export to a failing receiver must fail");
    assert!(refused.to_string().contains("503"), "{refused}");
    assert_eq!(receiver.requests(), 1);
    assert_eq!(receiver.spans(), []);

    receiver.set_failing(false);
    record(&provider, "accepted");
    provider.force_flush().expect("export after recovery");
    let names: Vec<String> = receiver.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["accepted"]);
    assert_eq!(receiver.requests(), 2);
    assert_eq!(receiver.headers().len(), 2);
    provider.shutdown().expect("provider shutdown");
}

/// A failing OTLP/gRPC receiver answers UNAVAILABLE; used from a plain `#[test]` that brings its own runtime
/// for the tonic exporter.
#[test]
fn failing_grpc_receiver_fails_exports_until_it_recovers() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let receiver = OtlpReceiver::start_grpc();
    let exporter = {
        let _entered = runtime.enter();
        grpc_exporter(&receiver)
    };
    let provider =
        SdkTracerProvider::builder().with_resource(resource()).with_batch_exporter(exporter).build();

    receiver.set_failing(true);
    record(&provider, "refused");
    let refused = provider.force_flush().expect_err("export to a failing receiver must fail");
    assert!(refused.to_string().to_lowercase().contains("unavailable"), "{refused}");
    assert_eq!(receiver.requests(), 1);
    assert_eq!(receiver.spans(), []);

    receiver.set_failing(false);
    record(&provider, "accepted");
    provider.force_flush().expect("export after recovery");
    let names: Vec<String> = receiver.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["accepted"]);
    assert_eq!(receiver.requests(), 2);
    provider.shutdown().expect("provider shutdown");
}

/// Malformed and non-protobuf requests are refused with the status an OTLP/HTTP server would use.
#[test]
fn http_receiver_refuses_what_it_cannot_decode() {
    use std::io::{Read as _, Write as _};

    let receiver = OtlpReceiver::start_http();
    let post = |content_type: &str, body: &[u8]| -> String {
        let mut stream = std::net::TcpStream::connect(receiver.local_addr()).unwrap();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            receiver.local_addr(),
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.lines().next().unwrap_or_default().to_owned()
    };
    assert_eq!(post("application/json", b"{}"), "HTTP/1.1 415 Unsupported Media Type");
    // A field tag of 0 is never valid protobuf.
    assert_eq!(post("application/x-protobuf", &[0x00, 0x01]), "HTTP/1.1 400 Bad Request");
    // An empty body is a valid, empty ExportTraceServiceRequest.
    assert_eq!(post("application/x-protobuf", b""), "HTTP/1.1 200 OK");
    assert_eq!(receiver.requests(), 3);
    assert_eq!(receiver.spans(), []);
}

#[test]
fn dropping_the_receiver_closes_its_port() {
    for receiver in [OtlpReceiver::start_http(), OtlpReceiver::start_grpc()] {
        let addr = receiver.local_addr();
        assert!(std::net::TcpStream::connect(addr).is_ok(), "{addr} accepts while running");
        drop(receiver);
        assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still accepts after drop");
    }
}
