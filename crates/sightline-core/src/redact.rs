//! Redaction of secrets and personal data in log messages, span attributes and audit events.
//!
//! A [`Redactor`] masks text in two ways:
//!
//! - **Rules** find values by their shape anywhere in a string and replace each with
//!   `[REDACTED:<rule>]`. The built-in rules are listed on [`BuiltinRule`]; configuration can add more
//!   with [`RedactorBuilder::with_pattern`].
//! - **The deny list** names fields whose whole value is secret, whatever it looks like.
//!   [`Redactor::redact_field`] replaces such a value with `[REDACTED]` and runs the rules on every other
//!   value.
//!
//! ```
//! use sightline_core::redact::Redactor;
//!
//! let redactor = Redactor::default();
//! assert_eq!(
//!     redactor.redact("signup from alice@example.com, card 4111 1111 1111 1111"),
//!     "signup from [REDACTED:email], card [REDACTED:card]",
//! );
//! assert_eq!(redactor.redact_field("db_password", "hunter2"), "[REDACTED]");
//! assert_eq!(redactor.redact_field("user_id", "42"), "42");
//!
//! // Extra rules and fields come from configuration.
//! let redactor = Redactor::builder()
//!     .with_pattern("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b")?
//!     .with_denied_field("tenant_key")
//!     .build();
//! assert_eq!(redactor.redact("ssn 123-45-6789"), "ssn [REDACTED:ssn]");
//! # Ok::<(), sightline_core::redact::RedactError>(())
//! ```
//!
//! # Cost
//!
//! [`Redactor::redact`] first makes one pass over the bytes to see which rules could match at all (an
//! `@` for emails, a run of at least 8 digits for phone numbers, `eyJ` for JWTs, ...) and runs only those
//! rules' patterns. A message in which nothing could match is returned as [`Cow::Borrowed`] without
//! allocating; `cargo bench -p sightline-core --features redact --bench redact` measures it.
//!
//! Redaction is best effort: it catches the listed shapes, not every secret. Keep secrets out of logs in
//! the first place, and use the deny list for fields that are known to carry them.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use regex::{Regex, RegexSet};

mod rules;
#[cfg(test)]
mod tests;

/// The replacement for the value of a denied field.
const REDACTED: &str = "[REDACTED]";

/// The field names denied by default, in normalised form (see [`Redactor::is_denied_field`]).
///
/// `cookie` also covers `set_cookie`, and `token` covers `access_token`, `refresh_token`, `csrf_token`
/// and the like. Session ids are denied because whoever holds one is logged in. The joined spellings
/// (`apikey`, `privatekey`, ...) catch camelCase names, which normalise to lowercase without separators.
const DEFAULT_DENIED_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "access_key",
    "accesskey",
    "private_key",
    "privatekey",
    "cookie",
    "credential",
    "session_id",
    "sessionid",
];

/// Masks secrets and personal data in strings.
///
/// Built once from configuration and cloned freely: a clone shares the compiled rules. `Default` is every
/// built-in rule plus the default deny list; [`Redactor::builder`] adjusts that, [`Redactor::disabled`]
/// turns redaction off.
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

struct Inner {
    enabled: bool,
    /// The enabled built-in rules, one bit per [`BuiltinRule`].
    builtins: u8,
    custom: Vec<CustomPattern>,
    /// All of `custom` in one automaton, so that one pass tells which of them to run. `None` when there are
    /// none, or when the set would exceed the regex size limit; then each pattern runs on its own.
    custom_set: Option<RegexSet>,
    denied: DenyList,
}

/// Builds a [`Redactor`]; it starts with every built-in rule and the default deny list.
#[must_use]
#[derive(Debug, Clone)]
pub struct RedactorBuilder {
    builtins: u8,
    custom: Vec<CustomPattern>,
    denied: Vec<String>,
}

/// The built-in redaction rules. Each masks its matches as `[REDACTED:<name>]`, where the name is
/// [`BuiltinRule::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRule {
    /// Email addresses: `local@domain.tld`, where the domain has at least one dot and a top-level label
    /// of two or more letters (`root@localhost` is not masked).
    Email,
    /// Phone numbers: `+` followed by 8 to 15 digits in groups (`+1 415-555-2671`, `+44 20 7946 0958`,
    /// `+14155552671`), and the national forms `(415) 555-2671`, `415-555-2671`, `415.555.2671`,
    /// `415 555 2671` (each optionally after a `1` country code) and trunk-prefixed `020 7946 0958`. A
    /// number glued to letters or digits, or continuing a decimal, time or version, is left alone, as are
    /// bare digit runs without a `+` or separators (`4155552671`) and 7-digit local numbers; so ports,
    /// timestamps, durations, versions, IPv4 addresses and UUIDs are not masked.
    Phone,
    /// Payment card numbers: 13 to 19 digits, contiguous or in groups joined by single spaces or dashes
    /// (4-4-4-4, 4-6-5, ...), masked only when the Luhn check passes. Like every number with a valid
    /// checksum by chance, one in ten other numbers of that length (13-digit millisecond timestamps, for
    /// one) is masked too.
    CardNumber,
    /// JSON Web Tokens: three base64url parts separated by dots, the first starting with `eyJ`.
    Jwt,
    /// Credentials in HTTP authorization: the value of an `Authorization` or `Proxy-Authorization`
    /// header or key (after the scheme word, if there is one), and the credential after a free-standing
    /// `Bearer` or `Basic` when it contains anything besides lowercase letters. The scheme word is kept:
    /// `Authorization: Bearer [REDACTED:bearer]`.
    BearerToken,
    /// Access keys with a recognisable prefix: AWS key ids (`AKIA`, `ASIA`, `ABIA`, `ACCA` and 16
    /// uppercase letters or digits), GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`),
    /// GitLab (`glpat-`), Slack (`xoxb-`, `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-`), Google API keys (`AIza` and
    /// 35 characters), Stripe (`sk_live_`, `sk_test_`, `rk_live_`, `rk_test_`), npm (`npm_`), `sk-` keys
    /// (OpenAI, Anthropic), and PEM `-----BEGIN ... PRIVATE KEY-----` blocks.
    AccessKey,
}

/// Why a [`RedactorBuilder`] setting was rejected.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// An extra pattern whose name or regular expression is unusable.
    #[error("invalid redaction pattern {name:?} ({pattern:?}): {reason}")]
    InvalidPattern {
        /// The pattern's name, as configured.
        name: String,
        /// The regular expression, as configured.
        pattern: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

/// An extra pattern from configuration.
#[derive(Debug, Clone)]
struct CustomPattern {
    name: String,
    regex: Regex,
    replacement: String,
}

/// One stretch of text to mask.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    label: Label,
}

#[derive(Debug, Clone, Copy)]
enum Label {
    Builtin(BuiltinRule),
    /// An index into `Inner::custom`.
    Custom(usize),
}

/// Normalised field-name fragments, indexed by first byte so that a lookup looks only at the entries that
/// can start at each position.
struct DenyList {
    /// Sorted by first byte.
    entries: Vec<Box<[u8]>>,
    /// For each byte, the range of `entries` that start with it.
    by_first: [(u16, u16); 256],
}

// === impl Redactor ===

impl Default for Redactor {
    fn default() -> Self {
        Self::builder().build()
    }
}

impl Redactor {
    /// Starts a builder with every built-in rule and the default deny list.
    pub fn builder() -> RedactorBuilder {
        RedactorBuilder {
            builtins: rules::ALL,
            custom: Vec::new(),
            denied: DEFAULT_DENIED_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Returns a redactor that masks nothing and denies no field.
    pub fn disabled() -> Self {
        Self {
            inner: Arc::new(Inner {
                enabled: false,
                builtins: 0,
                custom: Vec::new(),
                custom_set: None,
                denied: DenyList::new(Vec::new()),
            }),
        }
    }

    /// Returns whether this redactor can mask anything; false only for [`Redactor::disabled`].
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled
    }

    /// Masks every match of the enabled rules in `text`.
    ///
    /// Overlapping matches are merged and masked once, with the label of the one that starts first.
    /// Returns [`Cow::Borrowed`], without allocating, when nothing matched.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let inner = &*self.inner;
        if !inner.enabled {
            return Cow::Borrowed(text);
        }
        let mut candidates = rules::Candidates::NONE;
        if inner.builtins != 0 {
            candidates = rules::candidates(text.as_bytes());
            candidates.rules &= inner.builtins;
        }
        if candidates.rules == 0 && inner.custom.is_empty() {
            return Cow::Borrowed(text);
        }
        self.apply(text, candidates)
    }

    /// Runs the built-in rules that the pre-check left (and the redactor enables) and the extra patterns.
    fn apply<'a>(&self, text: &'a str, candidates: rules::Candidates) -> Cow<'a, str> {
        let inner = &*self.inner;
        let mut spans = Vec::new();
        rules::find_all(text, candidates, &mut spans);
        if !inner.custom.is_empty() {
            match &inner.custom_set {
                Some(set) => {
                    for index in set.matches(text).iter() {
                        find_custom(inner, index, text, &mut spans);
                    }
                }
                None => (0..inner.custom.len()).for_each(|index| find_custom(inner, index, text, &mut spans)),
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        Cow::Owned(splice(inner, text, &mut spans))
    }

    /// Returns whether the value of a field called `name` is secret as a whole.
    ///
    /// The name is normalised (ASCII lowercase, `-` and `.` read as `_`) and denied when it contains a
    /// deny-list entry: `db_password`, `X-Api-Key`, `Authorization`, `client_secret`, `accessToken` and
    /// `Set-Cookie` are denied; `user_id`, `workflow_id`, `run_id` and `session` are not. Because entries
    /// match as substrings, `token` also denies counters such as `max_tokens`: the list errs on the side
    /// of masking.
    pub fn is_denied_field(&self, name: &str) -> bool {
        if !self.inner.enabled {
            return false;
        }
        let mut buf = [0u8; 64];
        match buf.get_mut(..name.len()) {
            Some(normalized) => {
                normalize_into(name.as_bytes(), normalized);
                self.inner.denied.matches(normalized)
            }
            None => {
                let mut normalized = name.as_bytes().to_vec();
                normalize_in_place(&mut normalized);
                self.inner.denied.matches(&normalized)
            }
        }
    }

    /// Masks a field's value: `[REDACTED]` when [`Redactor::is_denied_field`] denies `name`, otherwise
    /// [`Redactor::redact`] of `value`.
    pub fn redact_field<'a>(&self, name: &str, value: &'a str) -> Cow<'a, str> {
        if self.is_denied_field(name) { Cow::Borrowed(REDACTED) } else { self.redact(value) }
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let builtins: Vec<&str> = BuiltinRule::ALL
            .iter()
            .filter(|rule| inner.builtins & rule.bit() != 0)
            .map(|rule| rule.as_str())
            .collect();
        let custom: Vec<&str> = inner.custom.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Redactor")
            .field("enabled", &inner.enabled)
            .field("builtins", &builtins)
            .field("patterns", &custom)
            .field("denied_fields", &inner.denied.entries.len())
            .finish()
    }
}

fn find_custom(inner: &Inner, index: usize, text: &str, spans: &mut Vec<Span>) {
    let Some(custom) = inner.custom.get(index) else { return };
    // Empty matches would mask nothing and only insert labels between characters.
    spans.extend(custom.regex.find_iter(text).filter(|m| !m.is_empty()).map(|m| Span {
        start: m.start(),
        end: m.end(),
        label: Label::Custom(index),
    }));
}

/// Replaces the spans in `text`; overlapping spans merge and take the label of the first.
fn splice(inner: &Inner, text: &str, spans: &mut [Span]) -> String {
    // Ties on the start go to the longer span, then to the rule that found it first.
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    let mut out = String::with_capacity(text.len() + 16 * spans.len());
    let mut copied = 0;
    let mut current: Option<Span> = None;
    for &span in spans.iter() {
        match &mut current {
            Some(open) if span.start < open.end => open.end = open.end.max(span.end),
            _ => {
                if let Some(open) = current.take() {
                    copied = emit(inner, text, &mut out, copied, open);
                }
                current = Some(span);
            }
        }
    }
    if let Some(open) = current {
        copied = emit(inner, text, &mut out, copied, open);
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

fn emit(inner: &Inner, text: &str, out: &mut String, copied: usize, span: Span) -> usize {
    out.push_str(text.get(copied..span.start).unwrap_or_default());
    out.push_str(match span.label {
        Label::Builtin(rule) => rule.replacement(),
        Label::Custom(index) => inner.custom.get(index).map_or(REDACTED, |c| c.replacement.as_str()),
    });
    span.end
}

// === impl RedactorBuilder ===

impl RedactorBuilder {
    /// Adds a pattern from configuration; its matches are replaced by `[REDACTED:<name>]`.
    ///
    /// The syntax is the `regex` crate's (no look-around or backreferences). The name may use ASCII
    /// letters, digits, `_`, `-` and `.`. A pattern that matches the empty string is rejected, since it
    /// would match everywhere.
    pub fn with_pattern(mut self, name: &str, regex: &str) -> Result<Self, RedactError> {
        let invalid = |reason: String| RedactError::InvalidPattern {
            name: name.to_owned(),
            pattern: regex.to_owned(),
            reason,
        };
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !name_ok {
            return Err(invalid(
                "the name must be 1 to 64 ASCII letters, digits, '_', '-' or '.', since it appears in the \
                 replacement [REDACTED:<name>]; rename the pattern"
                    .to_owned(),
            ));
        }
        let compiled = Regex::new(regex).map_err(|err| {
            invalid(format!(
                "{err}\nfix the regular expression; the syntax is the `regex` crate's \
                 (https://docs.rs/regex/latest/regex/#syntax), without look-around or backreferences"
            ))
        })?;
        if compiled.is_match("") {
            return Err(invalid(
                "the pattern matches the empty string, so it would match everywhere; make it require at \
                 least one character (for example `+` instead of `*`)"
                    .to_owned(),
            ));
        }
        self.custom.push(CustomPattern {
            name: name.to_owned(),
            regex: compiled,
            replacement: format!("[REDACTED:{name}]"),
        });
        Ok(self)
    }

    /// Adds a field name to the deny list; it is normalised like the names it is compared with (see
    /// [`Redactor::is_denied_field`]). An empty name is ignored, since it would deny every field.
    pub fn with_denied_field(mut self, name: &str) -> Self {
        if !name.is_empty() {
            self.denied.push(name.to_owned());
        }
        self
    }

    /// Turns off one built-in rule.
    pub fn without_builtin(mut self, rule: BuiltinRule) -> Self {
        self.builtins &= !rule.bit();
        self
    }

    /// Builds the redactor, compiling the built-in patterns now if this is the first one.
    pub fn build(self) -> Redactor {
        if self.builtins != 0 {
            std::sync::LazyLock::force(&rules::PATTERNS);
        }
        let custom_set = if self.custom.is_empty() {
            None
        } else {
            // Each pattern compiled on its own, so this can only fail on the combined size limit.
            RegexSet::new(self.custom.iter().map(|c| c.regex.as_str())).ok()
        };
        let denied = self
            .denied
            .into_iter()
            .map(|name| {
                let mut bytes = name.into_bytes();
                normalize_in_place(&mut bytes);
                bytes.into_boxed_slice()
            })
            .collect();
        Redactor {
            inner: Arc::new(Inner {
                enabled: true,
                builtins: self.builtins,
                custom: self.custom,
                custom_set,
                denied: DenyList::new(denied),
            }),
        }
    }
}

// === impl BuiltinRule ===

impl BuiltinRule {
    /// Every built-in rule, in declaration order.
    pub const ALL: [BuiltinRule; 6] = [
        BuiltinRule::Email,
        BuiltinRule::Phone,
        BuiltinRule::CardNumber,
        BuiltinRule::Jwt,
        BuiltinRule::BearerToken,
        BuiltinRule::AccessKey,
    ];

    /// Returns the rule's name, as it appears in `[REDACTED:<name>]`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BuiltinRule::Email => "email",
            BuiltinRule::Phone => "phone",
            BuiltinRule::CardNumber => "card",
            BuiltinRule::Jwt => "jwt",
            BuiltinRule::BearerToken => "bearer",
            BuiltinRule::AccessKey => "access_key",
        }
    }

    const fn replacement(self) -> &'static str {
        match self {
            BuiltinRule::Email => "[REDACTED:email]",
            BuiltinRule::Phone => "[REDACTED:phone]",
            BuiltinRule::CardNumber => "[REDACTED:card]",
            BuiltinRule::Jwt => "[REDACTED:jwt]",
            BuiltinRule::BearerToken => "[REDACTED:bearer]",
            BuiltinRule::AccessKey => "[REDACTED:access_key]",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for BuiltinRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Span ===

impl Span {
    fn builtin(start: usize, end: usize, rule: BuiltinRule) -> Self {
        Span { start, end, label: Label::Builtin(rule) }
    }
}

// === impl DenyList ===

impl DenyList {
    fn new(mut entries: Vec<Box<[u8]>>) -> Self {
        entries.retain(|e| !e.is_empty());
        entries.sort();
        entries.dedup();
        // More than 65,535 entries would not fit the index; nobody configures that many, so drop the rest.
        entries.truncate(usize::from(u16::MAX));
        let mut by_first = [(0u16, 0u16); 256];
        let mut i = 0;
        while i < entries.len() {
            let first = entries[i][0];
            let start = i;
            while i < entries.len() && entries[i][0] == first {
                i += 1;
            }
            // Both fit: `entries` was truncated to `u16::MAX`.
            by_first[usize::from(first)] = (start as u16, i as u16);
        }
        DenyList { entries, by_first }
    }

    /// Whether `name` (already normalised) contains an entry.
    fn matches(&self, name: &[u8]) -> bool {
        (0..name.len()).any(|i| {
            let (start, end) = self.by_first[usize::from(name[i])];
            self.entries[usize::from(start)..usize::from(end)]
                .iter()
                .any(|entry| name[i..].starts_with(entry))
        })
    }
}

/// ASCII lowercase, with `-` and `.` read as `_`.
fn normalize_byte(b: u8) -> u8 {
    match b {
        b'-' | b'.' => b'_',
        _ => b.to_ascii_lowercase(),
    }
}

fn normalize_into(name: &[u8], out: &mut [u8]) {
    for (o, &b) in out.iter_mut().zip(name) {
        *o = normalize_byte(b);
    }
}

fn normalize_in_place(name: &mut [u8]) {
    for b in name {
        *b = normalize_byte(*b);
    }
}
