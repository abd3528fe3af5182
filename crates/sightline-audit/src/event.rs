//! The audit event: who did what to which target, with what outcome; its validation, its JSON form and
//! the canonical encoding its hash covers.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Longest `message`, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Longest short text field (ids, action, types, component, ...), in bytes.
pub const MAX_FIELD_BYTES: usize = 512;
/// Largest `attributes` object, as compact JSON, in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// How the attempted action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It was done.
    Success,
    /// It was attempted and failed (bad password, validation error).
    Failure,
    /// It was refused by policy (no permission, rate limited).
    Denied,
    /// Something broke while doing it.
    Error,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 4] = [Outcome::Success, Outcome::Failure, Outcome::Denied, Outcome::Error];

    /// `success`, `failure`, `denied` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s words.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// How much the event matters, as OCSF's severity levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Routine (the default).
    #[default]
    Info,
    /// Worth a look.
    Low,
    /// Needs attention.
    Medium,
    /// Needs attention soon.
    High,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// `info`, `low`, `medium`, `high` or `critical`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s words.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// A stable id: a user name, a service account, a key id.
    pub id: String,
    /// `user`, `service`, `system`, ... (default `user`).
    #[serde(rename = "type", default = "default_actor_type")]
    pub kind: String,
    /// The client address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The client's user agent, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

fn default_actor_type() -> String {
    "user".to_owned()
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// `repository`, `user`, `alert`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: String,
}

/// One audit event. Build it with [`AuditEvent::builder`] or parse it with [`AuditEvent::from_json`];
/// both validate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// A UUIDv7: unique and sortable by creation time.
    #[serde(default = "Uuid::now_v7")]
    pub id: Uuid,
    /// When it happened (RFC 3339 in JSON), to the microsecond.
    #[serde(default = "now", with = "rfc3339")]
    pub timestamp: SystemTime,
    /// Who acted.
    pub actor: Actor,
    /// What they did, dotted and lower case: `auth.login`, `scan.start`.
    pub action: String,
    /// What they acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// How it ended.
    pub outcome: Outcome,
    /// How much it matters.
    #[serde(default)]
    pub severity: Severity,
    /// The part of the system that reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// The request it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The trace it belongs to (W3C, 32 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
    /// Anything else, as a JSON object.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// Why an event is invalid. `field` is the path of the offending field (`actor.id`, `attributes`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct EventError {
    /// The field's path.
    pub field: String,
    /// What is wrong with it, and what would be right.
    pub reason: String,
}

impl EventError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl AuditEvent {
    /// A builder for an event of `action` by `actor_id`, with outcome `success`, severity `info`, a new
    /// id and the current time.
    pub fn builder(action: impl Into<String>, actor_id: impl Into<String>) -> AuditEventBuilder {
        AuditEventBuilder {
            event: AuditEvent {
                id: Uuid::now_v7(),
                timestamp: SystemTime::now(),
                actor: Actor { id: actor_id.into(), kind: default_actor_type(), ip: None, user_agent: None },
                action: action.into(),
                target: None,
                outcome: Outcome::Success,
                severity: Severity::Info,
                component: None,
                request_id: None,
                trace_id: None,
                message: String::new(),
                attributes: Map::new(),
            },
        }
    }

    /// Parses and validates one event from JSON. Errors name the field (`actor.id`, `outcome`).
    pub fn from_json(value: &Value) -> Result<Self, EventError> {
        let event: AuditEvent = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "(event)".to_owned() } else { path };
            EventError::new(field, e.into_inner().to_string())
        })?;
        event.validate()?;
        Ok(event)
    }

    /// Checks required fields, formats and size limits.
    pub fn validate(&self) -> Result<(), EventError> {
        self.no_nul()?;
        required("actor.id", &self.actor.id)?;
        short("actor.id", &self.actor.id)?;
        required("actor.type", &self.actor.kind)?;
        short("actor.type", &self.actor.kind)?;
        short_opt("actor.ip", self.actor.ip.as_deref())?;
        short_opt("actor.user_agent", self.actor.user_agent.as_deref())?;
        required("action", &self.action)?;
        short("action", &self.action)?;
        let valid_action = self.action.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
        if !valid_action {
            return Err(EventError::new(
                "action",
                format!(
                    "{:?} is not a dotted action: use lower-case words joined by dots, such as `auth.login`",
                    self.action
                ),
            ));
        }
        if let Some(target) = &self.target {
            required("target.type", &target.kind)?;
            short("target.type", &target.kind)?;
            required("target.id", &target.id)?;
            short("target.id", &target.id)?;
        }
        short_opt("component", self.component.as_deref())?;
        short_opt("request_id", self.request_id.as_deref())?;
        short_opt("trace_id", self.trace_id.as_deref())?;
        if self.message.len() > MAX_MESSAGE_BYTES {
            return Err(EventError::new(
                "message",
                format!("is {} bytes; the limit is {MAX_MESSAGE_BYTES}", self.message.len()),
            ));
        }
        let attributes = serde_json::to_vec(&self.attributes).map_or(0, |v| v.len());
        if attributes > MAX_ATTRIBUTES_BYTES {
            return Err(EventError::new(
                "attributes",
                format!("are {attributes} bytes as JSON; the limit is {MAX_ATTRIBUTES_BYTES}"),
            ));
        }
        if self.timestamp < UNIX_EPOCH {
            return Err(EventError::new("timestamp", "is before 1970"));
        }
        Ok(())
    }

    /// NUL characters cannot be stored by PostgreSQL (and are never meaningful in an audit record).
    fn no_nul(&self) -> Result<(), EventError> {
        let fields = [
            ("actor.id", Some(self.actor.id.as_str())),
            ("actor.type", Some(self.actor.kind.as_str())),
            ("actor.ip", self.actor.ip.as_deref()),
            ("actor.user_agent", self.actor.user_agent.as_deref()),
            ("action", Some(self.action.as_str())),
            ("target.type", self.target.as_ref().map(|t| t.kind.as_str())),
            ("target.id", self.target.as_ref().map(|t| t.id.as_str())),
            ("component", self.component.as_deref()),
            ("request_id", self.request_id.as_deref()),
            ("trace_id", self.trace_id.as_deref()),
            ("message", Some(self.message.as_str())),
        ];
        for (field, value) in fields {
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(EventError::new(field, "contains a NUL character"));
            }
        }
        if serde_json::to_string(&self.attributes).is_ok_and(|json| json.contains("\\u0000")) {
            return Err(EventError::new("attributes", "contain a NUL character"));
        }
        Ok(())
    }

    /// The timestamp in microseconds since the Unix epoch (what the stores keep).
    pub fn timestamp_micros(&self) -> i64 {
        micros(self.timestamp)
    }

    /// The canonical encoding the hash chain covers: compact JSON of every field in a fixed order, with
    /// attribute keys sorted and the timestamp in microseconds. Any change to a stored field changes it.
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(&Canonical(self)).unwrap_or_default()
    }

    /// SHA-256 over the previous event's hash and this event's canonical encoding.
    pub fn chain_hash(&self, previous: &Hash) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(previous.0);
        // Streamed into the hasher: no intermediate buffer (verification hashes every stored event).
        let _ = serde_json::to_writer(HashWriter(&mut hasher), &Canonical(self));
        Hash(hasher.finalize().into())
    }
}

/// The canonical form: a JSON array, version first. Serialized field by field rather than through a
/// `serde_json::Value`, which would allocate a node per field.
struct Canonical<'a>(&'a AuditEvent);

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let e = self.0;
        let mut t = serializer.serialize_tuple(17)?;
        t.serialize_element(&1)?; // encoding version
        t.serialize_element(&e.id)?; // hyphenated, lower case
        t.serialize_element(&e.timestamp_micros())?;
        t.serialize_element(&e.actor.id)?;
        t.serialize_element(&e.actor.kind)?;
        t.serialize_element(&e.actor.ip)?;
        t.serialize_element(&e.actor.user_agent)?;
        t.serialize_element(&e.action)?;
        t.serialize_element(&e.target.as_ref().map(|t| &t.kind))?;
        t.serialize_element(&e.target.as_ref().map(|t| &t.id))?;
        t.serialize_element(e.outcome.as_str())?;
        t.serialize_element(e.severity.as_str())?;
        t.serialize_element(&e.component)?;
        t.serialize_element(&e.request_id)?;
        t.serialize_element(&e.trace_id)?;
        t.serialize_element(&e.message)?;
        t.serialize_element(&e.attributes)?; // a BTreeMap: keys sorted
        t.end()
    }
}

/// An event's fields as a store keeps them (text, with the attributes as their compact JSON), borrowed from
/// a database row. Verification hashes these straight from the row: for a row the writer stored, the
/// result is the event's [`AuditEvent::chain_hash`] (the attributes column holds exactly the JSON the
/// canonical encoding contains), without building the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredFields<'a> {
    pub id: &'a str,
    pub ts: i64,
    pub actor_id: &'a str,
    pub actor_type: &'a str,
    pub actor_ip: Option<&'a str>,
    pub actor_user_agent: Option<&'a str>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub outcome: &'a str,
    pub severity: &'a str,
    pub component: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub trace_id: Option<&'a str>,
    pub message: &'a str,
    pub attributes: &'a str,
}

impl StoredFields<'_> {
    /// SHA-256 over `previous` and the canonical encoding of these fields, written element by element with
    /// the same serializer as [`Canonical`]; the attributes are taken as stored.
    pub(crate) fn chain_hash(&self, previous: &Hash) -> Hash {
        let mut hasher = Sha256::new();
        hasher.update(previous.0);
        hasher.update(b"[1");
        let h = &mut hasher;
        element(h, self.id);
        element(h, &self.ts);
        element(h, self.actor_id);
        element(h, self.actor_type);
        element(h, &self.actor_ip);
        element(h, &self.actor_user_agent);
        element(h, self.action);
        element(h, &self.target_type);
        element(h, &self.target_id);
        element(h, self.outcome);
        element(h, self.severity);
        element(h, &self.component);
        element(h, &self.request_id);
        element(h, &self.trace_id);
        element(h, self.message);
        hasher.update(b",");
        hasher.update(self.attributes.as_bytes());
        hasher.update(b"]");
        Hash(hasher.finalize().into())
    }
}

/// Writes `,` and `value` as JSON into `hasher`.
fn element<T: Serialize + ?Sized>(hasher: &mut Sha256, value: &T) {
    hasher.update(b",");
    let _ = serde_json::to_writer(HashWriter(hasher), value);
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashing the stored columns gives the event's own hash, whatever the text holds.
    #[test]
    fn stored_fields_hash_like_the_event() {
        let texts = [
            "plain",
            "",
            "quote \" backslash \\ slash /",
            "tab\tnew\nline\r\u{1}\u{1f}\u{7f}",
            "é ü 日本 🎉 \u{2028}",
        ];
        for (i, text) in texts.iter().enumerate() {
            let mut builder = AuditEvent::builder("auth.login", format!("actor {text}"))
                .timestamp(UNIX_EPOCH + Duration::from_micros(1_764_460_800_123_456 + i as u64))
                .message(*text)
                .attribute("text", *text)
                .attribute("n", serde_json::json!([1, -2, 0.5, 1e300, null, true, {"z": text, "a": {}}]));
            if i % 2 == 0 {
                builder = builder
                    .target("account", *text)
                    .component(*text)
                    .trace_id("0af7651916cd43dd8448eb211c80319c");
            }
            let mut event = builder.build().unwrap();
            if i == 1 {
                event.actor.ip = Some(text.to_string());
                event.actor.user_agent = Some("curl".into());
                event.attributes.clear();
            }
            let attributes = serde_json::to_string(&event.attributes).unwrap();
            let id = event.id.to_string();
            let fields = StoredFields {
                id: &id,
                ts: event.timestamp_micros(),
                actor_id: &event.actor.id,
                actor_type: &event.actor.kind,
                actor_ip: event.actor.ip.as_deref(),
                actor_user_agent: event.actor.user_agent.as_deref(),
                action: &event.action,
                target_type: event.target.as_ref().map(|t| t.kind.as_str()),
                target_id: event.target.as_ref().map(|t| t.id.as_str()),
                outcome: event.outcome.as_str(),
                severity: event.severity.as_str(),
                component: event.component.as_deref(),
                request_id: event.request_id.as_deref(),
                trace_id: event.trace_id.as_deref(),
                message: &event.message,
                attributes: &attributes,
            };
            let previous = Hash([i as u8; 32]);
            assert_eq!(fields.chain_hash(&previous), event.chain_hash(&previous), "{text:?}");
            let changed = StoredFields { message: "changed", ..fields };
            assert_ne!(changed.chain_hash(&previous), event.chain_hash(&previous), "{text:?}");
        }
    }

    #[test]
    fn the_canonical_encoding_is_stable() {
        let event = AuditEvent::builder("auth.login", "alice")
            .id(Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001))
            .timestamp(UNIX_EPOCH + Duration::from_micros(1_764_460_800_123_456))
            .target("account", "42")
            .outcome(Outcome::Denied)
            .message("bad \"password\"")
            .attribute("zeta", 1)
            .attribute("alpha", serde_json::json!({"b": true, "a": null}))
            .build()
            .unwrap();
        let text = String::from_utf8(event.canonical()).unwrap();
        assert_eq!(
            text,
            r#"[1,"01920000-0000-7000-8000-000000000001",1764460800123456,"alice","user",null,null,"auth.login","account","42","denied","info",null,null,null,"bad \"password\"",{"alpha":{"a":null,"b":true},"zeta":1}]"#
        );
        // The hash covers exactly those bytes after the previous hash.
        let mut hasher = Sha256::new();
        hasher.update([7u8; 32]);
        hasher.update(text.as_bytes());
        assert_eq!(event.chain_hash(&Hash([7; 32])).0, <[u8; 32]>::from(hasher.finalize()));
    }
}

/// Microseconds since the Unix epoch (negative before it; saturating).
pub fn micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The time `micros` microseconds after the Unix epoch.
pub fn from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

fn required(field: &str, value: &str) -> Result<(), EventError> {
    if value.trim().is_empty() {
        Err(EventError::new(field, "is required and must not be empty"))
    } else {
        Ok(())
    }
}

fn short(field: &str, value: &str) -> Result<(), EventError> {
    if value.len() > MAX_FIELD_BYTES {
        Err(EventError::new(field, format!("is {} bytes; the limit is {MAX_FIELD_BYTES}", value.len())))
    } else {
        Ok(())
    }
}

fn short_opt(field: &str, value: Option<&str>) -> Result<(), EventError> {
    value.map_or(Ok(()), |v| short(field, v))
}

/// A SHA-256 digest in the hash chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The "previous hash" of the first event ever stored.
    pub const GENESIS: Hash = Hash([0; 32]);

    /// From stored bytes; `None` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Hash)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

/// An event as stored: its place in the chain and its hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its position in the chain, from 1, without gaps (retention removes a prefix).
    pub seq: i64,
    /// The event.
    pub event: AuditEvent,
    /// `event.chain_hash(prev_hash)`.
    pub hash: Hash,
    /// The previous event's hash ([`Hash::GENESIS`] for the first).
    pub prev_hash: Hash,
}

impl StoredEvent {
    /// Chains `event` after `(seq - 1, prev_hash)`.
    pub fn chain(seq: i64, event: AuditEvent, prev_hash: Hash) -> Self {
        let hash = event.chain_hash(&prev_hash);
        Self { seq, event, hash, prev_hash }
    }
}

/// A builder for [`AuditEvent`].
#[derive(Debug, Clone)]
#[must_use]
pub struct AuditEventBuilder {
    event: AuditEvent,
}

impl AuditEventBuilder {
    /// The actor's type (default `user`).
    pub fn actor_type(mut self, kind: impl Into<String>) -> Self {
        self.event.actor.kind = kind.into();
        self
    }

    /// The actor's address.
    pub fn actor_ip(mut self, ip: impl Into<String>) -> Self {
        self.event.actor.ip = Some(ip.into());
        self
    }

    /// The actor's user agent.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.event.actor.user_agent = Some(agent.into());
        self
    }

    /// The target.
    pub fn target(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.event.target = Some(Target { kind: kind.into(), id: id.into() });
        self
    }

    /// The outcome (default `success`).
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.event.outcome = outcome;
        self
    }

    /// The severity (default `info`).
    pub fn severity(mut self, severity: Severity) -> Self {
        self.event.severity = severity;
        self
    }

    /// The reporting component.
    pub fn component(mut self, component: impl Into<String>) -> Self {
        self.event.component = Some(component.into());
        self
    }

    /// The request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.event.request_id = Some(id.into());
        self
    }

    /// The trace id.
    pub fn trace_id(mut self, id: impl Into<String>) -> Self {
        self.event.trace_id = Some(id.into());
        self
    }

    /// The message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.event.message = message.into();
        self
    }

    /// One attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.event.attributes.insert(key.into(), value.into());
        self
    }

    /// The time (default now).
    pub fn timestamp(mut self, at: SystemTime) -> Self {
        self.event.timestamp = at;
        self
    }

    /// The id (default a new UUIDv7).
    pub fn id(mut self, id: Uuid) -> Self {
        self.event.id = id;
        self
    }

    /// Validates and returns the event.
    pub fn build(self) -> Result<AuditEvent, EventError> {
        self.event.validate()?;
        Ok(self.event)
    }
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not an RFC 3339 time ({e}); use e.g. 2026-11-30T12:00:00Z"
            ))
        })
    }
}
