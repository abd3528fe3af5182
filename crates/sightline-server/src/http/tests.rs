use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sightline_core::Registry;
use tower::ServiceExt;

use super::*;

/// An app state with no health checks.
fn state(registry: Registry, tokens: &[String]) -> AppState {
    let health = sightline_health::Health::builder(&registry).build().expect("no checks is valid");
    let health = crate::health::HealthState::new(health, Default::default());
    AppState::new(registry, tokens, health, no_traces())
}

/// A trace reader over an empty store.
fn no_traces() -> sightline_trace::TraceReader {
    sightline_trace::TraceReader::new(Some(sightline_trace::SpanStore::new(100)), "test")
}

async fn call(app: Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).expect("utf-8"))
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn metrics_negotiates_the_format_and_counts_requests() {
    let app = router(state(Registry::new(), &[]));
    let (status, headers, body) = call(app.clone(), get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("sightline_build_info{version=\""), "{body}");

    let request = Request::get("/metrics")
        .header(header::ACCEPT, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        .body(Body::empty())
        .expect("request");
    let (status, headers, body) = call(app.clone(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(body.ends_with("# EOF\n"));
    assert!(
        body.contains("sightline_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("sightline_http_request_duration_seconds_bucket{route=\"/metrics\",method=\"GET\",le=")
    );
}

#[tokio::test]
async fn live_and_unknown_routes() {
    let registry = Registry::new();
    let app = router(state(registry.clone(), &[]));
    let (status, _, body) = call(app.clone(), get("/health/live")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"healthy"}"#);
    let (status, _, body) = call(app.clone(), get("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["errorType"], "not_found");
    // Unmatched paths share one series, so scanners cannot explode the route label.
    call(app.clone(), get("/other")).await;
    let snapshot = registry.snapshot();
    let requests = snapshot.family("sightline_http_requests_total").expect("counted");
    let unmatched = requests.series_with(&[("route", "unmatched")]).expect("unmatched series");
    assert_eq!(unmatched.value, sightline_core::Value::Counter(2));
}

#[tokio::test]
async fn the_token_guard_refuses_and_counts() {
    let registry = Registry::new();
    let state = state(registry.clone(), &["s3cret-token".to_owned(), "other".to_owned()]);
    let app = Router::new()
        .route("/write", axum::routing::post(|| async { "written" }))
        .layer(middleware::from_fn_with_state(state.tokens.clone(), crate::auth::require_token));
    let post = |auth: Option<&str>| {
        let mut request = Request::post("/write");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        request.body(Body::empty()).expect("request")
    };
    for auth in
        [None, Some("Bearer wrong"), Some("Basic s3cret-token"), Some("Bearer s3cret-tokenX"), Some("Bearer")]
    {
        let (status, headers, body) = call(app.clone(), post(auth)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        assert!(body.contains("\"errorType\":\"unauthorized\""), "{body}");
    }
    for auth in ["Bearer s3cret-token", "bearer other"] {
        let (status, _, body) = call(app.clone(), post(Some(auth))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "written"), "{auth}");
    }
    let snapshot = registry.snapshot();
    let failures = snapshot.family("sightline_auth_failures_total").expect("counted");
    let count = |reason| match failures.series_with(&[("reason", reason)]).map(|s| &s.value) {
        Some(sightline_core::Value::Counter(n)) => *n,
        _ => 0,
    };
    assert_eq!((count("missing"), count("invalid")), (3, 2));
}

#[tokio::test]
async fn no_tokens_configured_means_writes_are_refused() {
    let state = state(Registry::new(), &[]);
    let app = Router::new()
        .route("/write", axum::routing::post(|| async { "written" }))
        .layer(middleware::from_fn_with_state(state.tokens.clone(), crate::auth::require_token));
    let request = Request::post("/write").header(header::AUTHORIZATION, "Bearer ").body(Body::empty());
    let (status, _, _) = call(app, request.expect("request")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

mod health {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use sightline_health::{BoxFuture, CheckOptions, Health, HealthCheck, Heartbeat, Probe};

    use super::*;

    struct Fixed(Probe);

    impl HealthCheck for Fixed {
        fn check(&self) -> BoxFuture<'_, Probe> {
            let probe = self.0.clone();
            Box::pin(async move { probe })
        }
    }

    async fn app(db_up: bool) -> (Router, Heartbeat) {
        let registry = Registry::new();
        let db = if db_up { Probe::healthy("SELECT 1 ok") } else { Probe::unhealthy("connection refused") };
        let heartbeat = Heartbeat::new(Duration::from_secs(60), 1);
        let health = Health::builder(&registry)
            .check(
                "db",
                CheckOptions::new().thresholds(1, 1).group("storage"),
                Fixed(db.with_observed(3.0, "ms")),
            )
            .check(
                "cache",
                CheckOptions::new().critical(false).thresholds(1, 1),
                Fixed(Probe::degraded("slow")),
            )
            .check("nightly", CheckOptions::new().critical(false), heartbeat.clone())
            .build()
            .unwrap();
        health.run_all().await;
        let heartbeats = HashMap::from([("nightly".to_owned(), heartbeat.clone())]);
        let health = crate::health::HealthState::new(health, heartbeats);
        let state = AppState::new(registry, &["tok".to_owned()], health, no_traces());
        (router(state), heartbeat)
    }

    fn json(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    #[tokio::test]
    async fn health_reports_every_check_with_200_or_503() {
        let (up, _) = app(true).await;
        let (status, _, body) = call(up.clone(), get("/health")).await;
        assert_eq!(status, StatusCode::OK);
        let body = json(&body);
        assert_eq!(body["status"], "degraded", "a degraded non-critical check degrades the whole");
        let db = &body["checks"][0];
        assert_eq!((db["name"].as_str(), db["status"].as_str()), (Some("db"), Some("healthy")));
        assert_eq!(db["observed_value"], 3.0);
        assert_eq!(db["observed_unit"], "ms");
        assert_eq!(db["consecutive_failures"], 0);
        assert!(db["checked_at"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(db["duration_ms"].is_number());

        let (down, _) = app(false).await;
        let (status, _, body) = call(down.clone(), get("/health")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body = json(&body);
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["checks"][0]["message"], "connection refused");
        assert_eq!(body["checks"][0]["consecutive_failures"], 1);
    }

    #[tokio::test]
    async fn the_draft_shape_is_served_for_health_json() {
        let (down, _) = app(false).await;
        let request =
            Request::get("/health").header(header::ACCEPT, "application/health+json").body(Body::empty());
        let (status, headers, body) = call(down, request.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::CONTENT_TYPE], "application/health+json");
        let body = json(&body);
        assert_eq!(body["status"], "fail");
        let db = &body["checks"]["db:responseTime"][0];
        assert_eq!(db["status"], "fail");
        assert_eq!(db["observedValue"], 3.0);
        assert_eq!(db["observedUnit"], "ms");
        assert_eq!(db["output"], "connection refused");
        assert_eq!(body["checks"]["cache:status"][0]["status"], "warn");
    }

    #[tokio::test]
    async fn readiness_names_failing_critical_checks_and_groups_filter() {
        let (down, _) = app(false).await;
        let (status, _, body) = call(down.clone(), get("/health/ready")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body = json(&body);
        assert_eq!(body["failing"], serde_json::json!(["db"]));
        assert_eq!(body["checks"].as_array().map(Vec::len), Some(1), "only critical checks count");

        let (up, _) = app(true).await;
        let (status, _, body) = call(up.clone(), get("/health/ready")).await;
        assert_eq!((status, json(&body)["status"].as_str()), (StatusCode::OK, Some("healthy")));
        let (status, _, body) = call(up.clone(), get("/health/storage")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["checks"].as_array().map(Vec::len), Some(1));
        let (status, _, body) = call(up.clone(), get("/health/nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("groups: storage"), "{body}");
        let (status, _, _) = call(up, get("/health/live")).await;
        assert_eq!(status, StatusCode::OK, "liveness never depends on checks");
    }

    #[tokio::test]
    async fn history_api() {
        let (down, _) = app(false).await;
        let (status, _, body) = call(down.clone(), get("/api/v1/health/history?check=db")).await;
        assert_eq!(status, StatusCode::OK);
        let body = json(&body);
        assert_eq!(body["data"]["results"][0]["status"], "unhealthy");
        assert_eq!(body["data"]["transitions"][0]["from"], "unknown");
        assert_eq!(body["data"]["transitions"][0]["to"], "unhealthy");
        let (status, _, body) = call(down.clone(), get("/api/v1/health/history")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("`check` is required"), "{body}");
        let (status, _, body) = call(down, get("/api/v1/health/history?check=nope")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("checks: db, cache, nightly"), "{body}");
    }

    #[tokio::test]
    async fn push_heartbeats_need_a_token() {
        let (app, heartbeat) = app(true).await;
        let post = |auth: Option<&str>, name: &str| {
            let mut request = Request::post(format!("/api/v1/health/heartbeat/{name}"));
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            request.body(Body::empty()).unwrap()
        };
        let (status, _, _) = call(app.clone(), post(None, "nightly")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(heartbeat.since_last_beat().is_none());
        let (status, _, _) = call(app.clone(), post(Some("Bearer tok"), "nightly")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(heartbeat.since_last_beat().is_some());
        let (status, _, body) = call(app, post(Some("Bearer tok"), "other")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("heartbeat checks: nightly"), "{body}");
    }

    /// A check whose answer the test switches.
    struct Switch(Arc<std::sync::atomic::AtomicBool>);

    impl HealthCheck for Switch {
        fn check(&self) -> BoxFuture<'_, Probe> {
            let up = self.0.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { if up { Probe::healthy("up") } else { Probe::unhealthy("down") } })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_answers_follow_new_results_within_one_render() {
        let registry = Registry::new();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let health = Health::builder(&registry)
            .check("db", CheckOptions::new().thresholds(1, 1), Switch(up.clone()))
            .build()
            .unwrap();
        health.run_all().await;
        let app = router(AppState::new(
            registry,
            &[],
            crate::health::HealthState::new(health.clone(), HashMap::new()),
            no_traces(),
        ));
        assert_eq!(call(app.clone(), get("/health")).await.0, StatusCode::OK);
        up.store(false, std::sync::atomic::Ordering::SeqCst);
        health.run_all().await;
        // The first answer after the change may be the previous one; a fresh one follows promptly.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (status, _, body) = call(app.clone(), get("/health")).await;
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert!(body.contains("\"down\""), "{body}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the cached answer never caught up");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

mod traces {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;

    use super::*;

    const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A router whose requests are traced into a real span store, with logs captured in `Lines`.
    fn traced() -> (Router, tracing::subscriber::DefaultGuard, sightline_trace::TraceGuard, Lines) {
        let lines = Lines::default();
        let writer = {
            let lines = lines.clone();
            BoxMakeWriter::new(move || lines.clone())
        };
        let (dispatch, guard) = sightline_trace::builder()
            .with_service_name("sightline")
            .with_log_output(sightline_trace::LogOutput::Writer(writer))
            .without_otlp()
            .build()
            .unwrap();
        let default = tracing::dispatcher::set_default(&dispatch);
        let registry = Registry::new();
        let health = sightline_health::Health::builder(&registry).build().unwrap();
        let health = crate::health::HealthState::new(health, Default::default());
        let app = router(AppState::new(registry, &[], health, guard.reader()));
        (app, default, guard, lines)
    }

    fn with_header(path: &str, name: &str, value: &str) -> Request<Body> {
        Request::get(path).header(name, value).body(Body::empty()).unwrap()
    }

    fn json(body: &str) -> Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
    }

    #[tokio::test]
    async fn a_request_joins_the_callers_trace_and_answers_with_its_traceparent() {
        let (app, _default, _guard, lines) = traced();
        let traceparent = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
        let (status, headers, _) =
            call(app.clone(), with_header("/health/live", "traceparent", &traceparent)).await;
        assert_eq!(status, StatusCode::OK);
        let answered = headers["traceparent"].to_str().unwrap();
        let parts: Vec<&str> = answered.split('-').collect();
        assert_eq!(parts[..2], ["00", CALLER_TRACE], "{answered}");
        assert_ne!(parts[2], CALLER_SPAN, "the server's own span id");
        assert_eq!(parts[3], "01");

        let (status, _, body) = call(app.clone(), get(&format!("/api/v1/traces/{CALLER_TRACE}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body = json(&body);
        let span = &body["data"]["spans"][0];
        assert_eq!(span["name"], "GET /health/live");
        assert_eq!(span["spanID"], parts[2]);
        assert_eq!(span["parentSpanID"], CALLER_SPAN);
        assert_eq!(span["parentIsRemote"], true);
        assert_eq!(span["fields"]["http.response.status_code"], 200);
        assert_eq!(span["critical"], true);
        assert_eq!(body["data"]["criticalPath"][0]["spanID"], parts[2]);

        // The access log line carries the request's trace id.
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let access: Vec<Value> =
            logged.lines().map(json).filter(|l| l["target"] == "sightline::access").collect();
        let line = access.iter().find(|l| l["route"] == "/health/live").expect("an access line");
        assert_eq!(line["trace_id"], CALLER_TRACE);
        assert_eq!(line["method"], "GET");
        assert_eq!(line["status"], 200);
        assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(line["bytes"], 20, "{line}");
    }

    #[tokio::test]
    async fn a_malformed_traceparent_starts_a_new_trace() {
        let (app, _default, _guard, _) = traced();
        for bad in ["garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-xyz-abc-01"] {
            let (status, headers, _) =
                call(app.clone(), with_header("/health/live", "traceparent", bad)).await;
            assert_eq!(status, StatusCode::OK);
            let answered = headers["traceparent"].to_str().unwrap();
            let trace: sightline_trace::TraceId = answered.split('-').nth(1).unwrap().parse().unwrap();
            assert_ne!(trace.to_string(), CALLER_TRACE);
        }
    }

    #[tokio::test]
    async fn traces_are_listed_filtered_and_exported_as_otlp_json() {
        let (app, _default, _guard, _) = traced();
        call(app.clone(), get("/health/live")).await;
        call(app.clone(), get("/nope")).await;
        let (status, _, body) =
            call(app.clone(), get("/api/v1/traces?name=GET%20/health/live&limit=5")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body = json(&body);
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{body}");
        assert_eq!(data[0]["rootName"], "GET /health/live");
        assert_eq!(data[0]["service"], "sightline");
        assert_eq!(data[0]["spanCount"], 1);
        let id = data[0]["traceID"].as_str().unwrap();

        let (_, _, body) = call(app.clone(), get("/api/v1/traces?error=false&min_duration=0s")).await;
        assert!(json(&body)["data"].as_array().unwrap().len() >= 2);

        let (status, _, body) = call(app.clone(), get(&format!("/api/v1/traces/{id}?format=otlp"))).await;
        assert_eq!(status, StatusCode::OK);
        let otlp = json(&body);
        let span = &otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], id);
        assert_eq!(span["name"], "GET /health/live");
        assert_eq!(span["kind"], 2, "SPAN_KIND_SERVER");
    }

    #[tokio::test]
    async fn bad_trace_queries_name_the_parameter() {
        let (app, _default, _guard, _) = traced();
        for (path, status, needle) in [
            ("/api/v1/traces?limit=abc", StatusCode::BAD_REQUEST, "\"limit\""),
            ("/api/v1/traces?limit=0", StatusCode::BAD_REQUEST, "\"limit\""),
            ("/api/v1/traces?min_duration=soon", StatusCode::BAD_REQUEST, "\"min_duration\""),
            ("/api/v1/traces?error=maybe", StatusCode::BAD_REQUEST, "\"error\""),
            ("/api/v1/traces?colour=red", StatusCode::BAD_REQUEST, "\"colour\""),
            ("/api/v1/traces/xyz", StatusCode::BAD_REQUEST, "\"trace_id\""),
            ("/api/v1/traces/4bf92f3577b34da6a3ce929d0e0e4736?format=xml", StatusCode::NOT_FOUND, "no trace"),
            ("/api/v1/traces/00000000000000000000000000000001", StatusCode::NOT_FOUND, "no trace"),
        ] {
            let (got, _, body) = call(app.clone(), get(path)).await;
            assert_eq!(got, status, "{path}: {body}");
            let body = json(&body);
            assert_eq!(body["status"], "error");
            assert!(body["error"].as_str().unwrap().contains(needle), "{path}: {body}");
        }
    }
}

/// An app state serving the query API over an in-memory store with two `up` series and a counter.
fn query_state() -> AppState {
    use sightline_tsdb::{Labels, Sample, mem::MemStorage};
    let store = MemStorage::new();
    for (job, v) in [("node", 1.0), ("db", 0.0)] {
        store.add(
            Labels::from_pairs(&[("__name__", "up"), ("job", job), ("instance", "127.0.0.1:9100")]),
            (0..10).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, v)),
        );
    }
    store.add(
        Labels::from_pairs(&[("__name__", "requests_total"), ("job", "node")]),
        (0..41).map(|i| Sample::new(1_700_000_000_000 + i * 15_000, (i * 30) as f64)),
    );
    let query = crate::query::QueryState {
        storage: std::sync::Arc::new(store),
        engine: sightline_tsdb::promql::Engine::default(),
        scrape: None,
    };
    state(Registry::new(), &[]).with_query(query)
}

fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).expect("JSON body")
}

#[tokio::test]
async fn instant_queries_answer_in_prometheus_shape() {
    let app = router(query_state());
    let (status, _, body) = call(app.clone(), get("/api/v1/query?query=up&time=1700000100")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = json_of(&body);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"]["__name__"], "up");
    assert_eq!(result[0]["value"][0], 1_700_000_100);

    // POST with a form body, as Grafana sends it.
    let request = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("query=sum%28up%29&time=1700000100.5"))
        .expect("request");
    let (status, _, body) = call(app.clone(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = json_of(&body);
    assert_eq!(body["data"]["result"][0]["value"], serde_json::json!([1_700_000_100.5, "1"]));

    let (status, _, body) = call(app.clone(), get("/api/v1/query?query=1%2B1&time=1700000000")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        json_of(&body)["data"],
        serde_json::json!({"resultType": "scalar", "result": [1_700_000_000, "2"]})
    );
}

#[tokio::test]
async fn range_queries_return_matrices() {
    let app = router(query_state());
    let uri =
        "/api/v1/query_range?query=rate(requests_total%5B1m%5D)&start=1700000300&end=1700000600&step=60";
    let (status, _, body) = call(app, get(uri)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body = json_of(&body);
    assert_eq!(body["data"]["resultType"], "matrix");
    let series = &body["data"]["result"][0];
    assert_eq!(series["metric"], serde_json::json!({"job": "node"}));
    let values = series["values"].as_array().expect("values");
    assert_eq!(values.len(), 6);
    assert_eq!(values[0][0], 1_700_000_300);
    let rate: f64 = values[0][1].as_str().and_then(|v| v.parse().ok()).expect("a number as a string");
    assert!((rate - 2.0).abs() < 1e-9, "30 per 15 s is 2/s, got {rate}");
}

#[tokio::test]
async fn query_errors_have_prometheus_types_and_statuses() {
    let app = router(query_state());
    let cases = [
        ("/api/v1/query?query=sum(", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query?query=up&time=yesterday", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query_range?query=up&start=10&end=5&step=1", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query_range?query=up&start=0&end=100&step=0", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/query_range?query=up&start=0&end=100000&step=1", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/series", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/series?match[]=sum(up)", StatusCode::BAD_REQUEST, "bad_data"),
        ("/api/v1/label/1bad/values", StatusCode::BAD_REQUEST, "bad_data"),
    ];
    for (uri, want_status, want_type) in cases {
        let (status, _, body) = call(app.clone(), get(uri)).await;
        assert_eq!(status, want_status, "{uri}: {body}");
        let body = json_of(&body);
        assert_eq!(body["status"], "error", "{uri}");
        assert_eq!(body["errorType"], want_type, "{uri}");
        assert!(!body["error"].as_str().unwrap_or("").is_empty(), "{uri}");
    }
    let (_, _, body) = call(app.clone(), get("/api/v1/query?query=sum(")).await;
    let error = json_of(&body)["error"].as_str().unwrap_or("").to_owned();
    assert!(error.starts_with("invalid parameter \"query\": 1:"), "{error}");
    // Many-to-many matching is an execution error (422), as in Prometheus.
    let uri = "/api/v1/query?query=up%20%2B%20on()%20up&time=1700000100";
    let (status, _, body) = call(app, get(uri)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(json_of(&body)["errorType"], "execution");
}

#[tokio::test]
async fn metadata_endpoints_list_series_labels_and_values() {
    let app = router(query_state());
    let (status, _, body) = call(app.clone(), get("/api/v1/series?match[]=up%7Bjob%3D%22node%22%7D")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        json_of(&body)["data"],
        serde_json::json!([{"__name__": "up", "instance": "127.0.0.1:9100", "job": "node"}])
    );
    let (_, _, body) = call(app.clone(), get("/api/v1/labels")).await;
    assert_eq!(json_of(&body)["data"], serde_json::json!(["__name__", "instance", "job"]));
    let (_, _, body) = call(app.clone(), get("/api/v1/label/__name__/values")).await;
    assert_eq!(json_of(&body)["data"], serde_json::json!(["requests_total", "up"]));
    let (_, _, body) = call(app.clone(), get("/api/v1/label/job/values?match[]=up")).await;
    assert_eq!(json_of(&body)["data"], serde_json::json!(["db", "node"]));
    let (status, _, body) = call(app, get("/api/v1/status/buildinfo")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["data"]["version"], env!("CARGO_PKG_VERSION"));
}
