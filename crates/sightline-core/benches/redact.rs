//! `Redactor` against a naive anchor measured in the same run: every built-in rule as one regex, applied in
//! turn with `Regex::replace_all` (no pre-check, no Luhn check).
//!
//! Groups (results land in `target/criterion/<group>/<impl>/new/estimates.json`):
//!
//! - `redact_clean`: a typical 70-byte log message in which nothing matches.
//! - `redact_digits`: a clean message full of numbers (timestamp, IPv4 address, port, UUID) that passes the
//!   digit pre-check, so the phone and card matchers run and find nothing.
//! - `redact_email`: a message with one email address.
//! - `redact_card`: a message with one card number in groups of four.
//! - `deny_check`: `is_denied_field` over ten typical field names (four denied), against lowercasing,
//!   normalising and substring-searching each name.

// Benches opt back in to unwrapping: a failed setup should stop the bench loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::hint::black_box;

use criterion::Criterion;
use regex::Regex;
use sightline_core::redact::Redactor;

const CLEAN: &str = "GET /api/v1/workflows/42/runs returned 200 in 35 ms for tenant acme-prod";
const DIGITS: &str = "2026-11-30T01:02:03Z run 550e8400-e29b-41d4-a716-446655440000 from 10.1.20.30:8443";
const EMAIL: &str = "password reset requested for alice.smith@example.com by support agent";
const CARD: &str = "payment declined for card 4111 1111 1111 1111 (insufficient funds)";

const FIELDS: [&str; 10] = [
    "message",
    "user_id",
    "workflow_id",
    "http.method",
    "X-Api-Key",
    "duration_ms",
    "db_password",
    "run_id",
    "Authorization",
    "client_secret",
];

/// The naive anchor: each rule's regex in turn, each `replace_all` copying the text when it matches.
struct Naive {
    rules: Vec<(Regex, &'static str)>,
    denied: Vec<&'static str>,
}

impl Naive {
    fn new() -> Self {
        let rules = [
            (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[REDACTED:email]"),
            (
                r"\+[0-9]{1,3}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){1,6}|\([0-9]{2,4}\) ?[0-9]{3,4}[ .-][0-9]{4}|[0-9]{3}-[0-9]{3}-[0-9]{4}",
                "[REDACTED:phone]",
            ),
            (r"\b[0-9](?:[ -]?[0-9]){12,18}\b", "[REDACTED:card]"),
            (r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", "[REDACTED:jwt]"),
            (r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/-]+=*", "$1 [REDACTED:bearer]"),
            (
                r"(?:AKIA|ASIA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,255}|xox[baprs]-[A-Za-z0-9-]{10,}|AIza[A-Za-z0-9_-]{35}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}",
                "[REDACTED:access_key]",
            ),
        ];
        let rules =
            rules.into_iter().map(|(pattern, replacement)| (Regex::new(pattern).unwrap(), replacement));
        Naive {
            rules: rules.collect(),
            denied: vec![
                "password",
                "passwd",
                "secret",
                "token",
                "authorization",
                "api_key",
                "apikey",
                "cookie",
                "credential",
                "private_key",
                "session_id",
            ],
        }
    }

    fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for (regex, replacement) in &self.rules {
            if let Cow::Owned(replaced) = regex.replace_all(&out, *replacement) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    fn is_denied_field(&self, name: &str) -> bool {
        let normalized = name.to_ascii_lowercase().replace(['-', '.'], "_");
        self.denied.iter().any(|entry| normalized.contains(entry))
    }
}

fn redact_group(c: &mut Criterion, group: &str, text: &str, redactor: &Redactor, naive: &Naive) {
    // Both must agree on whether the text changes, or the comparison is meaningless.
    assert_eq!(
        matches!(redactor.redact(text), Cow::Borrowed(_)),
        matches!(naive.redact(text), Cow::Borrowed(_)),
        "{group}"
    );
    let mut g = c.benchmark_group(group);
    g.bench_function("sightline", |b| b.iter(|| redactor.redact(black_box(text)).len()));
    g.bench_function("naive_replace_all", |b| b.iter(|| naive.redact(black_box(text)).len()));
    g.finish();
}

fn main() {
    let redactor = Redactor::default();
    let naive = Naive::new();
    println!("clean: {:?}", redactor.redact(CLEAN));
    println!("digits: {:?}", redactor.redact(DIGITS));
    println!("email: {:?}", redactor.redact(EMAIL));
    println!("card: {:?}", redactor.redact(CARD));

    let mut criterion = Criterion::default().configure_from_args();
    redact_group(&mut criterion, "redact_clean", CLEAN, &redactor, &naive);
    redact_group(&mut criterion, "redact_digits", DIGITS, &redactor, &naive);
    redact_group(&mut criterion, "redact_email", EMAIL, &redactor, &naive);
    redact_group(&mut criterion, "redact_card", CARD, &redactor, &naive);

    let denied = |f: &dyn Fn(&str) -> bool| FIELDS.iter().filter(|name| f(black_box(name))).count();
    assert_eq!(denied(&|n| redactor.is_denied_field(n)), 4);
    assert_eq!(denied(&|n| naive.is_denied_field(n)), 4);
    let mut g = criterion.benchmark_group("deny_check");
    g.bench_function("sightline", |b| b.iter(|| denied(&|n| redactor.is_denied_field(n))));
    g.bench_function("naive_normalize_contains", |b| b.iter(|| denied(&|n| naive.is_denied_field(n))));
    g.finish();

    criterion.final_summary();
}
