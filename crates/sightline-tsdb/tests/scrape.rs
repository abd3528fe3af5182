//! Scraping end to end: a real `prometheus-node-exporter`, and local HTTP servers that hang, return
//! garbage, exceed limits, want credentials or serve OpenMetrics, scraped by a `ScrapeManager` into a
//! `MemStorage`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promql_parser::label::{MatchOp, Matcher};
use sightline_testkit::{ChildGuard, TempDir, free_port, require_peer, wait_for_port};
use sightline_tsdb::mem::MemStorage;
use sightline_tsdb::sample::is_stale;
use sightline_tsdb::scrape::{
    Authorization, BasicAuth, ByteSize, GlobalConfig, Health, PromDuration, ScrapeConfig, ScrapeManager,
    Secret, TargetStatus,
};
use sightline_tsdb::{Querier, SelectHints, Series, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a test server answers one request: a raw HTTP response, or `None` to hang.
type Handler = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// A local HTTP server on a tokio listener that answers with `handler` and records request heads.
struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    async fn start(handler: Handler) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let handler = handler.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    // One request per connection is enough: every response closes it.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    seen.lock().unwrap().push(head.clone());
                    match handler(&head) {
                        Some(response) => {
                            let _ = socket.write_all(&response).await;
                            let _ = socket.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        Self { addr, requests }
    }

    fn target(&self) -> String {
        self.addr.to_string()
    }
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn text(body: &str) -> Vec<u8> {
    response("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
}

fn serve(body: &'static str) -> Handler {
    Arc::new(move |_| Some(text(body)))
}

fn job(name: &str, target: &str, interval_ms: u64) -> ScrapeConfig {
    let mut job = ScrapeConfig::new(name, &[target]);
    job.scrape_interval = Some(PromDuration(Duration::from_millis(interval_ms)));
    job.scrape_timeout = Some(PromDuration(Duration::from_millis(interval_ms.min(2_000))));
    job
}

fn select(store: &MemStorage, matchers: &[(&str, &str)]) -> Vec<Series> {
    let matchers: Vec<Matcher> = matchers.iter().map(|(n, v)| Matcher::new(MatchOp::Equal, n, v)).collect();
    store.select(&matchers, &SelectHints::range(i64::MIN, i64::MAX)).expect("select")
}

/// Starts a manager over `configs` on the test's runtime.
fn start(store: &Arc<MemStorage>, configs: Vec<ScrapeConfig>) -> ScrapeManager {
    let storage: Arc<dyn Storage> = store.clone();
    let manager = ScrapeManager::new(storage, GlobalConfig::default(), configs).expect("valid config");
    let running = manager.clone();
    tokio::spawn(async move { running.run().await });
    manager
}

/// Waits until `check` holds, polling.
async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn status(manager: &ScrapeManager, job: &str) -> TargetStatus {
    manager.targets().into_iter().find(|t| t.job == job).expect("target status")
}

/// The values of `up` for a job, oldest first.
fn up(store: &MemStorage, job: &str) -> Vec<f64> {
    select(store, &[("__name__", "up"), ("job", job)])
        .first()
        .map(|s| s.samples.iter().map(|x| x.v).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_real_node_exporter() {
    let Some(exporter) = require_peer("prometheus-node-exporter", "prometheus-node-exporter") else { return };
    let port = free_port();
    let mut command = Command::new(exporter);
    command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let _child = ChildGuard::spawn_quiet(command).expect("spawn node exporter");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(wait_for_port(addr, Duration::from_secs(10)), "node exporter did not start");

    let store = Arc::new(MemStorage::new());
    let mut config = job("node", &addr.to_string(), 2_000);
    config.scrape_timeout = Some(PromDuration(Duration::from_secs(2)));
    let manager = start(&store, vec![config]);
    assert!(manager.wait_first_scrapes(Duration::from_secs(10)).await, "no scrape within 10 s");

    let target = status(&manager, "node");
    assert_eq!(target.health, Health::Up, "last error: {}", target.last_error);
    assert!(target.last_samples > 100, "only {} samples", target.last_samples);
    assert_eq!(up(&store, "node").first(), Some(&1.0));
    let instance = addr.to_string();
    let all = store.series(&[], i64::MIN, i64::MAX).expect("series");
    let node: Vec<_> =
        all.iter().filter(|l| l.metric_name().is_some_and(|n| n.starts_with("node_"))).collect();
    assert!(node.len() > 50, "only {} node_ series", node.len());
    assert!(
        node.iter().all(|l| l.get("job") == Some("node") && l.get("instance") == Some(instance.as_str()))
    );
    assert!(!select(&store, &[("__name__", "node_cpu_seconds_total"), ("mode", "idle")]).is_empty());
    let scraped = select(&store, &[("__name__", "scrape_samples_scraped"), ("job", "node")]);
    assert_eq!(scraped[0].samples[0].v, target.last_samples as f64);
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_targets_report_up_0_with_the_reason() {
    let hang = TestServer::start(Arc::new(|_| None)).await;
    let garbage = TestServer::start(serve("ok_metric 1\n<html><body>Oops</body></html>\n")).await;
    let limited = TestServer::start(serve("a 1\nb 2\nc 3\nd 4\n")).await;
    let html = TestServer::start(Arc::new(|_| Some(response("200 OK", "text/html", "<html></html>")))).await;
    let big = TestServer::start(serve(Box::leak("x 1\n".repeat(1000).into_boxed_str()))).await;
    let store = Arc::new(MemStorage::new());
    let mut hang_job = job("hang", &hang.target(), 1_000);
    hang_job.scrape_timeout = Some(PromDuration(Duration::from_millis(300)));
    let mut limited_job = job("limited", &limited.target(), 1_000);
    limited_job.sample_limit = 3;
    let mut big_job = job("big", &big.target(), 1_000);
    big_job.body_size_limit = ByteSize(1024);
    let refused = job("refused", &format!("127.0.0.1:{}", free_port()), 1_000);
    let manager = start(
        &store,
        vec![
            hang_job,
            job("garbage", &garbage.target(), 1_000),
            limited_job,
            job("html", &html.target(), 1_000),
            big_job,
            refused,
        ],
    );
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);

    let expect_down = |name: &str, needle: &str| {
        let target = status(&manager, name);
        assert_eq!(target.health, Health::Down, "{name}");
        assert!(target.last_error.contains(needle), "{name}: {:?} lacks {needle:?}", target.last_error);
        let ups = up(&store, name);
        assert!(!ups.is_empty() && ups.iter().all(|v| *v == 0.0), "{name}: {ups:?}");
    };
    expect_down("hang", "timed out after 300ms");
    expect_down("garbage", "line 2");
    expect_down("limited", "sample_limit exceeded: 4 samples, limit 3");
    expect_down("html", "unsupported Content-Type \"text/html\"");
    expect_down("big", "body_size_limit");
    expect_down("refused", "request failed");
    // Nothing from a failed body is stored, but the report says how many samples it had.
    assert!(select(&store, &[("__name__", "ok_metric")]).is_empty());
    assert!(select(&store, &[("__name__", "a")]).is_empty());
    let scraped = select(&store, &[("__name__", "scrape_samples_scraped"), ("job", "limited")]);
    assert_eq!(scraped[0].samples[0].v, 4.0);
    let duration = select(&store, &[("__name__", "scrape_duration_seconds"), ("job", "hang")]);
    assert!(duration[0].samples[0].v >= 0.3, "the hang lasted the timeout: {:?}", duration[0].samples);
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_does_not_delay_others() {
    let hang = TestServer::start(Arc::new(|_| None)).await;
    let good = TestServer::start(serve("fine 1\n")).await;
    let store = Arc::new(MemStorage::new());
    let mut hang_job = job("hang", &hang.target(), 5_000);
    hang_job.scrape_timeout = Some(PromDuration(Duration::from_secs(5)));
    let manager = start(&store, vec![hang_job, job("good", &good.target(), 100)]);
    // Within two seconds the good target is scraped many times, while the other hangs for five.
    eventually("ten good scrapes", Duration::from_secs(3), || up(&store, "good").len() >= 10).await;
    assert!(up(&store, "good").iter().all(|v| *v == 1.0));
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_prometheus_headers_and_credentials() {
    let secured: Handler = Arc::new(|head: &str| {
        let head = head.to_ascii_lowercase();
        if head.contains("authorization: basic cHJvbTpzM2NyZXQ=".to_ascii_lowercase().as_str())
            || head.contains("authorization: bearer tok-123")
        {
            Some(text("secret_metric 42\n"))
        } else {
            Some(response("401 Unauthorized", "text/plain", "unauthorized\n"))
        }
    });
    let server = TestServer::start(secured).await;
    let dir = TempDir::new("scrape-auth");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-123\n").expect("write token");

    let mut basic = job("basic", &server.target(), 1_000);
    basic.basic_auth = Some(BasicAuth {
        username: "prom".into(),
        username_file: None,
        password: Some(Secret("s3cret".into())),
        password_file: None,
    });
    let mut bearer = job("bearer", &server.target(), 1_000);
    bearer.authorization = Some(Authorization {
        kind: "Bearer".into(),
        credentials: None,
        credentials_file: Some(token_file.display().to_string()),
    });
    let mut wrong = job("wrong", &server.target(), 1_000);
    wrong.bearer_token = Some(Secret("nope".into()));
    let anonymous = job("anonymous", &server.target(), 1_000);

    let store = Arc::new(MemStorage::new());
    let manager = start(&store, vec![basic, bearer, wrong, anonymous]);
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);
    for name in ["basic", "bearer"] {
        assert_eq!(
            status(&manager, name).health,
            Health::Up,
            "{name}: {}",
            status(&manager, name).last_error
        );
        assert_eq!(select(&store, &[("__name__", "secret_metric"), ("job", name)]).len(), 1, "{name}");
    }
    for name in ["wrong", "anonymous"] {
        assert_eq!(
            status(&manager, name).last_error,
            "server returned HTTP status 401 Unauthorized",
            "{name}"
        );
    }
    let requests = server.requests.lock().unwrap().clone();
    let head = requests[0].to_ascii_lowercase();
    assert!(head.starts_with("get /metrics http/1.1"), "{head}");
    assert!(head.contains(&format!("accept: {}", sightline_tsdb::scrape::ACCEPT_HEADER)), "{head}");
    assert!(head.contains("x-prometheus-scrape-timeout-seconds: 1\r\n"), "{head}");
    assert!(head.contains("accept-encoding: gzip"), "{head}");
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_openmetrics_with_timestamps_created_and_exemplars() {
    let body = "# TYPE requests counter\n# UNIT requests_seconds seconds\n# HELP requests Requests.\n\
                requests_total{path=\"/\"} 7 1700000000.5 # {trace_id=\"abc\"} 1.0\n\
                requests_created{path=\"/\"} 1699999000\n\
                # TYPE latency histogram\n\
                latency_bucket{le=\"1\"} 3\nlatency_bucket{le=\"+Inf\"} 4\nlatency_sum 2.5\nlatency_count 4\n\
                # EOF\n";
    let handler: Handler = Arc::new(move |_| {
        Some(response("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", body))
    });
    let server = TestServer::start(handler).await;
    let store = Arc::new(MemStorage::new());
    let manager = start(&store, vec![job("om", &server.target(), 1_000)]);
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);
    assert_eq!(status(&manager, "om").health, Health::Up, "{}", status(&manager, "om").last_error);
    let total = select(&store, &[("__name__", "requests_total")]);
    assert_eq!(total[0].samples[0].t, 1_700_000_000_500, "the exposed timestamp is honoured");
    assert_eq!(total[0].samples[0].v, 7.0);
    assert_eq!(select(&store, &[("__name__", "requests_created")]).len(), 1);
    assert_eq!(select(&store, &[("__name__", "latency_bucket"), ("le", "1.0")]).len(), 1, "le normalised");
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staleness_when_a_series_or_a_target_goes_away() {
    let body = Arc::new(Mutex::new("kept 1\nleaving 2\n"));
    let current = body.clone();
    let server = TestServer::start(Arc::new(move |_| Some(text(*current.lock().unwrap())))).await;
    let other = TestServer::start(serve("other 1\n")).await;
    let store = Arc::new(MemStorage::new());
    let configs = vec![job("changing", &server.target(), 100), job("removed", &other.target(), 100)];
    let manager = start(&store, configs.clone());
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);

    *body.lock().unwrap() = "kept 1\n";
    eventually("a staleness marker for `leaving`", Duration::from_secs(3), || {
        select(&store, &[("__name__", "leaving")])
            .first()
            .is_some_and(|s| s.samples.last().is_some_and(|x| is_stale(x.v)))
    })
    .await;
    let kept = select(&store, &[("__name__", "kept")]);
    assert!(kept[0].samples.iter().all(|x| x.v == 1.0), "`kept` never goes stale");

    // Removing a job marks its series and its report series stale.
    manager.apply_config(GlobalConfig::default(), vec![configs[0].clone()]).expect("reload");
    eventually("staleness markers for the removed target", Duration::from_secs(3), || {
        ["other", "up", "scrape_duration_seconds"].iter().all(|name| {
            select(&store, &[("__name__", name), ("job", "removed")])
                .first()
                .is_some_and(|s| s.samples.last().is_some_and(|x| is_stale(x.v)))
        })
    })
    .await;
    assert_eq!(manager.targets().len(), 1);
    // The unchanged job kept running through the reload.
    let before = up(&store, "changing").len();
    eventually("more scrapes of the kept job", Duration::from_secs(3), || {
        up(&store, "changing").len() > before + 2
    })
    .await;
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honor_labels_both_ways() {
    let server = TestServer::start(serve("m{job=\"inner\",instance=\"elsewhere\",zone=\"a\"} 1\n")).await;
    let mut honored = job("honored", &server.target(), 1_000);
    honored.honor_labels = true;
    honored.static_configs[0].labels = BTreeMap::from([("zone".to_owned(), "static".to_owned())]);
    let mut plain = job("plain", &server.target(), 1_000);
    plain.static_configs[0].labels = BTreeMap::from([("zone".to_owned(), "static".to_owned())]);
    let store = Arc::new(MemStorage::new());
    let manager = start(&store, vec![honored, plain]);
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);
    let all: Vec<String> =
        select(&store, &[("__name__", "m")]).iter().map(|s| s.labels.to_string()).collect();
    let target = server.target();
    assert!(all.contains(&r#"m{instance="elsewhere", job="inner", zone="a"}"#.to_owned()), "{all:?}");
    assert!(
        all.contains(&format!(
            r#"m{{exported_instance="elsewhere", exported_job="inner", exported_zone="a", instance="{target}", job="plain", zone="static"}}"#
        )),
        "{all:?}"
    );
    // Report series always carry the target's own labels.
    assert_eq!(up(&store, "honored").first(), Some(&1.0));
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_status_serialises_like_prometheus() {
    let server = TestServer::start(serve("x 1\n")).await;
    let store = Arc::new(MemStorage::new());
    let manager = start(&store, vec![job("api", &server.target(), 1_000)]);
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);
    let json = serde_json::to_value(manager.targets()).expect("json");
    let target = &json[0];
    assert_eq!(target["scrapePool"], "api");
    assert_eq!(target["health"], "up");
    assert_eq!(target["lastError"], "");
    assert_eq!(target["scrapeInterval"], "1s");
    assert_eq!(target["scrapeTimeout"], "1s");
    assert_eq!(target["labels"]["job"], "api");
    assert_eq!(target["labels"]["instance"], server.target());
    assert_eq!(target["discoveredLabels"]["__address__"], server.target());
    assert_eq!(target["discoveredLabels"]["__metrics_path__"], "/metrics");
    assert_eq!(target["scrapeUrl"], format!("http://{}/metrics", server.target()));
    assert!(
        target["lastScrape"].as_str().is_some_and(|s| s.ends_with('Z') && s.starts_with("20")),
        "{target}"
    );
    assert!(target["lastScrapeDuration"].as_f64().is_some_and(|d| d > 0.0 && d < 1.0), "{target}");
    manager.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_target() {
    let server = TestServer::start(serve("x 1\n")).await;
    let store = Arc::new(MemStorage::new());
    let storage: Arc<dyn Storage> = store.clone();
    let manager = ScrapeManager::new(storage, GlobalConfig::default(), vec![job("a", &server.target(), 100)])
        .expect("config");
    let running = manager.clone();
    let task = tokio::spawn(async move { running.run().await });
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);
    manager.shutdown();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("run returns").expect("no panic");
    let count = up(&store, "a").len();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(up(&store, "a").len(), count, "no scrapes after shutdown");
    assert!(!up(&store, "a").iter().any(|v| is_stale(*v)), "no staleness markers on shutdown");
}

/// A gzip stream of `data` in one stored (uncompressed) deflate block: enough to check that gzip bodies
/// are decoded, without a compression library in the tests.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for byte in data {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let len = u16::try_from(data.len()).expect("small body");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decodes_gzip_bodies() {
    let handler: Handler = Arc::new(|head: &str| {
        if !head.to_ascii_lowercase().contains("accept-encoding: gzip") {
            return Some(response("406 Not Acceptable", "text/plain", "gzip only\n"));
        }
        let body = gzip_stored(b"zipped_metric{a=\"b\"} 3\n");
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Encoding: gzip\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        Some(out)
    });
    let server = TestServer::start(handler).await;
    let store = Arc::new(MemStorage::new());
    let manager = start(&store, vec![job("gzip", &server.target(), 1_000)]);
    assert!(manager.wait_first_scrapes(Duration::from_secs(5)).await);
    assert_eq!(status(&manager, "gzip").health, Health::Up, "{}", status(&manager, "gzip").last_error);
    let zipped = select(&store, &[("__name__", "zipped_metric"), ("a", "b")]);
    assert_eq!(zipped[0].samples[0].v, 3.0);
    manager.shutdown();
}
