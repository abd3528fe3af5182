use std::borrow::Cow;

use proptest::prelude::*;

use super::{BuiltinRule, RedactError, Redactor, rules};

/// Redacts each input with `redactor` and compares with the expected output; an unchanged input must come
/// back borrowed.
#[track_caller]
fn check(redactor: &Redactor, cases: &[(&str, &str)]) {
    for &(input, expected) in cases {
        let got = redactor.redact(input);
        assert_eq!(got, expected, "input: {input:?}");
        if input == expected {
            assert!(matches!(got, Cow::Borrowed(_)), "unchanged input was copied: {input:?}");
        }
    }
}

/// Checks inputs that must come back unchanged.
#[track_caller]
fn check_clean(redactor: &Redactor, inputs: &[&str]) {
    let cases: Vec<(&str, &str)> = inputs.iter().map(|s| (*s, *s)).collect();
    check(redactor, &cases);
}

/// Appends the Luhn check digit to `body`.
fn with_check_digit(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            // The check digit will sit at position 0, so the body's last digit is doubled.
            if i % 2 == 0 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.\
                   SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

#[test]
fn email() {
    check(
        &Redactor::default(),
        &[
            ("signup from alice@example.com", "signup from [REDACTED:email]"),
            ("to first.last+tag@sub.example.co.uk.", "to [REDACTED:email]."),
            ("<bob_99@corp.io>", "<[REDACTED:email]>"),
            ("mailto:x@y.de,z@w.org", "mailto:[REDACTED:email],[REDACTED:email]"),
            ("user=Admin%1@Mail-Server.example", "user=[REDACTED:email]"),
        ],
    );
    check_clean(
        &Redactor::default(),
        &["root@localhost", "ping @here", "foo@", "a @ b.com", "user@host:22", "x@y.c", "@@@"],
    );
}

#[test]
fn phone() {
    check(
        &Redactor::default(),
        &[
            ("call +1 415-555-2671 now", "call [REDACTED:phone] now"),
            ("(415) 555-2671", "[REDACTED:phone]"),
            ("tel 1 (415) 555-2671", "tel [REDACTED:phone]"),
            ("uk: +44 20 7946 0958.", "uk: [REDACTED:phone]."),
            ("+44 (0)20 7946 0958", "[REDACTED:phone]"),
            ("e164=+14155552671", "e164=[REDACTED:phone]"),
            ("tel:+33 1 23 45 67 89", "tel:[REDACTED:phone]"),
            ("415-555-2671", "[REDACTED:phone]"),
            ("1-415-555-2671", "[REDACTED:phone]"),
            ("415.555.2671", "[REDACTED:phone]"),
            ("415 555 2671", "[REDACTED:phone]"),
            ("020 7946 0958", "[REDACTED:phone]"),
            ("030-1234-5678", "[REDACTED:phone]"),
            ("a: +1 415-555-2671 b: (212) 555-0100", "a: [REDACTED:phone] b: [REDACTED:phone]"),
            // Greedy international numbers give back trailing groups past 15 digits.
            ("+1 415 555 2671 123456", "[REDACTED:phone] 123456"),
            ("+1 415 555 2671 5th floor", "[REDACTED:phone] 5th floor"),
            // A rejected match does not hide the number inside it.
            ("x+1 415-555-2671", "x+1 [REDACTED:phone]"),
        ],
    );
    check_clean(
        &Redactor::default(),
        &[
            "listening on 0.0.0.0:8080",
            "port 8080, pid 12345, 3 retries",
            "at 2026-11-30T01:02:03Z",
            "at 2026-11-30T01:02:03.123456+01:00",
            "at 2026-11-30 12:00:00",
            "took 1500ms (00:01:02.345)",
            "version 10.0.19045.2965",
            "v1.22.333",
            "peer 192.168.100.200:443",
            "request 550e8400-e29b-41d4-a716-446655440000",
            "request 12345678-1234-1234-1234-123456789012",
            "user 4155552671",
            "offset UTC+01:00 and +0100",
            "1+2=3",
            "ssn 123-45-6789",
            "range 1000-2000-3000",
            "+1 415 555",
            "1415-555-2671",
            "415-555-2671-9",
            "ratio 415.555.2671.5",
            "epoch 1732928523",
        ],
    );
}

#[test]
fn card() {
    let nineteen = with_check_digit("630400000000000000");
    let nineteen_cases = [(format!("pan {nineteen}"), "pan [REDACTED:card]".to_owned())];
    let nineteen_cases: Vec<(&str, &str)> =
        nineteen_cases.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    check(&Redactor::default(), &nineteen_cases);
    // Luhn-valid numbers outside the networks' first digits: millisecond and microsecond timestamps.
    let timestamps = [with_check_digit("170000000000"), with_check_digit("176450000000000")];
    let timestamps: Vec<String> = timestamps.iter().map(|t| format!("ts {t}")).collect();
    check_clean(&Redactor::default(), &timestamps.iter().map(String::as_str).collect::<Vec<_>>());
    check(
        &Redactor::default(),
        &[
            ("card 4111 1111 1111 1111", "card [REDACTED:card]"),
            ("card 4111-1111-1111-1111.", "card [REDACTED:card]."),
            ("card=4111111111111111;", "card=[REDACTED:card];"),
            ("mc 5555555555554444", "mc [REDACTED:card]"),
            ("amex 378282246310005", "amex [REDACTED:card]"),
            ("amex 3782 822463 10005", "amex [REDACTED:card]"),
            ("visa13 4222222222222", "visa13 [REDACTED:card]"),
            ("discover 6011 0000 0000 0004", "discover [REDACTED:card]"),
            ("\"4111111111111111\"", "\"[REDACTED:card]\""),
            // Neighbouring numbers stay; only the card-shaped run is masked.
            ("card 4111 1111 1111 1111 2024", "card [REDACTED:card] 2024"),
            ("qty 12 4111 1111 1111 1111", "qty 12 [REDACTED:card]"),
            ("amount 0.5 4111111111111111", "amount 0.5 [REDACTED:card]"),
        ],
    );
    check_clean(
        &Redactor::default(),
        &[
            "id 1234567890123",
            "card 4111 1111 1111 1112",
            "order 41111111111111111111111",
            "hash a4111111111111111 4111111111111111f",
            "ratio 0.4111111111111111",
            "t=12:4111111111111111",
            "request 12345678-1234-1234-4111-111111111111",
            "ts 1700000000000",
            "4111 1111 1111 111",
        ],
    );
}

#[test]
fn jwt() {
    let cases = [
        (format!("token {JWT}"), "token [REDACTED:jwt]".to_owned()),
        (format!("id_token={JWT}&state=1"), "id_token=[REDACTED:jwt]&state=1".to_owned()),
        // An unsecured JWT has an empty signature.
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0. ok".to_owned(), "[REDACTED:jwt] ok".to_owned()),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    check(&Redactor::default(), &cases);
    check_clean(&Redactor::default(), &["eyJust kidding", "eyJhbGciOiJIUzI1NiJ9 alone", "eyJ.x.y", "keyJ"]);
}

#[test]
fn bearer() {
    let jwt_header = format!("Authorization: Bearer {JWT}");
    check(
        &Redactor::default(),
        &[
            ("Authorization: Bearer abc.def-123", "Authorization: Bearer [REDACTED:bearer]"),
            ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [REDACTED:bearer]"),
            (r#"{"Authorization":"Bearer xyz"}"#, r#"{"Authorization":"Bearer [REDACTED:bearer]"}"#),
            (
                r#"{\"authorization\": \"Bearer xyz\"}"#,
                r#"{\"authorization\": \"Bearer [REDACTED:bearer]\"}"#,
            ),
            ("Proxy-Authorization: Negotiate YIIabc", "Proxy-Authorization: Negotiate [REDACTED:bearer]"),
            ("AUTHORIZATION: s3cr3t, next", "AUTHORIZATION: [REDACTED:bearer], next"),
            ("Authorization: token abcdef", "Authorization: token [REDACTED:bearer]"),
            ("sent bearer AbC123xyz upstream", "sent bearer [REDACTED:bearer] upstream"),
            ("header Basic dXNlcjpwYXNz=", "header Basic [REDACTED:bearer]"),
            (&jwt_header, "Authorization: Bearer [REDACTED:bearer]"),
        ],
    );
    check_clean(
        &Redactor::default(),
        &[
            "basic validation passed",
            "missing bearer token",
            "WWW-Authenticate: Basic realm=\"api\"",
            "the author wrote",
            "authorization failed for user 7",
            "Bearer",
            "debasic abc123",
        ],
    );
}

#[test]
fn access_key() {
    let cases = [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
        "gho_1234567890abcdefghijklmnopqrstuvwxyz",
        "ghs_1234567890abcdefghijklmnopqrstuvwxyz",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
        "glpat-abcdefghij0123456789",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-abcdefghij",
        "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC (truncated",
    ];
    let cases: Vec<(String, &str)> =
        cases.iter().map(|key| (format!("key={key} ok"), "key=[REDACTED:access_key] ok")).collect();
    let mut cases: Vec<(&str, &str)> = cases.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    // A truncated private key is masked to the end of the text.
    cases.pop();
    check(&Redactor::default(), &cases);
    check(&Redactor::default(), &[("-----BEGIN PRIVATE KEY-----\nMIIEvQIBAD", "[REDACTED:access_key]")]);
    check_clean(
        &Redactor::default(),
        &[
            "AKIA1234 is too short",
            "ghp_short",
            "task-abcdefghijklmnopqrstuvwxyz",
            "xAKIAIOSFODNN7EXAMPLE",
            "risk_live_abcdefghijkl",
            "sk_live_ alone",
            "xox is not a token",
            "-----BEGIN CERTIFICATE-----",
            "AIza too short",
        ],
    );
}

#[test]
fn overlapping_matches_merge() {
    check(
        &Redactor::default(),
        &[
            // The header credential and the access key cover the same text.
            (
                "Authorization: token ghp_1234567890abcdefghijklmnopqrstuvwxyz",
                "Authorization: token [REDACTED:bearer]",
            ),
            // An email whose local part holds a phone-shaped number.
            ("+14155552671@sms.example.com", "[REDACTED:email]"),
        ],
    );
}

#[test]
fn deny_list() {
    let redactor = Redactor::default();
    for name in [
        "password",
        "db_password",
        "DB-PASSWORD",
        "user.password",
        "passwd",
        "passphrase",
        "X-Api-Key",
        "apiKey",
        "api.key",
        "Authorization",
        "proxy-authorization",
        "client_secret",
        "aws.secret_access_key",
        "accessToken",
        "refresh_token",
        "x-csrf-token",
        "Cookie",
        "Set-Cookie",
        "privateKey",
        "ssh.private-key",
        "credentials",
        "SESSION_ID",
        "sessionId",
        "access_key_id",
    ] {
        assert!(redactor.is_denied_field(name), "{name} should be denied");
        assert_eq!(redactor.redact_field(name, "value"), "[REDACTED]", "{name}");
    }
    for name in [
        "user_id",
        "workflow_id",
        "run_id",
        "session",
        "session_count",
        "author",
        "key",
        "monkey",
        "passenger",
        "message",
        "",
        "ünïcödé",
    ] {
        assert!(!redactor.is_denied_field(name), "{name} should not be denied");
    }
    // Names longer than the stack buffer take the allocating path.
    let long = format!("{}_password", "x".repeat(100));
    assert!(redactor.is_denied_field(&long));
    assert!(!redactor.is_denied_field(&"x".repeat(100)));
    // A field that is not denied still has its value redacted by the rules.
    assert_eq!(redactor.redact_field("note", "mail a@b.io"), "mail [REDACTED:email]");
    assert!(matches!(redactor.redact_field("note", "fine"), Cow::Borrowed("fine")));
}

#[test]
fn extra_patterns_and_fields() {
    let redactor = Redactor::builder()
        .with_pattern("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b")
        .unwrap()
        .with_pattern("internal-host", r"(?i)\b[a-z0-9-]+\.corp\.internal\b")
        .unwrap()
        .with_denied_field("Tenant.Key")
        .with_denied_field("")
        .build();
    check(
        &redactor,
        &[
            ("ssn 123-45-6789", "ssn [REDACTED:ssn]"),
            ("db at DB-1.CORP.internal", "db at [REDACTED:internal-host]"),
            ("a@b.io on db-1.corp.internal", "[REDACTED:email] on [REDACTED:internal-host]"),
        ],
    );
    check_clean(&redactor, &["ssn 1234-45-6789", "corp.internal"]);
    assert!(redactor.is_denied_field("x-tenant-key"));
    assert!(redactor.is_denied_field("TENANT_KEY"));
    assert!(!redactor.is_denied_field("tenant"));
    assert!(!redactor.is_denied_field("user_id"), "the empty entry must not deny everything");
}

#[test]
fn without_builtin() {
    let redactor =
        Redactor::builder().without_builtin(BuiltinRule::Email).without_builtin(BuiltinRule::Phone).build();
    check(
        &redactor,
        &[("a@b.io +1 415-555-2671 4111111111111111", "a@b.io +1 415-555-2671 [REDACTED:card]")],
    );
    let mut builder = Redactor::builder();
    for rule in BuiltinRule::ALL {
        builder = builder.without_builtin(rule);
    }
    let none = builder.build();
    assert!(none.is_enabled(), "the deny list still applies");
    check_clean(&none, &["a@b.io 4111111111111111"]);
    assert_eq!(none.redact_field("password", "x"), "[REDACTED]");
}

#[test]
fn invalid_patterns() {
    let err = |name: &str, pattern: &str| -> String {
        match Redactor::builder().with_pattern(name, pattern) {
            Err(err @ RedactError::InvalidPattern { .. }) => err.to_string(),
            Ok(_) => panic!("{name}: {pattern} should be rejected"),
        }
    };
    let message = err("ssn", "([0-9]{3}");
    assert!(message.starts_with(r#"invalid redaction pattern "ssn" ("([0-9]{3}"): "#), "{message}");
    assert!(message.contains("unclosed group"), "{message}");
    assert!(message.contains("fix the regular expression"), "{message}");
    assert!(err("lookahead", "a(?=b)").contains("look-around"));
    let message = err("my rule", "x");
    assert!(message.contains("rename the pattern"), "{message}");
    assert!(err("", "x").contains("rename the pattern"));
    let message = err("anything", "a*");
    assert!(message.contains("matches the empty string"), "{message}");
    let Err(RedactError::InvalidPattern { name, pattern, reason }) =
        Redactor::builder().with_pattern("bad", "[")
    else {
        panic!("`[` should be rejected");
    };
    assert_eq!((name.as_str(), pattern.as_str()), ("bad", "["));
    assert!(!reason.is_empty());
}

#[test]
fn disabled() {
    let redactor = Redactor::disabled();
    assert!(!redactor.is_enabled());
    assert!(Redactor::default().is_enabled());
    check_clean(&redactor, &["a@b.io 4111111111111111", "Authorization: Bearer x"]);
    assert!(!redactor.is_denied_field("password"));
    assert_eq!(redactor.redact_field("password", "hunter2"), "hunter2");
}

#[test]
fn api_shape() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    assert_traits::<Redactor>();
    let redactor = Redactor::builder().with_pattern("ssn", "[0-9]{3}-[0-9]{2}-[0-9]{4}").unwrap().build();
    let clone = redactor.clone();
    assert!(std::sync::Arc::ptr_eq(&redactor.inner, &clone.inner), "clones share the rules");
    assert_eq!(
        format!("{redactor:?}"),
        "Redactor { enabled: true, builtins: [\"email\", \"phone\", \"card\", \"jwt\", \"bearer\", \
         \"access_key\"], patterns: [\"ssn\"], denied_fields: 16 }"
    );
    let names: Vec<&str> = BuiltinRule::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names, ["email", "phone", "card", "jwt", "bearer", "access_key"]);
    for rule in BuiltinRule::ALL {
        assert_eq!(rule.replacement(), format!("[REDACTED:{rule}]"));
    }
    assert!(matches!(Redactor::default().redact(""), Cow::Borrowed("")));
}

#[test]
fn pre_check() {
    let check =
        |text: &str, rules: u8| assert_eq!(rules::candidates(text.as_bytes()).rules, rules, "{text:?}");
    check("GET /api/v1/workflows/42/runs returned 200 in 35 ms", 0);
    check("eyJ a@b 4111 1111 1111 1111 Bearer AKIA", rules::ALL);
    check("at 2026-11-30 from +1 (415) 555-2671", rules::PHONE);
    check(
        "basic BASIC authoriZation ghp_ github_pat_ xoxb sk- glpat- npm_ -----BEGIN",
        rules::BEARER | rules::ACCESS_KEY,
    );
    // The phone pattern runs only where the long digit clusters are, including a leading `+`.
    let clusters = |text: &str| -> Vec<String> {
        let found = rules::candidates(text.as_bytes());
        found
            .clusters()
            .iter()
            .map(|c| format!("{}{}", &text[c.start..c.end], if c.card { "*" } else { "" }))
            .collect()
    };
    assert_eq!(clusters("at 12:00 call +1 415-555-2671 today"), ["+1 415-555-2671"]);
    assert_eq!(
        clusters("2026-11-30 (415) 555-2671 4111 1111 1111 1111"),
        ["2026-11-30 (415) 555-2671 4111 1111 1111 1111*"]
    );
    assert_eq!(
        clusters("2026-11-30, (415) 555-2671, 4111 1111 1111 1111"),
        ["2026-11-30", "(415) 555-2671", "4111 1111 1111 1111*"]
    );
    // Past four clusters, the rest merge into the last.
    assert_eq!(
        clusters("1234-5678 a 1234-5678 b 1234-5678 c 1234-5678 d 1234-5678"),
        ["1234-5678", "1234-5678", "1234-5678", "1234-5678 d 1234-5678"]
    );
}

/// Characters that exercise every branch of the pre-check and the matchers.
const DENSE: &[char] = &[
    '0', '1', '4', '5', '9', ' ', '-', '.', '(', ')', '+', ':', '@', 'e', 'y', 'J', 'A', 'K', 'I', 'S', 'z',
    'a', 'b', 'B', 'r', 'i', 'c', 's', 'k', '_', 'x', 'o', 'g', 'h', 'p', '=', '"', '\n', 'é', '٣',
];

fn dense_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(DENSE), 0..120).prop_map(|chars| chars.into_iter().collect())
}

/// Pieces of secrets and near-misses, so that random concatenations reach deep into every matcher.
const FRAGMENTS: &[&str] = &[
    "eyJ",
    "eyJhbGci",
    ".",
    "a@b",
    ".io",
    "@x.",
    "+1 ",
    "+44 (0)",
    "(415) ",
    "415-",
    "555-2671",
    "4111 ",
    "1111",
    "4111111111111111",
    "0.",
    ":",
    "-",
    " ",
    "Bearer ",
    "basic ",
    "Authorization: ",
    "authorization=\"",
    "AKIA",
    "IOSFODNN7EXAMPLE",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "AIza",
    "sk_live_",
    "sk-",
    "glpat-",
    "npm_",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "abcdefghij0123456789",
    "x",
    "é",
];

fn fragment_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
            prop::collection::vec(prop::sample::select(DENSE), 1..6).prop_map(|c| c.into_iter().collect()),
            card_number(),
            email_address(),
            jwt_token(),
            phone_number(),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn random_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), dense_text(), fragment_text()]
}

/// A Luhn-valid card number of 13 to 19 digits starting with a network's digit (2 to 6), contiguous or in
/// groups of four.
fn card_number() -> impl Strategy<Value = String> {
    (2u8..7, prop::collection::vec(0u8..10, 11..18), prop::sample::select(&["", " ", "-"][..])).prop_map(
        |(network, digits, separator)| {
            let body: String = std::iter::once(network).chain(digits).map(|d| char::from(b'0' + d)).collect();
            let number = with_check_digit(&body);
            let groups: Vec<&str> =
                number.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect();
            groups.join(separator)
        },
    )
}

fn word(chars: &'static str, len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    let chars: Vec<char> = chars.chars().collect();
    prop::collection::vec(prop::sample::select(chars), len).prop_map(|c| c.into_iter().collect())
}

fn email_address() -> impl Strategy<Value = String> {
    const LOCAL: &str = "abcxyzABC0123456789._+-";
    const LABEL: &str = "abcdefghijklmnopqrstuvwxyz0123456789-";
    (word(LOCAL, 1..20), word(LABEL, 1..15), word("abcdefghijklmnopqrstuvwxyz", 2..6))
        .prop_map(|(local, domain, tld)| format!("{local}@{domain}.{tld}"))
}

fn phone_number() -> impl Strategy<Value = String> {
    let digits = |len: std::ops::Range<usize>| word("0123456789", len);
    let international = (digits(1..4), digits(7..13), prop::sample::select(&[" ", "-", "."][..])).prop_map(
        |(country, national, separator)| {
            let groups: Vec<&str> =
                national.as_bytes().chunks(3).map(|c| std::str::from_utf8(c).unwrap()).collect();
            format!("+{country} {}", groups.join(separator))
        },
    );
    let national =
        (digits(3..4), digits(3..4), digits(4..5), 0..3usize).prop_map(|(a, b, c, form)| match form {
            0 => format!("({a}) {b}-{c}"),
            1 => format!("{a}-{b}-{c}"),
            _ => format!("{a}.{b}.{c}"),
        });
    prop_oneof![international, national]
}

fn jwt_token() -> impl Strategy<Value = String> {
    const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (word(B64URL, 1..40), word(B64URL, 1..60), word(B64URL, 0..50))
        .prop_map(|(header, payload, signature)| format!("eyJ{header}.{payload}.{signature}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn never_panics_and_gate_is_a_superset(text in random_text()) {
        let redactor = Redactor::default();
        let redacted = redactor.redact(&text);
        // Running every matcher, without the byte pre-check, must give the same result.
        prop_assert_eq!(&redacted, &redactor.apply(&text, rules::Candidates::all(&text)));
        if let Cow::Borrowed(same) = redacted {
            prop_assert_eq!(same, text.as_str());
        }
        let _ = redactor.redact_field(&text, &text);
    }

    #[test]
    fn embedded_secrets_are_masked(
        prefix in random_text(),
        suffix in random_text(),
        secret in prop_oneof![card_number(), email_address(), jwt_token(), phone_number()],
    ) {
        let text = format!("{prefix} {secret} {suffix}");
        let redacted = Redactor::default().redact(&text);
        prop_assert!(!redacted.contains(&secret), "{:?} -> {:?}", text, redacted);
    }
}
