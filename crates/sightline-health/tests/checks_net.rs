//! The network checks against local peers: TCP listeners, a tiny HTTP(S) server and a real Redis.

// The helpers outside #[test] functions (servers, certificates) unwrap too.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use sightline_health::checks::http::{HttpCheck, StatusSet};
use sightline_health::checks::redis::RedisCheck;
use sightline_health::checks::tcp::TcpCheck;
use sightline_health::{HealthCheck, Probe, Status};
use sightline_testkit::{ChildGuard, free_port, require_peer, wait_for_port};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const DAY: u64 = 86_400;

fn assert_status(probe: &Probe, status: Status) {
    assert_eq!(probe.status, status, "{probe:#?}");
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    free_port()
}

// ---------------------------------------------------------------------------------------------- TCP

#[tokio::test]
async fn tcp_connects_to_a_listener_and_reports_refusals() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The listener never accepts: the kernel completes the handshake from its backlog, which is all a
    // TCP check asks for.
    let probe = TcpCheck::new(addr.to_string()).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    let observed = probe.observed.clone().unwrap();
    assert_eq!(observed.unit, "ms");
    assert!(observed.value >= 0.0 && observed.value < 5_000.0, "{observed:?}");
    // The connect time is the observed value; the peer is the address, so it is not repeated.
    assert_eq!(probe.details, serde_json::json!({ "address": addr.to_string() }));

    // A host name, resolved on every probe (localhost may resolve to ::1 first; 127.0.0.1 is tried next).
    let probe = TcpCheck::new(format!("localhost:{}", addr.port())).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.details["address"], format!("localhost:{}", addr.port()));
    assert!(
        probe.details["peer"].as_str().is_some_and(|p| p.ends_with(&format!(":{}", addr.port()))),
        "{}",
        probe.details
    );

    let closed = format!("127.0.0.1:{}", closed_port());
    let probe = TcpCheck::new(&closed).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("connection refused"), "{}", probe.message);
    assert_eq!(probe.details["address"], closed);

    let probe = TcpCheck::new("no-such-host.invalid:80").unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("cannot resolve no-such-host.invalid"), "{}", probe.message);

    assert_eq!(TcpCheck::new("localhost").unwrap_err().parameter, "address");
}

// --------------------------------------------------------------------------------------------- HTTP

/// Answers one request with a canned response chosen by path, then closes the connection.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let json_body = json!({"status": "up", "checks": {"db": {"latency": 3, "ok": true}}}).to_string();
    let (status, extra, body) = match path.as_str() {
        "/ok" => ("200 OK", "", "hello world".to_owned()),
        "/unavailable" => ("503 Service Unavailable", "", "down for maintenance".to_owned()),
        "/json" => ("200 OK", "Content-Type: application/json\r\n", json_body),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(400)).await;
            ("200 OK", "", "finally".to_owned())
        }
        "/redirect" => ("302 Found", "Location: /ok\r\n", String::new()),
        _ => ("404 Not Found", "", "no such page".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A plain HTTP server on 127.0.0.1.
async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream));
        }
    });
    addr
}

/// An HTTPS server on 127.0.0.1 with a self-signed certificate valid until `not_after`.
async fn https_server(not_before: SystemTime, not_after: SystemTime) -> SocketAddr {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    answer(tls).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_status_expectations() {
    let addr = http_server().await;
    let probe = HttpCheck::new(format!("http://{addr}/ok")).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.details["status_code"], 200);
    assert_eq!(probe.details["host"], "127.0.0.1");
    assert_eq!(probe.observed.as_ref().unwrap().unit, "ms");

    let probe = HttpCheck::new(format!("http://{addr}/unavailable")).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert_eq!(probe.message, "HTTP 503, expected 200-399");
    assert_eq!(probe.details["status_code"], 503);

    let expect_503 = HttpCheck::builder(format!("http://{addr}/unavailable"))
        .expect_status(StatusSet::parse("503").unwrap())
        .build()
        .unwrap();
    assert_status(&expect_503.check().await, Status::Healthy);

    let only_204 = HttpCheck::builder(format!("http://{addr}/ok"))
        .expect_status(StatusSet::codes([204]).unwrap())
        .build()
        .unwrap();
    assert_status(&only_204.check().await, Status::Unhealthy);

    // Redirects are followed; the final URL is in the details.
    let probe = HttpCheck::new(format!("http://{addr}/redirect")).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.details["final_url"], format!("http://{addr}/ok"));

    // The same check probes again over its own client.
    let check = HttpCheck::new(format!("http://{addr}/ok")).unwrap();
    for _ in 0..3 {
        assert_status(&check.check().await, Status::Healthy);
    }
}

#[tokio::test]
async fn http_body_and_json_expectations() {
    let addr = http_server().await;
    let check = |path: &str| HttpCheck::builder(format!("http://{addr}{path}"));

    assert_status(&check("/ok").body_contains("hello").build().unwrap().check().await, Status::Healthy);
    let probe = check("/ok").body_contains("goodbye").build().unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert_eq!(probe.message, "body does not contain \"goodbye\"");

    let json_check = |pointer: &str, equals: serde_json::Value| {
        check("/json").json_pointer(pointer, equals).build().unwrap()
    };
    assert_status(&json_check("/status", json!("up")).check().await, Status::Healthy);
    // A string from the configuration matches a number or boolean of that text.
    assert_status(&json_check("/checks/db/latency", json!("3")).check().await, Status::Healthy);
    assert_status(&json_check("/checks/db/ok", json!("true")).check().await, Status::Healthy);
    assert_status(&json_check("/checks/db/ok", json!(true)).check().await, Status::Healthy);

    let probe = json_check("/status", json!("down")).check().await;
    assert_status(&probe, Status::Unhealthy);
    assert_eq!(probe.message, "JSON \"/status\" is \"up\", expected \"down\"");
    let probe = json_check("/checks/db/latency", json!(4)).check().await;
    assert_status(&probe, Status::Unhealthy);
    let probe = json_check("/checks/cache", json!("up")).check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("no JSON value at \"/checks/cache\""), "{}", probe.message);

    let probe = check("/ok").json_pointer("/status", "up").build().unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("body is not JSON"), "{}", probe.message);

    // A wrong status is reported without reading the body.
    let probe = check("/unavailable").body_contains("maintenance").build().unwrap().check().await;
    assert_eq!(probe.message, "HTTP 503, expected 200-399");
}

#[tokio::test]
async fn http_slow_responses_are_degraded() {
    let addr = http_server().await;
    let slow = HttpCheck::builder(format!("http://{addr}/slow"))
        .max_response_time(Duration::from_millis(100))
        .build()
        .unwrap();
    let probe = slow.check().await;
    assert_status(&probe, Status::Degraded);
    assert!(probe.message.starts_with("slow: "), "{}", probe.message);
    let observed = probe.observed.clone().unwrap();
    assert_eq!(observed.unit, "ms");
    assert!(observed.value >= 100.0 && observed.value < 10_000.0, "{observed:?}");

    let fast_enough = HttpCheck::builder(format!("http://{addr}/ok"))
        .max_response_time(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_status(&fast_enough.check().await, Status::Healthy);
}

#[tokio::test]
async fn http_connection_failures_and_bad_urls() {
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let probe = HttpCheck::new(&url).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("connection refused by 127.0.0.1:"), "{}", probe.message);
    assert_eq!(probe.details["url"], url);

    for bad in ["not a url", "ftp://example.com/", "http://", "localhost:8080/health"] {
        let e = HttpCheck::new(bad).unwrap_err();
        assert_eq!(e.parameter, "url", "{bad:?}: {e}");
    }
}

#[tokio::test]
async fn https_certificate_expiry() {
    let now = SystemTime::now();
    let long_ago = now - Duration::from_secs(400 * DAY);
    let check = |addr: SocketAddr| {
        HttpCheck::builder(format!("https://127.0.0.1:{}/ok", addr.port()))
            .accept_invalid_certs(true)
            .build()
            .unwrap()
    };

    // A year left: healthy, with the days in the details.
    let addr = https_server(long_ago, now + Duration::from_secs(365 * DAY)).await;
    let probe = check(addr).check().await;
    assert_status(&probe, Status::Healthy);
    let days = probe.details["cert_days_left"].as_f64().unwrap();
    assert!((364.0..=366.0).contains(&days), "{probe:#?}");
    assert_eq!(probe.observed.as_ref().unwrap().unit, "ms");

    // Five days left: degraded (warning at 14 days by default), observed in days.
    let addr = https_server(long_ago, now + Duration::from_secs(5 * DAY)).await;
    let probe = check(addr).check().await;
    assert_status(&probe, Status::Degraded);
    assert!(probe.message.starts_with("TLS certificate expires in "), "{}", probe.message);
    let observed = probe.observed.clone().unwrap();
    assert_eq!(observed.unit, "days");
    assert!((4.0..=6.0).contains(&observed.value), "{observed:?}");
    let no_warning = HttpCheck::builder(format!("https://127.0.0.1:{}/ok", addr.port()))
        .accept_invalid_certs(true)
        .cert_warn_days(3)
        .build()
        .unwrap();
    assert_status(&no_warning.check().await, Status::Healthy);

    // Expired ten days ago: unhealthy.
    let addr = https_server(long_ago, now - Duration::from_secs(10 * DAY)).await;
    let probe = check(addr).check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("TLS certificate expired 10 days ago"), "{}", probe.message);
    assert!(probe.observed.as_ref().unwrap().value < 0.0);

    // Verified as usual, a self-signed certificate fails the handshake.
    let addr = https_server(long_ago, now + Duration::from_secs(365 * DAY)).await;
    let probe = HttpCheck::new(format!("https://127.0.0.1:{}/ok", addr.port())).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.contains("certificate"), "{}", probe.message);
}

// -------------------------------------------------------------------------------------------- Redis

/// A TCP server on 127.0.0.1 that hands each connection to `serve`.
async fn fake_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    addr
}

#[tokio::test]
async fn redis_against_fake_servers() {
    // Reads whatever comes and never answers: the probe stays pending until the registry's timeout.
    let silent = fake_server(|mut stream| async move {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink).await;
    })
    .await;
    let check = RedisCheck::from_address(silent.to_string()).unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), check.check()).await.is_err());

    let garbage = fake_server(|mut stream| async move {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    let probe = RedisCheck::from_address(garbage.to_string()).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("not a Redis reply"), "{}", probe.message);

    let error = fake_server(|mut stream| async move {
        let _ = stream.write_all(b"-LOADING Redis is loading the dataset in memory\r\n").await;
    })
    .await;
    let probe = RedisCheck::from_address(error.to_string()).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert_eq!(probe.message, "LOADING Redis is loading the dataset in memory");

    let closing = fake_server(|stream| async move { drop(stream) }).await;
    let probe = RedisCheck::from_address(closing.to_string()).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);

    let probe = RedisCheck::from_address(format!("127.0.0.1:{}", closed_port())).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("connection refused"), "{}", probe.message);
}

/// Starts our own redis-server on `port`, waiting until it listens.
fn start_redis(binary: &std::path::Path, port: u16, password: &str) -> ChildGuard {
    let mut command = Command::new(binary);
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    command.args(["--requirepass", password]);
    let guard = ChildGuard::spawn_quiet(command).expect("start redis-server");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(wait_for_port(addr, Duration::from_secs(20)), "redis-server did not listen on {addr}");
    guard
}

#[tokio::test]
async fn redis_real_server_down_and_up_again() {
    let Some(binary) = require_peer("redis-server", "redis-server") else { return };
    let port = free_port();
    let server = start_redis(&binary, port, "s3cret");

    let good = RedisCheck::from_url(format!("redis://:s3cret@127.0.0.1:{port}")).unwrap();
    let probe = good.check().await;
    assert_status(&probe, Status::Healthy);
    assert_eq!(probe.message.split(' ').next(), Some("PONG"));
    let observed = probe.observed.clone().unwrap();
    assert_eq!(observed.unit, "ms");
    assert!(observed.value >= 0.0 && observed.value < 5_000.0);
    assert!(!probe.details.to_string().contains("s3cret"), "{}", probe.details);

    let probe = RedisCheck::from_address(format!("127.0.0.1:{port}")).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("NOAUTH"), "{}", probe.message);

    let probe = RedisCheck::from_url(format!("redis://:wrong@127.0.0.1:{port}")).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("AUTH: WRONGPASS"), "{}", probe.message);

    let probe =
        RedisCheck::from_url(format!("redis://default:s3cret@127.0.0.1:{port}/3")).unwrap().check().await;
    assert_status(&probe, Status::Healthy);
    let probe = RedisCheck::from_url(format!("redis://:s3cret@127.0.0.1:{port}/999")).unwrap().check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("SELECT: ERR"), "{}", probe.message);

    // Stopped: unhealthy. Started again on the same port: healthy again, through the same check.
    drop(server);
    let probe = good.check().await;
    assert_status(&probe, Status::Unhealthy);
    assert!(probe.message.starts_with("connection refused"), "{}", probe.message);

    let _server = start_redis(&binary, port, "s3cret");
    assert_status(&good.check().await, Status::Healthy);
}
