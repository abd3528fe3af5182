use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use sightline_core::Registry;
use tower::ServiceExt;

use super::*;

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
    let app = router(AppState::new(Registry::new(), &[]));
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
    let app = router(AppState::new(registry.clone(), &[]));
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
    let state = AppState::new(registry.clone(), &["s3cret-token".to_owned(), "other".to_owned()]);
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
    let state = AppState::new(Registry::new(), &[]);
    let app = Router::new()
        .route("/write", axum::routing::post(|| async { "written" }))
        .layer(middleware::from_fn_with_state(state.tokens.clone(), crate::auth::require_token));
    let request = Request::post("/write").header(header::AUTHORIZATION, "Bearer ").body(Body::empty());
    let (status, _, _) = call(app, request.expect("request")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
