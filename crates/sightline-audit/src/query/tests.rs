#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// 2027-01-15T08:00:00Z.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn parse(text: &str) -> Query {
    Query::parse(text, now()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn error(text: &str) -> (usize, String) {
    match Query::parse(text, now()) {
        Ok(query) => panic!("{text:?} parsed as {query:?}"),
        Err(QueryError { position, message }) => (position, message),
    }
}

fn time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn terms(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn empty_queries_match_everything() {
    for text in ["", " ", "\t \n "] {
        let query = parse(text);
        assert_eq!(query, Query::default());
        assert!(query.is_empty());
    }
    assert!(!parse("x").is_empty());
    assert!(!parse("outcome:error").is_empty());
}

#[test]
fn the_example_from_the_docs() {
    let query = parse(r#"actor:alice action:auth.* outcome:failure "disk full" since:1h"#);
    assert_eq!(
        query,
        Query {
            terms: terms(&["disk full"]),
            actor: Some("alice".into()),
            action: Some(ActionPattern::Prefix("auth.".into())),
            outcome: Some(Outcome::Failure),
            since: Some(now() - Duration::from_secs(3600)),
            ..Query::default()
        }
    );
}

#[test]
fn every_key() {
    let query = parse(
        "actor:alice actor_type:service action:scan.start target_type:repository target_id:42 \
         outcome:denied severity:high min_severity:low component:scanner request_id:req-1 \
         trace_id:4bf92f3577b34da6a3ce929d0e0e4736 since:2026-11-30T10:00:00Z until:15m",
    );
    assert_eq!(
        query,
        Query {
            terms: vec![],
            actor: Some("alice".into()),
            actor_type: Some("service".into()),
            action: Some(ActionPattern::Exact("scan.start".into())),
            target_type: Some("repository".into()),
            target_id: Some("42".into()),
            outcome: Some(Outcome::Denied),
            severity: Some(Severity::High),
            min_severity: Some(Severity::Low),
            component: Some("scanner".into()),
            request_id: Some("req-1".into()),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            since: Some(time("2026-11-30T10:00:00Z")),
            until: Some(now() - Duration::from_secs(15 * 60)),
        }
    );
    for outcome in Outcome::ALL {
        assert_eq!(parse(&format!("outcome:{}", outcome.as_str())).outcome, Some(outcome));
    }
    for severity in Severity::ALL {
        assert_eq!(parse(&format!("severity:{}", severity.as_str())).severity, Some(severity));
        assert_eq!(parse(&format!("min_severity:{}", severity.as_str())).min_severity, Some(severity));
    }
}

#[test]
fn targets() {
    let both = parse("target:repository/42");
    assert_eq!((both.target_type.as_deref(), both.target_id.as_deref()), (Some("repository"), Some("42")));
    // The first `/` separates; use `target_id:` for ids with a `/` and no type.
    let nested = parse("target:repository/acme/widgets");
    assert_eq!(
        (nested.target_type.as_deref(), nested.target_id.as_deref()),
        (Some("repository"), Some("acme/widgets"))
    );
    let id = parse("target:42");
    assert_eq!((id.target_type, id.target_id.as_deref()), (None, Some("42")));
    // An id-only target and a type complement each other.
    let split = parse("target:42 target_type:repository");
    assert_eq!((split.target_type.as_deref(), split.target_id.as_deref()), (Some("repository"), Some("42")));
    assert_eq!(parse("target_id:acme/widgets").target_id.as_deref(), Some("acme/widgets"));
}

#[test]
fn terms_and_quoting() {
    let cases: &[(&str, &[&str])] = &[
        ("disk full", &["disk", "full"]),
        ("  disk\tfull\n", &["disk", "full"]),
        (r#""disk full""#, &["disk full"]),
        (r#""disk  full" now"#, &["disk  full", "now"]),
        (r#""say \"hi\"""#, &[r#"say "hi""#]),
        (r#""back\\slash""#, &[r"back\slash"]),
        (r#""C:\temp""#, &[r"C:\temp"]),
        (r#""trailing\\""#, &["trailing\\"]),
        // Quotes inside a bare word are literal.
        (r#"5" it's"#, &[r#"5""#, "it's"]),
        (r#"a"b"#, &[r#"a"b"#]),
        // A quoted phrase is text even when it looks like a filter.
        (r#""actor:alice""#, &["actor:alice"]),
        (r#""user:bob""#, &["user:bob"]),
        // Words with a `:` whose prefix does not look like a key are text.
        ("10:30", &["10:30"]),
        ("fe80::1 ::1", &["fe80::1", "::1"]),
        ("https://example.com/x?a=b", &["https://example.com/x?a=b"]),
        ("sha256:ab12", &["sha256:ab12"]),
        (":leading", &[":leading"]),
        ("User-Agent:curl", &["User-Agent:curl"]),
        // No operators: these are words.
        ("OR -word NOT", &["OR", "-word", "NOT"]),
        ("héllo wörld", &["héllo", "wörld"]),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).terms, terms(expected), "{text:?}");
    }
}

#[test]
fn quoted_values() {
    assert_eq!(parse(r#"actor:"alice smith""#).actor.as_deref(), Some("alice smith"));
    assert_eq!(parse(r#"actor:"say \"hi\"" x"#).actor.as_deref(), Some(r#"say "hi""#));
    assert_eq!(parse(r#"component:"a:b" x"#).component.as_deref(), Some("a:b"));
    // Only a leading quote quotes a value.
    assert_eq!(parse(r#"actor:al"ice"#).actor.as_deref(), Some(r#"al"ice"#));
    // The value is everything after the first `:`.
    assert_eq!(parse("actor:svc:deploy").actor.as_deref(), Some("svc:deploy"));
    let mixed = parse(r#"x actor:"a b" "c d" e"#);
    assert_eq!((mixed.actor.as_deref(), mixed.terms), (Some("a b"), terms(&["x", "c d", "e"])));
}

#[test]
fn action_patterns() {
    let cases = [
        ("auth.login", ActionPattern::Exact("auth.login".into())),
        ("auth.*", ActionPattern::Prefix("auth.".into())),
        ("auth*", ActionPattern::Prefix("auth".into())),
        ("*", ActionPattern::Prefix(String::new())),
        ("*.login", ActionPattern::Glob("*.login".into())),
        ("auth.*.failed", ActionPattern::Glob("auth.*.failed".into())),
        ("auth.**", ActionPattern::Glob("auth.**".into())),
    ];
    for (text, expected) in cases {
        assert_eq!(ActionPattern::parse(text), expected, "{text}");
        assert_eq!(parse(&format!("action:{text}")).action, Some(expected), "{text}");
    }

    let matching: &[(&str, &[&str], &[&str])] = &[
        ("auth.login", &["auth.login"], &["auth.login2", "auth.logi", "xauth.login", ""]),
        ("auth.*", &["auth.", "auth.login", "auth.token.refresh"], &["auth", "authz.login", "scan.auth.x"]),
        ("*", &["", "auth.login"], &[]),
        ("*.login", &["auth.login", ".login", "a.b.login"], &["auth.login.failed", "login", "auth.logins"]),
        (
            "auth.*.failed",
            &["auth.login.failed", "auth.a.b.failed", "auth..failed"],
            &["auth.failed", "auth.x.faile"],
        ),
        ("*a*b*", &["ab", "xaxbx", "aab", "abb", "ba.ab"], &["ba", "a", "b", ""]),
        ("a*a", &["aa", "aba", "aaa"], &["a", "ab", "baa."]),
        ("**", &["", "x"], &[]),
        ("a_b", &["a_b"], &["axb"]),
    ];
    for (pattern, yes, no) in matching {
        let pattern = ActionPattern::parse(pattern);
        for action in *yes {
            assert!(pattern.matches(action), "{pattern:?} should match {action:?}");
        }
        for action in *no {
            assert!(!pattern.matches(action), "{pattern:?} should not match {action:?}");
        }
    }
}

#[test]
fn sql_like_escapes_literals() {
    let cases = [
        (ActionPattern::Exact("auth.login".into()), "auth.login"),
        (ActionPattern::Exact("user_group.add".into()), r"user\_group.add"),
        (ActionPattern::Exact(r"100%\x".into()), r"100\%\\x"),
        (ActionPattern::Prefix("auth.".into()), "auth.%"),
        (ActionPattern::Prefix("api_key.".into()), r"api\_key.%"),
        (ActionPattern::Prefix(String::new()), "%"),
        (ActionPattern::Glob("*.login".into()), "%.login"),
        (ActionPattern::Glob("a_b.*.c%d*".into()), r"a\_b.%.c\%d%"),
        (ActionPattern::Glob("**".into()), "%%"),
    ];
    for (pattern, like) in cases {
        assert_eq!(pattern.sql_like(), like, "{pattern:?}");
    }
}

#[test]
fn relative_times() {
    let cases = [
        ("0s", Duration::ZERO),
        ("500ms", Duration::from_millis(500)),
        ("30s", Duration::from_secs(30)),
        ("15m", Duration::from_secs(15 * 60)),
        ("1h", Duration::from_secs(3600)),
        ("1h30m", Duration::from_secs(5400)),
        ("1m1s1ms", Duration::from_millis(61_001)),
        ("7d", Duration::from_secs(7 * 86_400)),
        ("2w", Duration::from_secs(14 * 86_400)),
        ("1y", Duration::from_secs(365 * 86_400)),
        (
            "1y2w3d4h5m6s7ms",
            Duration::from_millis(((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7),
        ),
        ("90m", Duration::from_secs(5400)),
        ("007s", Duration::from_secs(7)),
    ];
    for (text, ago) in cases {
        assert_eq!(parse(&format!("since:{text}")).since, Some(now() - ago), "{text}");
        assert_eq!(parse(&format!("until:{text}")).until, Some(now() - ago), "{text}");
    }
}

#[test]
fn absolute_times() {
    let cases = [
        ("2026-11-30T10:00:00Z", "2026-11-30T10:00:00Z"),
        ("2026-11-30T10:00:00", "2026-11-30T10:00:00Z"),
        ("2026-11-30T10:00:00+00:00", "2026-11-30T10:00:00Z"),
        ("2026-11-30T10:00:00.123456Z", "2026-11-30T10:00:00.123456Z"),
        ("\"2026-11-30 10:00:00\"", "2026-11-30T10:00:00Z"),
        ("2026-11-30", "2026-11-30T00:00:00Z"),
        ("1970-01-01", "1970-01-01T00:00:00Z"),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(&format!("since:{text}")).since, Some(time(expected)), "{text}");
    }
    let range = parse("since:2026-11-30 until:2026-12-01");
    assert_eq!(
        (range.since, range.until),
        (Some(time("2026-11-30T00:00:00Z")), Some(time("2026-12-01T00:00:00Z")))
    );
    // An empty range is allowed; only an inverted one is an error.
    let same = parse("since:1h until:60m");
    assert_eq!(same.since, same.until);
}

#[test]
fn errors() {
    let keys = "actor, actor_type, action, target, target_type, target_id, outcome, severity, min_severity, \
                component, request_id, trace_id, since, until";
    let unknown = |key: &str, word: &str| {
        format!(
            "unknown key `{key}`; use one of {keys} (or quote the word, `\"{word}\"`, to search for it as \
             text)"
        )
    };
    let lower = |key: &str, wrong: &str| format!("keys are lower case: write `{key}:`, not `{wrong}:`");
    let compare = |key: &str| format!("comparisons are not supported: write `{key}:value`");
    let compare_severity =
        |key: &str| format!("{}; for a severity and above, write `min_severity:high`", compare(key));
    let twice = |key: &str, at: usize| {
        format!("`{key}` is given twice (also at character {at}); a key may appear once")
    };
    let both = |key: &str, other: &str, field: &str| {
        format!("`{key}` and `{other}` (at character 1) both set `{field}`; use one of them")
    };
    let empty = |key: &str, example: &str| format!("`{key}` needs a value, as in `{key}:{example}`");
    let empty_phrase = "empty phrase `\"\"`; put words between the quotes or remove them".to_owned();
    let unterminated =
        "unterminated quote: add the closing `\"` (write `\\\"` for a quote inside quotes)".to_owned();
    let after_quote = "a closing quote must be followed by a space or the end of the query".to_owned();
    let action = |value: &str| {
        format!(
            "`action:{value}` cannot match: actions are lower-case words joined by dots, such as \
             `auth.login`; `*` matches any run of characters, as in `auth.*`"
        )
    };
    let target = |value: &str| {
        format!(
            "`target:{value}` needs a type and an id, as in `target:repository/42`, or only an id, as in \
             `target:42`"
        )
    };
    let one_of = |key: &str, words: &str, value: &str| format!("`{key}` is one of {words}; not `{value}`");
    let outcomes = "success, failure, denied, error";
    let severities = "info, low, medium, high, critical";
    let time = |text: &str, reason: &str| {
        format!(
            "`{text}`: {reason}; use a duration before now such as `15m`, `1h30m` or `7d`, or a UTC time \
             such as `2026-11-30T10:00:00Z` or `2026-11-30`"
        )
    };
    let order =
        |unit: &str| format!("unit \"{unit}\" is out of order; units go y, w, d, h, m, s, ms, each once");
    let invalid = "not a time (timestamp format is invalid)";
    let out_of_range = "not a time (numeric component is out of range)";
    let inverted = |since: &str, until: &str| {
        format!("`since` ({since}) is after `until` ({until}), so nothing can match; swap them")
    };
    let cases: Vec<(&str, usize, String)> = vec![
        // Keys.
        ("acter:alice", 1, unknown("acter", "acter:alice")),
        ("x user:bob", 3, unknown("user", "user:bob")),
        ("foo:", 1, unknown("foo", "foo:")),
        ("mailto:a@b", 1, unknown("mailto", "mailto:a@b")),
        ("Actor:alice", 1, lower("actor", "Actor")),
        ("x TRACE_ID:1", 3, lower("trace_id", "TRACE_ID")),
        ("severity>=high", 1, compare_severity("severity")),
        ("a min_severity>medium", 3, compare_severity("min_severity")),
        ("actor=alice", 1, compare("actor")),
        ("actor_type!=user", 1, compare("actor_type")),
        // Repeats.
        ("actor:alice actor:bob", 13, twice("actor", 1)),
        ("since:1h x since:2h", 12, twice("since", 1)),
        ("target:1 target:2", 10, twice("target", 1)),
        ("target:repository/42 target_type:user", 22, both("target_type", "target", "target_type")),
        ("target_id:1 target:42", 13, both("target", "target_id", "target_id")),
        // Empty values.
        ("actor:", 1, empty("actor", "alice")),
        ("x actor: y", 3, empty("actor", "alice")),
        ("actor:\"\"", 1, empty("actor", "alice")),
        ("since:\"  \"", 1, empty("since", "1h")),
        ("target:", 1, empty("target", "repository/42")),
        ("x \"\"", 3, empty_phrase.clone()),
        ("\" \"", 1, empty_phrase),
        // Quotes.
        ("a \"disk full", 3, unterminated.clone()),
        ("\"a\\\"", 1, unterminated.clone()),
        ("x actor:\"alice", 3, unterminated),
        ("\"a\"b", 1, after_quote.clone()),
        ("actor:\"a\"b", 1, after_quote.clone()),
        ("\"a\"\"b\"", 1, after_quote),
        // Values.
        ("action:Auth.login", 1, action("Auth.login")),
        ("action:auth.%", 1, action("auth.%")),
        ("target:/42", 1, target("/42")),
        ("target:repository/", 1, target("repository/")),
        ("outcome:failed", 1, one_of("outcome", outcomes, "failed")),
        ("outcome:Failure", 1, one_of("outcome", outcomes, "Failure")),
        ("severity:urgent", 1, one_of("severity", severities, "urgent")),
        ("min_severity:HIGH", 1, one_of("min_severity", severities, "HIGH")),
        // Times.
        ("since:15", 1, time("since:15", "\"15\" needs a unit: y, w, d, h, m, s or ms")),
        ("since:1h30", 1, time("since:1h30", "\"30\" needs a unit: y, w, d, h, m, s or ms")),
        ("since:15min", 1, time("since:15min", "unknown unit \"min\"; use y, w, d, h, m, s or ms")),
        ("since:30m1h", 1, time("since:30m1h", &order("h"))),
        ("since:1h1h", 1, time("since:1h1h", &order("h"))),
        ("until:1s1m", 1, time("until:1s1m", &order("m"))),
        ("since:99999999999999999999y", 1, time("since:99999999999999999999y", "duration is too large")),
        ("since:99999999999y", 1, time("since:99999999999y", "duration is too large")),
        ("since:yesterday", 1, time("since:yesterday", invalid)),
        ("since:-1h", 1, time("since:-1h", invalid)),
        ("since:2026-13-01", 1, time("since:2026-13-01", out_of_range)),
        ("until:2026-11-30T25:00:00Z", 1, time("until:2026-11-30T25:00:00Z", out_of_range)),
        ("until:2026-11-30T10:00:00+02:00", 1, time("until:2026-11-30T10:00:00+02:00", invalid)),
        ("since:1969-12-31", 1, time("since:1969-12-31", out_of_range)),
        ("since:1h until:2h", 10, inverted("2027-01-15T07:00:00Z", "2027-01-15T06:00:00Z")),
        ("until:2026-11-30 x since:2026-12-01", 20, inverted("2026-12-01T00:00:00Z", "2026-11-30T00:00:00Z")),
        // Positions count characters, not bytes.
        ("héllo wörld acter:x", 13, unknown("acter", "acter:x")),
    ];
    for (text, position, message) in cases {
        assert_eq!(error(text), (position, message), "{text:?}");
    }
}

#[test]
fn errors_display_their_position() {
    let error = Query::parse("x outcome:nope", now()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid query at character 3: `outcome` is one of success, failure, denied, error; not `nope`"
    );
}

/// A small xorshift generator: deterministic "random" inputs without a dev-dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn arbitrary_text_never_panics_and_errors_point_inside_it() {
    let pieces = [
        "actor",
        "action",
        "target",
        "since",
        "until",
        "severity",
        "min_severity",
        "foo",
        ":",
        ":",
        "\"",
        "\"",
        "\\",
        " ",
        " ",
        "*",
        "/",
        "1h",
        "30m",
        "2026-11-30",
        "T10:00:00Z",
        "é",
        "\t",
        "x",
        "auth.*",
        ">=",
        "_",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.next() % 8;
        let text: String = (0..len).map(|_| pieces[(rng.next() % pieces.len() as u64) as usize]).collect();
        if let Err(error) = Query::parse(&text, now()) {
            let chars = text.chars().count();
            assert!((1..=chars).contains(&error.position), "{text:?}: {error}");
        }
    }
}

#[test]
fn cursors_round_trip() {
    let mut cursors = vec![
        Cursor { ts_micros: 0, seq: 0 },
        Cursor { ts_micros: 1_764_496_800_000_000, seq: 42 },
        Cursor { ts_micros: -1, seq: 1 },
        Cursor { ts_micros: i64::MIN, seq: i64::MAX },
        Cursor { ts_micros: i64::MAX, seq: i64::MIN },
    ];
    let mut rng = Rng(42);
    cursors.extend((0..1000).map(|_| Cursor { ts_micros: rng.next() as i64, seq: rng.next() as i64 }));
    for cursor in cursors {
        let text = cursor.encode();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{text}");
        assert_eq!(Cursor::decode(&text), Ok(cursor));
        assert_eq!(Cursor::decode(&text.to_ascii_uppercase()), Ok(cursor));
    }
    assert_eq!(Cursor { ts_micros: 1, seq: 2 }.encode(), "00000000000000010000000000000002");
}

#[test]
fn bad_cursors() {
    let valid = Cursor { ts_micros: 1_764_496_800_000_000, seq: 42 }.encode();
    let bad = [
        String::new(),
        "abc".into(),
        valid[..31].into(),
        format!("{valid}0"),
        format!(" {}", &valid[1..]),
        format!("+{}", &valid[1..]),
        format!("{}+{}", &valid[..16], &valid[17..]),
        format!("{}g", &valid[..31]),
        format!("é{}", &valid[2..]),
        "1764496800000000-42".into(),
    ];
    for text in bad {
        assert_eq!(
            Cursor::decode(&text),
            Err(QueryError {
                position: 1,
                message: "invalid cursor; pass the `next_cursor` of the previous page".into()
            }),
            "{text:?}"
        );
    }
}

#[test]
fn facets() {
    let expected = [
        (Facet::Actor, "actor", "actor_id"),
        (Facet::ActorType, "actor_type", "actor_type"),
        (Facet::Action, "action", "action"),
        (Facet::TargetType, "target_type", "target_type"),
        (Facet::Outcome, "outcome", "outcome"),
        (Facet::Severity, "severity", "severity"),
        (Facet::Component, "component", "component"),
    ];
    assert_eq!(Facet::ALL.len(), expected.len());
    for (facet, name, column) in expected {
        assert_eq!((facet.as_str(), facet.column()), (name, column));
        assert_eq!(Facet::parse(name), Ok(facet));
    }
    assert_eq!(
        Facet::parse("actor_id"),
        Err(QueryError {
            position: 1,
            message: "unknown facet `actor_id`; use one of actor, actor_type, action, target_type, outcome, \
                      severity, component"
                .into()
        })
    );
}

fn event() -> AuditEvent {
    AuditEvent::builder("auth.login", "alice")
        .actor_type("user")
        .target("repository", "42")
        .outcome(Outcome::Failure)
        .severity(Severity::Medium)
        .component("gateway")
        .request_id("req-1")
        .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
        .message("Disk full while writing the session")
        .attribute("path", "/var/lib/Sightline")
        .attribute("retries", 3)
        .timestamp(time("2027-01-15T07:30:00.000001Z"))
        .build()
        .unwrap()
}

#[test]
fn matches_filters_like_the_stores() {
    let event = event();
    let yes = [
        "",
        "actor:alice",
        "actor_type:user",
        "action:auth.login",
        "action:auth.*",
        "action:*.login",
        "action:*",
        "target:repository/42",
        "target:42",
        "target_type:repository",
        "target_id:42",
        "outcome:failure",
        "severity:medium",
        "min_severity:info",
        "min_severity:medium",
        "component:gateway",
        "request_id:req-1",
        "trace_id:4bf92f3577b34da6a3ce929d0e0e4736",
        "since:1h",
        "since:2027-01-15T07:30:00.000001Z",
        "until:2027-01-15T07:30:00.000002Z",
        "since:2027-01-15T07:30:00.0000015Z",
        "since:2027-01-15 until:2027-01-16",
        // Text: case-insensitive substrings of the message or the attributes' JSON.
        "disk",
        "DISK FULL",
        "\"full while\"",
        "sess",
        "var/lib/sightline",
        "retries",
        r#""\"retries\":3""#,
        "disk actor:alice outcome:failure since:1h",
    ];
    for text in yes {
        assert!(parse(text).matches(&event), "{text:?} should match");
    }
    let no = [
        "actor:bob",
        "actor:Alice",
        "actor_type:service",
        "action:auth.logout",
        "action:auth",
        "action:scan.*",
        "action:*.logout",
        "target:repository/43",
        "target:user/42",
        "target:43",
        "target_type:user",
        "outcome:success",
        "severity:high",
        "severity:low",
        "min_severity:high",
        "component:scanner",
        "request_id:req-2",
        "trace_id:00000000000000000000000000000000",
        "since:15m",
        "since:2027-01-15T07:30:00.000002Z",
        "until:2027-01-15T07:30:00.000001Z",
        "until:1h",
        "disk empty",
        "\"full disk\"",
        "alice",
        "disk actor:alice outcome:success",
    ];
    for text in no {
        assert!(!parse(text).matches(&event), "{text:?} should not match");
    }
}

#[test]
fn matches_absent_optional_fields() {
    let bare = AuditEvent::builder("auth.login", "alice").timestamp(now()).build().unwrap();
    assert!(parse("actor:alice").matches(&bare));
    for text in
        ["target:42", "target_type:repository", "component:gateway", "request_id:r", "trace_id:t", "x"]
    {
        assert!(!parse(text).matches(&bare), "{text:?} should not match");
    }
    // A duration before 1970 is fine: it matches everything since then.
    assert!(parse("since:500000000y").matches(&bare));
    // `now` itself is excluded by `until:0s` and included by `since:0s`.
    assert!(parse("since:0s").matches(&bare));
    assert!(!parse("until:0s").matches(&bare));
}
