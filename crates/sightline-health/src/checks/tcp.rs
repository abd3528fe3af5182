//! The TCP check: does something accept connections at `host:port`?

use std::time::Instant;

use serde_json::json;

use super::{CheckConfigError, HostPort, connect, millis, parse_address};
use crate::{BoxFuture, HealthCheck, Probe};

/// Connects to `address` (`host:port`, `10.0.0.1:80`, `[::1]:80`) and closes the connection.
///
/// Host names are resolved on every probe with the system resolver, and the addresses tried in turn.
/// Healthy with the time to resolve and connect (in `ms`); Unhealthy with "connection refused by ..." or
/// the resolver's or the OS's error. A connection attempt that gets no answer at all ends with the OS's
/// connect timeout, or earlier with the registry's.
///
/// ```
/// use sightline_health::checks::tcp::TcpCheck;
///
/// let check = TcpCheck::new("localhost:5432")?;
/// assert!(TcpCheck::new("localhost").is_err()); // no port
/// # Ok::<(), sightline_health::checks::CheckConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TcpCheck {
    target: HostPort,
}

impl TcpCheck {
    /// A check of `address`, which must have a port. The error names the `address` parameter.
    pub fn new(address: impl AsRef<str>) -> Result<Self, CheckConfigError> {
        let target =
            parse_address(address.as_ref(), None).map_err(|e| CheckConfigError::new("address", e))?;
        Ok(Self { target })
    }

    /// The address, as `host:port`.
    pub fn address(&self) -> String {
        self.target.to_string()
    }
}

impl HealthCheck for TcpCheck {
    fn check(&self) -> BoxFuture<'_, Probe> {
        Box::pin(async move {
            let address = self.target.to_string();
            let start = Instant::now();
            match connect(&self.target).await {
                Ok((stream, peer)) => {
                    let ms = millis(start.elapsed());
                    drop(stream);
                    // The connect time is the observed value, not repeated in the details; the peer is
                    // named only when it is not the address itself (a host name resolved to it).
                    let peer = peer.to_string();
                    let details = if peer == address {
                        json!({ "address": address })
                    } else {
                        json!({ "address": address, "peer": peer })
                    };
                    Probe::healthy(format!("connected to {peer} in {ms:.1} ms"))
                        .with_details(details)
                        .with_observed(ms, "ms")
                }
                Err(message) => Probe::unhealthy(message.clone())
                    .with_details(json!({ "address": address, "error": message })),
            }
        })
    }
}
