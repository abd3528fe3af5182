//! The audit search language: full-text terms and `key:value` filters in one line of text, parsed into a
//! [`Query`] that every store runs the same way.
//!
//! ```text
//! actor:alice action:auth.* outcome:failure "disk full" since:1h
//! ```
//!
//! finds alice's failed `auth.…` actions of the last hour whose text mentions "disk full".
//!
//! # Syntax
//!
//! Whitespace separates tokens. Each token is one of:
//!
//! - a **bare word**, such as `timeout`: a full-text term;
//! - a **quoted phrase**, such as `"disk full"`: a full-text term that keeps its spaces. Inside quotes,
//!   `\"` is a quote and `\\` a backslash; any other backslash is kept as it is (`"C:\temp"`). A quoted
//!   phrase is always text, even when it looks like a filter (`"actor:alice"`);
//! - a **filter**, `key:value`, where `key` is one of the keys below and `value` runs to the next space, or
//!   is quoted to hold spaces: `actor:"alice smith"`. The value is everything after the first `:`, so
//!   `since:2026-11-30T10:00:00Z` needs no quotes.
//!
//! Everything in a query must hold (AND); there is no OR, NOT or grouping, and words such as `OR` or
//! `-word` are plain text terms. An empty query matches every event.
//!
//! # Keys
//!
//! Keys are lower case. Each key may appear once.
//!
//! | Key | Matches events whose … | Examples |
//! |---|---|---|
//! | `actor` | actor id is exactly the value | `actor:alice`, `actor:"alice smith"` |
//! | `actor_type` | actor type is the value | `actor_type:service` |
//! | `action` | action is the value; `*` matches any characters | `action:auth.login`, `action:*.delete` |
//! | `target` | target is `type/id`, or (without a `/`) has that id | `target:repository/42`, `target:42` |
//! | `target_type` | target type is the value | `target_type:repository` |
//! | `target_id` | target id is the value (use it for ids with a `/`) | `target_id:acme/widgets` |
//! | `outcome` | outcome is `success`, `failure`, `denied` or `error` | `outcome:denied` |
//! | `severity` | severity is exactly `info`, `low`, `medium`, `high` or `critical` | `severity:high` |
//! | `min_severity` | severity is the value or above | `min_severity:medium` |
//! | `component` | reporting component is the value | `component:scanner` |
//! | `request_id` | request id is the value | `request_id:req-7f3a` |
//! | `trace_id` | trace id is the value | `trace_id:4bf92f3577b34da6a3ce929d0e0e4736` |
//! | `since` | timestamp is at or after the time | `since:15m`, `since:2026-11-30T10:00:00Z` |
//! | `until` | timestamp is before the time | `until:1h30m`, `until:2026-12-01` |
//!
//! Values are compared exactly (case-sensitively). Action values may only hold what actions hold
//! (lower-case letters, digits, `_`, `-`, `.`) and `*`; anything else could never match and is an error.
//!
//! **Times** (`since`, `until`) are either
//!
//! - a duration before now, Prometheus style: a number and a unit, several of them from the largest unit
//!   to the smallest, each unit once: `500ms`, `30s`, `15m`, `1h30m`, `7d`, `2w`, `1y` (`y` is 365 days,
//!   `w` 7 days);
//! - or a UTC time, RFC 3339 with optional `T` (a space, in quotes, also works), fractional seconds and
//!   `Z`/`+00:00`: `2026-11-30T10:00:00Z`, `"2026-11-30 10:00:00.5"`. A bare date, `2026-11-30`, is its
//!   midnight UTC. Other offsets are not supported.
//!
//! Times are compared at the microsecond, as the stores keep them: `since` includes its instant, `until`
//! excludes it, so `since:T until:U` pages without overlap.
//!
//! # Words with a colon
//!
//! A bare word with a `:` whose part before the first `:` is not a key is
//!
//! - an **error** when that part looks like a key, that is only lower-case letters and `_`
//!   (`acter:alice`, `user:bob`): almost always a misspelt filter. The error lists the keys; quote the
//!   word (`"user:bob"`) to search for it as text. One exception: a `://` keeps URLs such as
//!   `https://example.com` text;
//! - an **error** when it is a key in the wrong case (`Actor:alice`);
//! - otherwise **text**: `10:30`, `fe80::1`, `sha256:ab12`, `C:\temp`.
//!
//! `severity>=high` and similar comparisons are errors that point to `min_severity:`.
//!
//! # Text terms
//!
//! The SQL stores search text with their full-text indexes (FTS5, `tsvector`), which match whole words:
//! `disk` matches "disk full" but not "diskette". [`Query::matches`], the in-memory reference for every
//! filter, approximates text loosely: each term must be a case-insensitive substring of the message or of
//! the attributes' JSON text.
//!
//! # Errors
//!
//! A [`QueryError`] gives the 1-based character position where the offending token starts and a message
//! that says what to write instead. Errors: an unknown key, a key given twice (or `target` together with
//! the `target_type`/`target_id` it sets), an empty value or phrase, an unterminated quote, a closing quote
//! followed by something other than a space, a value a key does not accept, and `since` after `until`.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! use sightline_audit::query::{ActionPattern, Query};
//! use sightline_audit::Outcome;
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let query = Query::parse(r#"actor:alice action:auth.* outcome:failure "disk full" since:1h"#, now)?;
//! assert_eq!(query.actor.as_deref(), Some("alice"));
//! assert_eq!(query.action, Some(ActionPattern::Prefix("auth.".into())));
//! assert_eq!(query.outcome, Some(Outcome::Failure));
//! assert_eq!(query.terms, ["disk full"]);
//! assert_eq!(query.since, Some(now - Duration::from_secs(3600)));
//!
//! let error = Query::parse("actor:alice actor:bob", now).unwrap_err();
//! assert_eq!(error.position, 13);
//! assert_eq!(error.message, "`actor` is given twice (also at character 1); a key may appear once");
//! # Ok::<(), sightline_audit::query::QueryError>(())
//! ```

use std::time::{Duration, SystemTime};

use crate::event::{AuditEvent, Outcome, Severity, micros};

/// A parsed search: full-text terms and field filters, all of which must match. See the
/// [module docs](self) for the language.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// Full-text terms (bare words and phrases, unquoted), each required.
    pub terms: Vec<String>,
    /// The actor id, exactly.
    pub actor: Option<String>,
    /// The actor type.
    pub actor_type: Option<String>,
    /// The action, exact or a pattern.
    pub action: Option<ActionPattern>,
    /// The target type.
    pub target_type: Option<String>,
    /// The target id.
    pub target_id: Option<String>,
    /// The outcome.
    pub outcome: Option<Outcome>,
    /// The severity, exactly.
    pub severity: Option<Severity>,
    /// The lowest severity.
    pub min_severity: Option<Severity>,
    /// The reporting component.
    pub component: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// The trace id.
    pub trace_id: Option<String>,
    /// Events at or after this time.
    pub since: Option<SystemTime>,
    /// Events before this time.
    pub until: Option<SystemTime>,
}

/// How `action:` matches: the value without `*`, a prefix (one trailing `*`), or a glob (`*` elsewhere or
/// several times; each `*` matches any run of characters, dots included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionPattern {
    /// `auth.login`: this action only.
    Exact(String),
    /// `auth.*`: actions starting with the string (here `auth.`).
    Prefix(String),
    /// `*.login`, `auth.*.failed`: the whole pattern, `*` included.
    Glob(String),
}

/// Why a query (or a facet name, or a cursor) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query at character {position}: {message}")]
pub struct QueryError {
    /// The 1-based character index where the offending token starts (1 for facet names and cursors).
    pub position: usize,
    /// What is wrong, and what to write instead.
    pub message: String,
}

/// Fields whose values can be counted ("counts grouped by a field").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Facet {
    /// The actor id.
    Actor,
    /// The actor type.
    ActorType,
    /// The action.
    Action,
    /// The target type.
    TargetType,
    /// The outcome.
    Outcome,
    /// The severity.
    Severity,
    /// The reporting component.
    Component,
}

/// A position in newest-first results: the last event's timestamp (µs) and sequence number. The next page
/// holds the events ordered after it, those with `(ts, seq) < (ts_micros, seq)`.
///
/// Its text form ([`encode`](Self::encode)) is opaque to clients: 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The event's timestamp in microseconds since the Unix epoch.
    pub ts_micros: i64,
    /// The event's sequence number.
    pub seq: i64,
}

/// The query keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Actor,
    ActorType,
    Action,
    Target,
    TargetType,
    TargetId,
    Outcome,
    Severity,
    MinSeverity,
    Component,
    RequestId,
    TraceId,
    Since,
    Until,
}

/// Every key with its name, in the documentation's order.
const KEYS: [(&str, Key); 14] = [
    ("actor", Key::Actor),
    ("actor_type", Key::ActorType),
    ("action", Key::Action),
    ("target", Key::Target),
    ("target_type", Key::TargetType),
    ("target_id", Key::TargetId),
    ("outcome", Key::Outcome),
    ("severity", Key::Severity),
    ("min_severity", Key::MinSeverity),
    ("component", Key::Component),
    ("request_id", Key::RequestId),
    ("trace_id", Key::TraceId),
    ("since", Key::Since),
    ("until", Key::Until),
];

const TIME_FORMS: &str = "a duration before now such as `15m`, `1h30m` or `7d`, or a UTC time such as \
                          `2026-11-30T10:00:00Z` or `2026-11-30`";

// === impl Query ===

impl Query {
    /// Parses `text`; relative times (`since:1h`) count back from `now`. Empty (or blank) text gives
    /// `Query::default()`, which matches everything.
    pub fn parse(text: &str, now: SystemTime) -> Result<Query, QueryError> {
        let mut lexer = Lexer { chars: text.chars().collect(), pos: 0 };
        let mut query = Query::default();
        // Which key set each field, and where: for "given twice" errors.
        let mut setters: Vec<(&'static str, &'static str, usize)> = Vec::new();
        let mut since_at = 0;
        let mut until_at = 0;
        while let Some(token) = lexer.next_token()? {
            let (key, name, value) = match token.kind {
                TokenKind::Term(term) => {
                    query.terms.push(term);
                    continue;
                }
                TokenKind::Filter { key, name, value } => (key, name, value),
            };
            let at = token.start;
            let error = |message: String| QueryError { position: at, message };
            if value.trim().is_empty() {
                return Err(error(format!("`{name}` needs a value, as in `{name}:{}`", example(key))));
            }
            let fields: &[&'static str] = match key {
                Key::Target if value.contains('/') => &["target_type", "target_id"],
                Key::Target => &["target_id"],
                _ => &[name],
            };
            for &field in fields {
                if let Some(&(_, other, other_at)) = setters.iter().find(|(f, _, _)| *f == field) {
                    let message = if other == name {
                        format!(
                            "`{name}` is given twice (also at character {other_at}); a key may appear once"
                        )
                    } else {
                        format!(
                            "`{name}` and `{other}` (at character {other_at}) both set `{field}`; use one of \
                             them"
                        )
                    };
                    return Err(error(message));
                }
                setters.push((field, name, at));
            }
            match key {
                Key::Actor => query.actor = Some(value),
                Key::ActorType => query.actor_type = Some(value),
                Key::Action => {
                    let valid = value.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.' | '*')
                    });
                    if !valid {
                        return Err(error(format!(
                            "`action:{value}` cannot match: actions are lower-case words joined by dots, \
                             such as `auth.login`; `*` matches any run of characters, as in `auth.*`"
                        )));
                    }
                    query.action = Some(ActionPattern::parse(&value));
                }
                Key::Target => match value.split_once('/') {
                    Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
                        query.target_type = Some(kind.to_owned());
                        query.target_id = Some(id.to_owned());
                    }
                    Some(_) => {
                        return Err(error(format!(
                            "`target:{value}` needs a type and an id, as in `target:repository/42`, or only \
                             an id, as in `target:42`"
                        )));
                    }
                    None => query.target_id = Some(value),
                },
                Key::TargetType => query.target_type = Some(value),
                Key::TargetId => query.target_id = Some(value),
                Key::Outcome => {
                    let outcome = Outcome::parse(&value).ok_or_else(|| {
                        error(format!(
                            "`outcome` is one of {}; not `{value}`",
                            list(Outcome::ALL.map(Outcome::as_str))
                        ))
                    })?;
                    query.outcome = Some(outcome);
                }
                Key::Severity | Key::MinSeverity => {
                    let severity = Severity::parse(&value).ok_or_else(|| {
                        error(format!(
                            "`{name}` is one of {}; not `{value}`",
                            list(Severity::ALL.map(Severity::as_str))
                        ))
                    })?;
                    if key == Key::Severity {
                        query.severity = Some(severity);
                    } else {
                        query.min_severity = Some(severity);
                    }
                }
                Key::Component => query.component = Some(value),
                Key::RequestId => query.request_id = Some(value),
                Key::TraceId => query.trace_id = Some(value),
                Key::Since | Key::Until => {
                    let time = parse_time(&value, now)
                        .map_err(|reason| error(format!("`{name}:{value}`: {reason}; use {TIME_FORMS}")))?;
                    if key == Key::Since {
                        query.since = Some(time);
                        since_at = at;
                    } else {
                        query.until = Some(time);
                        until_at = at;
                    }
                }
            }
        }
        let inverted = match (query.since, query.until) {
            (Some(since), Some(until)) if since > until => Some((since, until)),
            _ => None,
        };
        if let Some((since, until)) = inverted {
            return Err(QueryError {
                position: since_at.max(until_at),
                message: format!(
                    "`since` ({}) is after `until` ({}), so nothing can match; swap them",
                    humantime::format_rfc3339(since),
                    humantime::format_rfc3339(until)
                ),
            });
        }
        Ok(query)
    }

    /// Whether the query has no terms and no filters (it matches every event).
    pub fn is_empty(&self) -> bool {
        *self == Query::default()
    }

    /// Whether `event` matches: the in-memory reference for the stores' filters (times compared in
    /// microseconds, `since` inclusive, `until` exclusive). Text is looser than the stores' word search:
    /// each term must be a case-insensitive substring of the message or of the attributes' JSON text.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        fn same(filter: &Option<String>, value: Option<&str>) -> bool {
            filter.as_deref().is_none_or(|f| value == Some(f))
        }
        let target = event.target.as_ref();
        let ts = event.timestamp_micros();
        let fields = same(&self.actor, Some(&event.actor.id))
            && same(&self.actor_type, Some(&event.actor.kind))
            && self.action.as_ref().is_none_or(|a| a.matches(&event.action))
            && same(&self.target_type, target.map(|t| t.kind.as_str()))
            && same(&self.target_id, target.map(|t| t.id.as_str()))
            && self.outcome.is_none_or(|o| o == event.outcome)
            && self.severity.is_none_or(|s| s == event.severity)
            && self.min_severity.is_none_or(|s| event.severity >= s)
            && same(&self.component, event.component.as_deref())
            && same(&self.request_id, event.request_id.as_deref())
            && same(&self.trace_id, event.trace_id.as_deref())
            && self.since.is_none_or(|since| ts >= micros(since))
            && self.until.is_none_or(|until| ts < micros(until));
        if !fields || self.terms.is_empty() {
            return fields;
        }
        let message = event.message.to_lowercase();
        let attributes = if event.attributes.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&event.attributes).unwrap_or_default().to_lowercase()
        };
        self.terms.iter().all(|term| {
            let term = term.to_lowercase();
            message.contains(&term) || attributes.contains(&term)
        })
    }
}

fn example(key: Key) -> &'static str {
    match key {
        Key::Actor => "alice",
        Key::ActorType => "service",
        Key::Action => "auth.*",
        Key::Target => "repository/42",
        Key::TargetType => "repository",
        Key::TargetId => "42",
        Key::Outcome => "failure",
        Key::Severity | Key::MinSeverity => "high",
        Key::Component => "scanner",
        Key::RequestId => "req-7f3a",
        Key::TraceId => "4bf92f3577b34da6a3ce929d0e0e4736",
        Key::Since => "1h",
        Key::Until => "15m",
    }
}

fn list<const N: usize>(words: [&str; N]) -> String {
    words.join(", ")
}

fn key_named(name: &str) -> Option<Key> {
    KEYS.iter().find(|(n, _)| *n == name).map(|&(_, key)| key)
}

// === lexing ===

struct Lexer {
    chars: Vec<char>,
    /// The 0-based index of the next character.
    pos: usize,
}

struct Token {
    /// 1-based.
    start: usize,
    kind: TokenKind,
}

enum TokenKind {
    Term(String),
    Filter { key: Key, name: &'static str, value: String },
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next_token(&mut self) -> Result<Option<Token>, QueryError> {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
        let Some(first) = self.peek() else { return Ok(None) };
        let start = self.pos + 1;
        let error = |message: String| QueryError { position: start, message };
        if first == '"' {
            let phrase = self.quoted(start)?;
            if phrase.trim().is_empty() {
                return Err(error(
                    "empty phrase `\"\"`; put words between the quotes or remove them".to_owned(),
                ));
            }
            return Ok(Some(Token { start, kind: TokenKind::Term(phrase) }));
        }
        let word_end =
            (self.pos..self.chars.len()).find(|&i| self.chars[i].is_whitespace()).unwrap_or(self.chars.len());
        let word: String = self.chars[self.pos..word_end].iter().collect();
        if let Some((prefix, rest)) = word.split_once(':') {
            if let Some((name, key)) = KEYS.iter().copied().find(|(n, _)| *n == prefix) {
                self.pos += prefix.chars().count() + 1;
                let value = if self.peek() == Some('"') { self.quoted(start)? } else { self.bare_word() };
                return Ok(Some(Token { start, kind: TokenKind::Filter { key, name, value } }));
            }
            let lower = prefix.to_ascii_lowercase();
            if lower != prefix && key_named(&lower).is_some() {
                return Err(error(format!("keys are lower case: write `{lower}:`, not `{prefix}:`")));
            }
            let key_like = !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if key_like && !rest.starts_with("//") {
                let keys: Vec<&str> = KEYS.iter().map(|(n, _)| *n).collect();
                let keys = keys.join(", ");
                return Err(error(format!(
                    "unknown key `{prefix}`; use one of {keys} (or quote the word, `\"{word}\"`, to search \
                     for it as text)"
                )));
            }
        } else if let Some((name, _)) = KEYS
            .iter()
            .find(|(n, _)| word.strip_prefix(n).is_some_and(|rest| rest.starts_with(['<', '>', '=', '!'])))
        {
            let hint = if name.ends_with("severity") {
                "; for a severity and above, write `min_severity:high`"
            } else {
                ""
            };
            return Err(error(format!("comparisons are not supported: write `{name}:value`{hint}")));
        }
        self.pos = word_end;
        Ok(Some(Token { start, kind: TokenKind::Term(word) }))
    }

    /// Reads up to the next whitespace.
    fn bare_word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek().filter(|c| !c.is_whitespace()) {
            word.push(c);
            self.pos += 1;
        }
        word
    }

    /// Reads a quoted string starting at the current `"`, unescaping `\"` and `\\`. The token started at
    /// `start` (1-based), which errors report.
    fn quoted(&mut self, start: usize) -> Result<String, QueryError> {
        let error = |message: &str| QueryError { position: start, message: message.to_owned() };
        self.pos += 1; // the opening quote
        let mut text = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(error(
                        "unterminated quote: add the closing `\"` (write `\\\"` for a quote inside quotes)",
                    ));
                }
                Some('"') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => match self.chars.get(self.pos + 1) {
                    Some(&c @ ('"' | '\\')) => {
                        text.push(c);
                        self.pos += 2;
                    }
                    _ => {
                        text.push('\\');
                        self.pos += 1;
                    }
                },
                Some(c) => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        if self.peek().is_some_and(|c| !c.is_whitespace()) {
            return Err(error("a closing quote must be followed by a space or the end of the query"));
        }
        Ok(text)
    }
}

// === times ===

/// A time from a relative duration (before `now`) or a UTC time; the error is the reason, without the
/// forms (the caller adds them).
fn parse_time(value: &str, now: SystemTime) -> Result<SystemTime, String> {
    let duration_like =
        value.starts_with(|c: char| c.is_ascii_digit()) && value.chars().all(|c| c.is_ascii_alphanumeric());
    if duration_like {
        let duration = parse_duration(value)?;
        return now.checked_sub(duration).ok_or_else(|| "the duration reaches too far back".to_owned());
    }
    let is_date = value.len() == 10
        && value
            .bytes()
            .enumerate()
            .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    let parsed = if is_date {
        humantime::parse_rfc3339_weak(&format!("{value}T00:00:00Z"))
    } else {
        humantime::parse_rfc3339_weak(value)
    };
    parsed.map_err(|e| format!("not a time ({e})"))
}

/// Parses a Prometheus-style duration (`1h30m`), with the parser all of Sightline uses.
fn parse_duration(text: &str) -> Result<Duration, String> {
    sightline_core::duration::parse_prometheus(text).map_err(|e| e.reason)
}

// === impl ActionPattern ===

impl ActionPattern {
    /// No `*`: [`Exact`](Self::Exact); one `*`, at the end: [`Prefix`](Self::Prefix) of the rest
    /// (so `*` alone matches every action); otherwise [`Glob`](Self::Glob).
    pub fn parse(text: &str) -> ActionPattern {
        match text.matches('*').count() {
            0 => ActionPattern::Exact(text.to_owned()),
            1 if text.ends_with('*') => ActionPattern::Prefix(text[..text.len() - 1].to_owned()),
            _ => ActionPattern::Glob(text.to_owned()),
        }
    }

    /// Whether `action` matches the pattern.
    pub fn matches(&self, action: &str) -> bool {
        match self {
            ActionPattern::Exact(exact) => action == exact,
            ActionPattern::Prefix(prefix) => action.starts_with(prefix.as_str()),
            ActionPattern::Glob(glob) => glob_matches(glob.as_bytes(), action.as_bytes()),
        }
    }

    /// The pattern for `LIKE ? ESCAPE '\'` (SQLite and PostgreSQL): each `*` becomes `%`, and `%`, `_` and
    /// `\` in the literal parts are escaped with `\`. [`Exact`](Self::Exact) gives the escaped literal.
    ///
    /// SQLite's `LIKE` ignores ASCII case; actions and action queries are both lower case, so it agrees
    /// with [`matches`](Self::matches).
    pub fn sql_like(&self) -> String {
        let mut like = String::new();
        match self {
            ActionPattern::Exact(exact) => like_escape(&mut like, exact),
            ActionPattern::Prefix(prefix) => {
                like_escape(&mut like, prefix);
                like.push('%');
            }
            ActionPattern::Glob(glob) => {
                for (i, part) in glob.split('*').enumerate() {
                    if i > 0 {
                        like.push('%');
                    }
                    like_escape(&mut like, part);
                }
            }
        }
        like
    }
}

fn like_escape(out: &mut String, literal: &str) {
    for c in literal.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `*`-only glob matching, greedy with backtracking to the last `*` (linear in practice, quadratic at
/// worst). Bytes are enough: the literal parts are whole UTF-8 strings, which cannot match mid-character.
fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen, and the text position its current match ends at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if pattern.get(p) == Some(&b'*') {
            star = Some((p, t));
            p += 1;
        } else if pattern.get(p) == Some(&text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            star = Some((star_p, star_t + 1));
            p = star_p + 1;
            t = star_t + 1;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

// === impl Facet ===

impl Facet {
    /// Every facet.
    pub const ALL: [Facet; 7] = [
        Facet::Actor,
        Facet::ActorType,
        Facet::Action,
        Facet::TargetType,
        Facet::Outcome,
        Facet::Severity,
        Facet::Component,
    ];

    /// Parses [`as_str`](Self::as_str)'s names (the query keys). Errors have position 1.
    pub fn parse(name: &str) -> Result<Facet, QueryError> {
        Self::ALL.into_iter().find(|f| f.as_str() == name).ok_or_else(|| QueryError {
            position: 1,
            message: format!("unknown facet `{name}`; use one of {}", list(Self::ALL.map(Facet::as_str))),
        })
    }

    /// The name, as the query key: `actor`, `actor_type`, `action`, `target_type`, `outcome`, `severity`
    /// or `component`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Facet::Actor => "actor",
            Facet::ActorType => "actor_type",
            Facet::Action => "action",
            Facet::TargetType => "target_type",
            Facet::Outcome => "outcome",
            Facet::Severity => "severity",
            Facet::Component => "component",
        }
    }

    /// The stores' column: as [`as_str`](Self::as_str), except `actor_id` for [`Actor`](Self::Actor).
    pub const fn column(self) -> &'static str {
        match self {
            Facet::Actor => "actor_id",
            Facet::ActorType => "actor_type",
            Facet::Action => "action",
            Facet::TargetType => "target_type",
            Facet::Outcome => "outcome",
            Facet::Severity => "severity",
            Facet::Component => "component",
        }
    }
}

// === impl Cursor ===

impl Cursor {
    /// The text form: the timestamp and the sequence number as 16 lower-case hex digits each (two's
    /// complement).
    pub fn encode(&self) -> String {
        // `as` reinterprets the bits (two's complement), which `decode` undoes.
        format!("{:016x}{:016x}", self.ts_micros as u64, self.seq as u64)
    }

    /// Parses [`encode`](Self::encode)'s form (either case). Errors have position 1.
    pub fn decode(text: &str) -> Result<Cursor, QueryError> {
        let invalid = || QueryError {
            position: 1,
            message: "invalid cursor; pass the `next_cursor` of the previous page".to_owned(),
        };
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let half = |range: std::ops::Range<usize>| {
            text.get(range)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .map(|n| n as i64)
                .ok_or_else(invalid)
        };
        Ok(Cursor { ts_micros: half(0..16)?, seq: half(16..32)? })
    }
}

#[cfg(test)]
mod tests;
