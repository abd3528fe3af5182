//! The Redis check: a PING over RESP, after AUTH and SELECT when the URL asks for them.

use std::time::Instant;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{CheckConfigError, HostPort, connect, millis, parse_address, truncate};
use crate::{BoxFuture, HealthCheck, Probe};

/// Redis's port.
pub const DEFAULT_PORT: u16 = 6379;

/// The longest reply line read; Redis's replies to these commands are short.
const MAX_REPLY: u64 = 512;

/// Connects to Redis, authenticates and selects the database when the URL has them, sends `PING` and
/// expects `+PONG`.
///
/// Healthy with the PING round trip in `ms` (details: the connect time too); Unhealthy on a refused
/// connection, an error reply (`-NOAUTH ...`, `-WRONGPASS ...`, `-LOADING ...`), a closed connection or
/// anything that is not RESP. A server that accepts and never answers leaves the probe pending until
/// the registry's timeout. Every probe uses a fresh connection. TLS (`rediss://`) is not supported.
///
/// ```
/// use sightline_health::checks::redis::RedisCheck;
///
/// let plain = RedisCheck::from_address("cache:6379")?;
/// let with_auth = RedisCheck::from_url("redis://:s3cret@cache:6380/2")?;
/// assert_eq!(with_auth.target(), "redis://:xxx@cache:6380/2");
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisCheck {
    target: HostPort,
    username: Option<String>,
    password: Option<String>,
    db: u32,
}

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck").field("target", &self.target()).finish_non_exhaustive()
    }
}

impl RedisCheck {
    /// A check of `address` (`host`, `host:port`, `[::1]:port`; the port defaults to 6379), without
    /// authentication. The error names `address`.
    pub fn from_address(address: impl AsRef<str>) -> Result<Self, CheckConfigError> {
        let target = parse_address(address.as_ref(), Some(DEFAULT_PORT))
            .map_err(|e| CheckConfigError::new("address", e))?;
        Ok(Self { target, username: None, password: None, db: 0 })
    }

    /// A check of `redis://[[user]:password@]host[:port][/db]`. The password and user name may be
    /// percent-encoded. The error names `url`.
    pub fn from_url(url: impl AsRef<str>) -> Result<Self, CheckConfigError> {
        let text = url.as_ref().trim();
        let bad = |reason: String| CheckConfigError::new("url", reason);
        let url = url::Url::parse(text).map_err(|e| bad(format!("{text:?}: {e}")))?;
        match url.scheme() {
            "redis" => {}
            "rediss" => return Err(bad("rediss:// (Redis over TLS) is not supported".into())),
            other => return Err(bad(format!("the scheme must be redis, not {other}"))),
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad(format!("{text:?} has no host"))),
        };
        let port = match url.port() {
            Some(0) => return Err(bad(format!("{text:?}: port 0"))),
            Some(port) => port,
            None => DEFAULT_PORT,
        };
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            db => db.parse::<u32>().map_err(|_| bad(format!("{db:?} is not a database number")))?,
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad(format!("{text:?}: query parameters are not supported")));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("the user name or password is not valid UTF-8".into()))
        };
        let username = Some(decode(url.username())?).filter(|u| !u.is_empty());
        let password = url.password().map(decode).transpose()?;
        if username.is_some() && password.is_none() {
            return Err(bad("a user name without a password (write redis://user:password@host)".into()));
        }
        Ok(Self { target: HostPort { host, port }, username, password, db })
    }

    /// The server, as a URL without the password.
    pub fn target(&self) -> String {
        let auth = match (&self.username, &self.password) {
            (Some(user), Some(_)) => format!("{user}:xxx@"),
            (None, Some(_)) => ":xxx@".to_owned(),
            _ => String::new(),
        };
        let db = if self.db == 0 { String::new() } else { format!("/{}", self.db) };
        format!("redis://{auth}{}{db}", self.target)
    }

    async fn exchange(
        &self,
        details: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<f64, String> {
        let start = Instant::now();
        let (stream, peer) = connect(&self.target).await?;
        details.insert("peer".into(), json!(peer.to_string()));
        details.insert("connect_ms".into(), json!(millis(start.elapsed())));
        let mut conn = BufReader::new(stream);
        if let Some(password) = &self.password {
            let mut auth = vec!["AUTH"];
            auth.extend(self.username.as_deref());
            auth.push(password);
            command(&mut conn, &auth, "+OK").await.map_err(|e| format!("AUTH: {e}"))?;
        }
        if self.db != 0 {
            command(&mut conn, &["SELECT", &self.db.to_string()], "+OK")
                .await
                .map_err(|e| format!("SELECT: {e}"))?;
        }
        let ping = Instant::now();
        command(&mut conn, &["PING"], "+PONG").await?;
        Ok(millis(ping.elapsed()))
    }
}

impl HealthCheck for RedisCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(async move {
            let mut details = serde_json::Map::new();
            details.insert("server".into(), json!(self.target()));
            match self.exchange(&mut details).await {
                Ok(ms) => {
                    details.insert("ping_ms".into(), json!(ms));
                    Probe::healthy(format!("PONG in {ms:.1} ms"))
                        .with_details(serde_json::Value::Object(details))
                        .with_observed(ms, "ms")
                }
                Err(message) => {
                    details.insert("error".into(), json!(message));
                    Probe::unhealthy(message).with_details(serde_json::Value::Object(details))
                }
            }
        })
    }
}

/// Sends one command as a RESP array and reads a one-line reply, which must be `expected`.
async fn command(conn: &mut BufReader<TcpStream>, args: &[&str], expected: &str) -> Result<(), String> {
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    conn.get_mut().write_all(request.as_bytes()).await.map_err(|e| format!("cannot send: {e}"))?;
    let mut line = Vec::new();
    let read = (&mut *conn).take(MAX_REPLY).read_until(b'\n', &mut line).await;
    match read {
        Err(e) => return Err(format!("cannot read the reply: {e}")),
        Ok(0) => return Err("the server closed the connection".into()),
        Ok(_) => {}
    }
    let Some(reply) = line.strip_suffix(b"\r\n") else {
        return Err(format!("not a Redis reply: {}", shown(&line)));
    };
    match reply.first() {
        Some(b'-') => Err(shown(&reply[1..])),
        _ if reply == expected.as_bytes() => Ok(()),
        Some(
            b'+' | b':' | b'$' | b'*' | b'_' | b'#' | b'%' | b'=' | b'!' | b'(' | b',' | b'>' | b'|' | b'~',
        ) => Err(format!("unexpected reply {}, expected {expected}", shown(reply))),
        _ => Err(format!("not a Redis reply: {}", shown(&line))),
    }
}

/// Bytes for a message: lossy UTF-8, control characters escaped, at most 128 bytes.
fn shown(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(bytes).chars().flat_map(char::escape_debug).collect();
    truncate(&text, 128)
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let check = RedisCheck::from_url("redis://:p%40ss@cache.internal:6380/3").unwrap();
        assert_eq!(check.target, HostPort { host: "cache.internal".into(), port: 6380 });
        assert_eq!((check.username, check.password.as_deref(), check.db), (None, Some("p@ss"), 3));

        let check = RedisCheck::from_url("redis://app:pw@[::1]").unwrap();
        assert_eq!(check.target, HostPort { host: "::1".into(), port: 6379 });
        assert_eq!(check.username.as_deref(), Some("app"));
        assert_eq!(check.target(), "redis://app:xxx@[::1]:6379");

        assert_eq!(RedisCheck::from_url("redis://127.0.0.1").unwrap().target(), "redis://127.0.0.1:6379");
        for bad in
            ["", "cache:6379", "http://cache", "rediss://cache", "redis://", "redis://h/x", "redis://u@h"]
        {
            assert_eq!(RedisCheck::from_url(bad).unwrap_err().parameter, "url", "{bad:?}");
        }
        assert_eq!(RedisCheck::from_address("cache").unwrap().target.port, 6379);
        assert_eq!(RedisCheck::from_address("cache:x").unwrap_err().parameter, "address");
    }

    #[test]
    fn decoding_and_display() {
        assert_eq!(percent_decode("a%20b%zz%4"), Some("a b%zz%4".into()));
        assert_eq!(shown(b"-ERR \x01bad\r\n"), "-ERR \\u{1}bad\\r\\n");
        assert!(!format!("{:?}", RedisCheck::from_url("redis://:secret@h").unwrap()).contains("secret"));
    }
}
