use expect_test::{Expect, expect};
use sightline_core::{BaseUnit, Descriptor, Registry};

use super::*;

fn sample_registry() -> Registry {
    let registry = Registry::builder().with_cardinality_limit(2).build();
    registry
        .describe(&Descriptor::counter("http_requests_total", "Requests \"served\",\nby route.\\"))
        .expect("valid");
    let get = registry.counter("http_requests_total", &[("route", "/a\"b\\c\nd"), ("method", "GET")]);
    get.expect("valid").increment(3);
    registry
        .describe(
            &Descriptor::histogram("http_request_duration_seconds", "Request latency.")
                .with_unit(BaseUnit::Seconds)
                .with_buckets(&[0.1, 1.0])
                .expect("valid"),
        )
        .expect("valid");
    let h = registry.histogram("http_request_duration_seconds", &[("route", "/")]).expect("valid");
    h.record(0.05);
    h.record(0.5);
    h.record(3.0);
    registry.gauge("temperature_celsius", &[]).expect("valid").set(f64::NEG_INFINITY);
    registry.gauge("ratio", &[]).expect("valid").set(0.25);
    let s = registry.summary("rpc_seconds", &[]).expect("valid");
    s.record(2.0);
    registry
}

fn check(format: Format, expect: Expect) {
    expect.assert_eq(&render(&sample_registry().snapshot(), format));
}

#[test]
fn prometheus_text() {
    check(
        Format::PrometheusText,
        expect![[r##"
            # HELP http_request_duration_seconds Request latency.
            # TYPE http_request_duration_seconds histogram
            http_request_duration_seconds_bucket{route="/",le="0.1"} 1
            http_request_duration_seconds_bucket{route="/",le="1.0"} 2
            http_request_duration_seconds_bucket{route="/",le="+Inf"} 3
            http_request_duration_seconds_sum{route="/"} 3.55
            http_request_duration_seconds_count{route="/"} 3
            # HELP http_requests_total Requests "served",\nby route.\\
            # TYPE http_requests_total counter
            http_requests_total{route="/a\"b\\c\nd",method="GET"} 3
            # TYPE ratio gauge
            ratio 0.25
            # TYPE rpc_seconds summary
            rpc_seconds{quantile="0.5"} 1.9999056357269998
            rpc_seconds{quantile="0.9"} 1.9999056357269998
            rpc_seconds{quantile="0.99"} 1.9999056357269998
            rpc_seconds_sum 2.0
            rpc_seconds_count 1
            # HELP sightline_invalid_metrics_total Metric registrations dropped because their name, labels or kind were invalid.
            # TYPE sightline_invalid_metrics_total counter
            sightline_invalid_metrics_total 0
            # TYPE temperature_celsius gauge
            temperature_celsius -Inf
        "##]],
    );
}

#[test]
fn openmetrics() {
    check(
        Format::OpenMetrics,
        expect![[r##"
            # HELP http_request_duration_seconds Request latency.
            # TYPE http_request_duration_seconds histogram
            # UNIT http_request_duration_seconds seconds
            http_request_duration_seconds_bucket{route="/",le="0.1"} 1
            http_request_duration_seconds_bucket{route="/",le="1.0"} 2
            http_request_duration_seconds_bucket{route="/",le="+Inf"} 3
            http_request_duration_seconds_sum{route="/"} 3.55
            http_request_duration_seconds_count{route="/"} 3
            # HELP http_requests Requests \"served\",\nby route.\\
            # TYPE http_requests counter
            http_requests_total{route="/a\"b\\c\nd",method="GET"} 3
            # TYPE ratio gauge
            ratio 0.25
            # TYPE rpc_seconds summary
            rpc_seconds{quantile="0.5"} 1.9999056357269998
            rpc_seconds{quantile="0.9"} 1.9999056357269998
            rpc_seconds{quantile="0.99"} 1.9999056357269998
            rpc_seconds_sum 2.0
            rpc_seconds_count 1
            # HELP sightline_invalid_metrics Metric registrations dropped because their name, labels or kind were invalid.
            # TYPE sightline_invalid_metrics counter
            sightline_invalid_metrics_total 0
            # TYPE temperature_celsius gauge
            temperature_celsius -Inf
            # EOF
        "##]],
    );
}

#[test]
fn openmetrics_output_parses() {
    let registry = sample_registry();
    // openmetrics-parser refuses `# UNIT` on histograms, which the OpenMetrics spec allows (only info and
    // stateset families may not have units), so this check uses a unit-less histogram.
    registry.histogram("plain", &[]).expect("valid").record(1.0);
    let mut snapshot = registry.snapshot();
    snapshot.families.retain(|f| f.unit.is_none());
    let body = render(&snapshot, Format::OpenMetrics);
    let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&body).expect("valid OpenMetrics");
    let family = &parsed.families["http_requests"];
    assert_eq!(family.help, "Requests \"served\",\nby route.\\");
    assert!(parsed.families.contains_key("plain"));
    let text = render(&sample_registry().snapshot(), Format::PrometheusText);
    openmetrics_parser::prometheus::parse_prometheus(&text).expect("valid text format");
}

#[test]
fn overflow_series_render() {
    let registry = Registry::builder().with_cardinality_limit(1).build();
    registry.scoped(|| {
        metrics::counter!("hits_total", "user" => "a").increment(1);
        metrics::counter!("hits_total", "user" => "b").increment(1);
    });
    let body = render(&registry.snapshot(), Format::PrometheusText);
    assert!(body.contains("hits_total{user=\"a\"} 1\n"), "{body}");
    assert!(body.contains("hits_total{otel_metric_overflow=\"true\"} 1\n"), "{body}");
    assert!(body.contains("sightline_cardinality_overflow_total{metric=\"hits_total\"} 1\n"), "{body}");
}

#[test]
fn negotiation() {
    // The header Prometheus 2.x and 3.x send when scraping.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
                      q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let cases = [
        (None, Format::PrometheusText),
        (Some(""), Format::PrometheusText),
        (Some("*/*"), Format::PrometheusText),
        (Some(prometheus), Format::OpenMetrics),
        (Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"), Format::PrometheusText),
        (Some("application/openmetrics-text; version=0.0.1"), Format::OpenMetrics),
        (Some("application/OpenMetrics-Text"), Format::OpenMetrics),
        (Some("application/openmetrics-text;version=2.0.0"), Format::PrometheusText),
        (Some("application/openmetrics-text;q=0,text/plain"), Format::PrometheusText),
        (
            Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily"),
            Format::PrometheusText,
        ),
        (Some(";;;,,=q"), Format::PrometheusText),
        (Some("application/json, application/openmetrics-text;q=0.2"), Format::OpenMetrics),
    ];
    for (accept, want) in cases {
        assert_eq!(Format::negotiate(accept), want, "Accept: {accept:?}");
    }
}

mod props {
    use proptest::prelude::*;
    use sightline_core::{Descriptor, Registry};

    use super::super::*;

    proptest! {
        /// Any label value and help text survives rendering and parsing by an independent parser, in both
        /// formats.
        #[test]
        fn escaping_round_trips(value in "\\PC*", help in "\\PC*", raw in proptest::collection::vec(any::<char>(), 0..20)) {
            // Both formats allow a carriage return in label values, but openmetrics-parser does not.
            let raw: String = raw.into_iter().filter(|c| *c != '\r').collect();
            let registry = Registry::new();
            registry.describe(&Descriptor::gauge("g", &help)).expect("valid");
            registry.gauge("g", &[("a", &value), ("b", &raw)]).expect("valid").set(1.5);

            let om = render(&registry.snapshot(), Format::OpenMetrics);
            let parsed = openmetrics_parser::openmetrics::parse_openmetrics(&om)
                .map_err(|e| TestCaseError::fail(format!("{e:?} in {om}")))?;
            let family = &parsed.families["g"];
            prop_assert_eq!(&family.help, &help);
            let sample = family.get_sample_by_label_values(&[value.clone(), raw.clone()]);
            prop_assert!(sample.is_some(), "labels lost in {}", om);

            let text = render(&registry.snapshot(), Format::PrometheusText);
            let parsed = openmetrics_parser::prometheus::parse_prometheus(&text)
                .map_err(|e| TestCaseError::fail(format!("{e:?} in {text}")))?;
            let family = &parsed.families["g"];
            prop_assert!(family.get_sample_by_label_values(&[value, raw]).is_some(), "labels lost in {}", text);
        }

        /// Every float value renders as something the parsers read back to the same value.
        #[test]
        fn floats_round_trip(v in any::<f64>()) {
            let mut out = String::new();
            push_f64(v, &mut out);
            let back: f64 = match out.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().map_err(|e| TestCaseError::fail(format!("{e} for {other}")))?,
            };
            prop_assert!(back == v || (back.is_nan() && v.is_nan()), "{} -> {} -> {}", v, out, back);
        }
    }
}
