//! Ready-made checks: TCP ports, HTTP endpoints (with TLS certificate expiry), Redis, PostgreSQL, writable
//! directories, free disk space, external commands and process resources.
//!
//! Each check validates its parameters when it is built and returns a [`CheckConfigError`] naming the bad
//! parameter by its configuration key (`address`, `url`, `expect_status`, `path`, `warn_ratio`, ...), so
//! that a server can point at the offending line of its configuration. None of them applies an overall
//! timeout: the registry bounds every probe and drops the future of one that hangs.

pub mod command;
pub mod disk;
pub mod filesystem;
pub mod http;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod redis;
pub mod resources;
pub mod tcp;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

/// A check's parameter is invalid.
///
/// `parameter` is the configuration key (`url`, `warn_ratio`, ...), `reason` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{parameter}`: {reason}")]
pub struct CheckConfigError {
    /// The configuration key of the bad parameter.
    pub parameter: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl CheckConfigError {
    pub(crate) fn new(parameter: &'static str, reason: impl Into<String>) -> Self {
        Self { parameter, reason: reason.into() }
    }
}

/// A duration in milliseconds, with a fractional part.
pub(crate) fn millis(duration: Duration) -> f64 {
    // Whole microseconds: the clock resolution that means something for a probe, and a short number in
    // JSON (`0.254`, not `0.25455900000000004`).
    duration.as_micros() as f64 / 1000.0
}

/// A host and a port, as written in an `address` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    /// A host name or an IP address, without the brackets of an IPv6 address.
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Parses `host:port`, `1.2.3.4:port` or `[::1]:port`; without a port, `default_port` if there is one.
pub(crate) fn parse_address(address: &str, default_port: Option<u16>) -> Result<HostPort, String> {
    let address = address.trim();
    if address.is_empty() {
        return Err("is empty".into());
    }
    if let Ok(addr) = address.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return Err(format!("port 0 in {address:?} is not a port to connect to"));
        }
        return Ok(HostPort { host: addr.ip().to_string(), port: addr.port() });
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{address:?} has an unclosed '[' (write [::1]:port)"))?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} in {address:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("expected ':port' after ']' in {address:?}"))?,
            ),
        };
        (host, port)
    } else if address.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(format!("write the IPv6 address {address:?} in brackets, as [{address}]:port"));
    } else {
        match address.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{address:?} has no host"));
    }
    if host.contains(|c: char| {
        c.is_whitespace() || c == '/' || c == '@' || c == ':' && !address.starts_with('[')
    }) {
        return Err(format!("{host:?} in {address:?} is not a host name or IP address"));
    }
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("{port:?} in {address:?} is not a port (1-65535)")),
            Ok(port) => port,
        },
        None => default_port.ok_or_else(|| format!("{address:?} has no port (write host:port)"))?,
    };
    Ok(HostPort { host: host.to_owned(), port })
}

/// Resolves `target` with the system resolver and connects to its addresses in turn.
///
/// Returns the stream and the address it reached, or a short message for people: "connection refused by
/// 127.0.0.1:5", "cannot resolve db.example: ...".
pub(crate) async fn connect(target: &HostPort) -> Result<(TcpStream, SocketAddr), String> {
    let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
        Ok(addrs) => addrs.collect(),
        Err(e) => return Err(format!("cannot resolve {}: {e}", target.host)),
    };
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok((stream, *addr)),
            Err(e) => last = Some((*addr, e)),
        }
    }
    Err(match last {
        Some((addr, e)) => describe_connect_error(addr, &e),
        None => format!("{} resolved to no address", target.host),
    })
}

/// "connection refused by 127.0.0.1:5" and the like.
fn describe_connect_error(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("connection refused by {addr}"),
        std::io::ErrorKind::TimedOut => format!("connection to {addr} timed out"),
        _ => format!("cannot connect to {addr}: {e}"),
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with "…" when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(address: &str, default_port: Option<u16>) -> (String, u16) {
        let hp = parse_address(address, default_port).unwrap_or_else(|e| panic!("{address}: {e}"));
        (hp.host, hp.port)
    }

    #[test]
    fn addresses() {
        assert_eq!(ok("localhost:80", None), ("localhost".into(), 80));
        assert_eq!(ok("127.0.0.1:6379", None), ("127.0.0.1".into(), 6379));
        assert_eq!(ok("[::1]:6379", None), ("::1".into(), 6379));
        assert_eq!(ok("[::1]", Some(6379)), ("::1".into(), 6379));
        assert_eq!(ok("cache", Some(6379)), ("cache".into(), 6379));
        assert_eq!(ok(" db.internal:5432 ", None), ("db.internal".into(), 5432));
        assert_eq!(HostPort { host: "::1".into(), port: 1 }.to_string(), "[::1]:1");
        for bad in
            ["", "host", "host:", "host:0", "host:70000", ":80", "::1", "[::1", "[x]:1", "a b:1", "h/p:1"]
        {
            assert!(parse_address(bad, None).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("aé", 2), "a…");
    }
}
