//! The built-in detectors.
//!
//! [`candidates`] is one pass over the bytes that answers "which rules could possibly match?". It is a
//! superset test: every rule whose matcher can find something in the text has its bit set (a property
//! test checks this against the ungated matchers). Only the rules it names run their regexes, so a clean
//! message costs one table lookup per byte and no allocation.

use std::sync::LazyLock;

use regex::Regex;

use super::{BuiltinRule, Span};

/// Bit of [`BuiltinRule::Email`] in a rule mask.
pub(super) const EMAIL: u8 = BuiltinRule::Email.bit();
/// Bit of [`BuiltinRule::Phone`] in a rule mask.
pub(super) const PHONE: u8 = BuiltinRule::Phone.bit();
/// Bit of [`BuiltinRule::CardNumber`] in a rule mask.
pub(super) const CARD: u8 = BuiltinRule::CardNumber.bit();
/// Bit of [`BuiltinRule::Jwt`] in a rule mask.
pub(super) const JWT: u8 = BuiltinRule::Jwt.bit();
/// Bit of [`BuiltinRule::BearerToken`] in a rule mask.
pub(super) const BEARER: u8 = BuiltinRule::BearerToken.bit();
/// Bit of [`BuiltinRule::AccessKey`] in a rule mask.
pub(super) const ACCESS_KEY: u8 = BuiltinRule::AccessKey.bit();
/// Every built-in rule.
pub(super) const ALL: u8 = EMAIL | PHONE | CARD | JWT | BEARER | ACCESS_KEY;

/// The fewest digits a phone number can have (trunk forms such as `01 234 567`, and short E.164 numbers).
const PHONE_MIN_DIGITS: usize = 8;
/// The most digits an E.164 number can have.
const PHONE_MAX_DIGITS: usize = 15;
/// Payment card numbers (PANs) have 13 to 19 digits.
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

// The patterns use `[0-9]` rather than `\d`, which in Unicode mode also matches other scripts' digits that
// the byte pre-check does not look for.

/// `local@domain.tld`; the domain needs a dot and a top-level label of two or more letters.
const EMAIL_PATTERN: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}";

/// International numbers (`+` and 8 to 15 digits in groups) and the common national forms with separators.
/// Digit counts and the surroundings are checked in code ([`find_phones`]).
const PHONE_PATTERN: &str = concat!(
    // +1 415-555-2671, +44 20 7946 0958, +44 (0)20 7946 0958, +14155552671
    r"\+[0-9]{1,3}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,5}){1,6}",
    // (415) 555-2671, 1 (415) 555-2671, (020) 7946 0958
    r"|(?:1 )?\([0-9]{2,4}\) ?[0-9]{3,4}[ .-][0-9]{4}",
    // 415-555-2671, 1-415-555-2671, 415.555.2671, 415 555 2671 (one separator throughout)
    r"|(?:1-)?[0-9]{3}-[0-9]{3}-[0-9]{4}|(?:1\.)?[0-9]{3}\.[0-9]{3}\.[0-9]{4}|(?:1 )?[0-9]{3} [0-9]{3} [0-9]{4}",
    // Trunk-prefixed national numbers: 020 7946 0958, 030-1234-5678
    r"|0[0-9]{1,4}[ -][0-9]{3,4}[ -][0-9]{3,4}",
);

/// A JWS compact serialisation: base64url header starting `eyJ` (`{"`), payload and an optional signature.
const JWT_PATTERN: &str = r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*";

/// Two alternatives: an `Authorization` header or key with its value, whose credential is always masked,
/// and a free-standing `Bearer`/`Basic` credential, which is checked in code ([`find_bearer`]).
const BEARER_PATTERN: &str = concat!(
    r#"(?i-u:(?:proxy[-_])?authorization)(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?"#,
    r"(?:(?i-u:[a-z][a-z0-9_-]*)[ \t]+)?",
    r#"(?P<header>[^\s"',;\\]+)"#,
    r"|(?i-u:bearer|basic)[ \t]+(?P<scheme>[A-Za-z0-9._~+/-]+=*)",
);

/// Access keys with a recognisable prefix, and PEM private key blocks.
const ACCESS_KEY_PATTERN: &str = concat!(
    // AWS access key ids (long-term and temporary).
    r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
    // GitHub personal, OAuth, user-to-server, server-to-server and refresh tokens; fine-grained PATs.
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}",
    // GitLab personal access tokens.
    r"|glpat-[A-Za-z0-9_-]{20,}",
    // Slack bot, user, app, refresh and workspace tokens.
    r"|xox[baprs]-[A-Za-z0-9-]{10,}",
    // Google API keys.
    r"|AIza[A-Za-z0-9_-]{35}",
    // Stripe secret and restricted keys.
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}",
    // npm tokens.
    r"|npm_[A-Za-z0-9]{36}",
    // OpenAI/Anthropic-style `sk-...` keys.
    r"|sk-[A-Za-z0-9_-]{20,}",
    // PEM private keys, up to the END line or, when truncated, the end of the text.
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----(?s:.)*?(?:-----END[A-Z ]*PRIVATE KEY-----|\z)",
);

/// The compiled built-in patterns, shared by every [`Redactor`](super::Redactor).
pub(super) struct Patterns {
    email: Regex,
    phone: Regex,
    jwt: Regex,
    bearer: Regex,
    access_key: Regex,
}

/// Compiled on first use; `Redactor::build` forces it so that the first log line does not pay for it.
pub(super) static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| Patterns {
    email: compile(EMAIL_PATTERN),
    phone: compile(PHONE_PATTERN),
    jwt: compile(JWT_PATTERN),
    bearer: compile(BEARER_PATTERN),
    access_key: compile(ACCESS_KEY_PATTERN),
});

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in redaction patterns are valid (the unit tests compile every one)")
}

// === Byte pre-check ===

/// Bytes that need a closer look in [`candidates`]; every other byte is skipped with one lookup.
static TRIGGER: [bool; 256] = {
    let mut table = [false; 256];
    let interesting = b"0123456789@JbBzZA_x-";
    let mut i = 0;
    while i < interesting.len() {
        table[interesting[i] as usize] = true;
        i += 1;
    }
    table
};

/// Characters that may sit between the digits of one phone or card number (at most two in a row).
fn is_digit_joiner(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')')
}

fn starts_with_ignore_case(haystack: &[u8], prefix: &[u8]) -> bool {
    haystack.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

fn ends_with(haystack: &[u8], suffix: &[u8]) -> bool {
    haystack.ends_with(suffix)
}

/// The most digit clusters that [`Candidates`] tracks one by one; further ones merge into the last.
const MAX_CLUSTERS: usize = 4;

/// What the pre-check found: the rules that could match, and where the digit-based ones could.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidates {
    /// A mask of rules; a superset of the rules whose matchers find something.
    pub(super) rules: u8,
    /// The digit clusters long enough for a phone number, each with the `+` or `(` just before it, and
    /// whether it is long enough for a card number. The phone and card matchers look at these ranges
    /// only, which spares them the rest of a message that has a timestamp or a UUID in it.
    clusters: [Cluster; MAX_CLUSTERS],
    cluster_count: usize,
}

/// A byte range of the text that may hold phone or card numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cluster {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Whether it has enough digits for a card number.
    pub(super) card: bool,
}

impl Candidates {
    /// No rule.
    pub(super) const NONE: Candidates = Candidates {
        rules: 0,
        clusters: [Cluster { start: 0, end: 0, card: false }; MAX_CLUSTERS],
        cluster_count: 0,
    };

    /// Every rule, with the digit rules looking at the whole text: what the pre-check must be equivalent
    /// to, for the tests.
    #[cfg(test)]
    pub(super) fn all(text: &str) -> Self {
        let mut all = Candidates { rules: ALL, ..Candidates::NONE };
        all.clusters[0] = Cluster { start: 0, end: text.len(), card: true };
        all.cluster_count = 1;
        all
    }

    pub(super) fn clusters(&self) -> &[Cluster] {
        &self.clusters[..self.cluster_count]
    }

    /// Records that the cluster starting at `start` has grown to end at `end`.
    fn grow_cluster(&mut self, start: usize, end: usize, card: bool) {
        match self.clusters[..self.cluster_count].last_mut() {
            // The same cluster, or the merged tail once there are too many to track.
            Some(last) if last.start == start || self.cluster_count == MAX_CLUSTERS => {
                last.end = end;
                last.card |= card;
            }
            _ => {
                self.clusters[self.cluster_count] = Cluster { start, end, card };
                self.cluster_count += 1;
            }
        }
    }
}

/// The rules that could match `bytes`:
///
/// - email: an `@`;
/// - phone: a cluster of at least 8 digits, joined by at most two of ` -.()` at a time;
/// - card: the same with at least 13 digits;
/// - JWT: `eyJ`;
/// - bearer: `bearer` or `basic` (any case), or `authoriz` (any case);
/// - access key: one of the literal prefixes of [`ACCESS_KEY_PATTERN`].
pub(super) fn candidates(bytes: &[u8]) -> Candidates {
    // The mask lives in a local of its own so that it stays in a register through the loop.
    let mut rules = 0u8;
    let mut found = Candidates::NONE;
    // Digits in the current cluster, where it starts and the index of its last digit.
    let mut cluster = 0usize;
    let mut cluster_start = 0usize;
    let mut last_digit: Option<usize> = None;

    for (i, &b) in bytes.iter().enumerate() {
        if !TRIGGER[usize::from(b)] {
            continue;
        }
        let rule = match b {
            b'0'..=b'9' => {
                let joined = last_digit.is_some_and(|last| {
                    i - last <= 3 && bytes[last + 1..i].iter().all(|&c| is_digit_joiner(c))
                });
                if joined {
                    cluster += 1;
                } else {
                    cluster = 1;
                    // A phone number may start with the `+` or `(` just before its first digit.
                    let lead = i > 0 && matches!(bytes[i - 1], b'+' | b'(');
                    cluster_start = if lead { i - 1 } else { i };
                }
                last_digit = Some(i);
                if cluster < PHONE_MIN_DIGITS {
                    continue;
                }
                let card = cluster >= *CARD_DIGITS.start();
                found.grow_cluster(cluster_start, i + 1, card);
                if card { PHONE | CARD } else { PHONE }
            }
            b'@' => EMAIL,
            b'J' if ends_with(&bytes[..i], b"ey") => JWT,
            b'b' | b'B'
                if starts_with_ignore_case(&bytes[i + 1..], b"earer")
                    || starts_with_ignore_case(&bytes[i + 1..], b"asic") =>
            {
                BEARER
            }
            b'z' | b'Z' if i >= 7 && bytes[i - 7..i].eq_ignore_ascii_case(b"authori") => BEARER,
            b'A' if matches!(bytes.get(i + 1..i + 4), Some(b"KIA" | b"SIA" | b"BIA" | b"CCA" | b"Iza")) => {
                ACCESS_KEY
            }
            b'_' if [&b"ghp"[..], b"gho", b"ghu", b"ghs", b"ghr", b"github_pat", b"npm", b"sk", b"rk"]
                .iter()
                .any(|prefix| ends_with(&bytes[..i], prefix)) =>
            {
                ACCESS_KEY
            }
            b'x' if bytes.get(i + 1..i + 3) == Some(b"ox") => ACCESS_KEY,
            b'-' if ends_with(&bytes[..i], b"sk")
                || ends_with(&bytes[..i], b"glpat")
                || bytes[i + 1..].starts_with(b"----BEGIN") =>
            {
                ACCESS_KEY
            }
            _ => continue,
        };
        rules |= rule;
    }
    found.rules = rules;
    found
}

// === Matchers ===

/// Appends the spans of every rule that `candidates` names to `spans`.
pub(super) fn find_all(text: &str, candidates: Candidates, spans: &mut Vec<Span>) {
    let patterns = &*PATTERNS;
    let rules = candidates.rules;
    if rules & BEARER != 0 {
        find_bearer(&patterns.bearer, text, spans);
    }
    if rules & JWT != 0 {
        for m in patterns.jwt.find_iter(text) {
            spans.push(Span::builtin(m.start(), m.end(), BuiltinRule::Jwt));
        }
    }
    if rules & ACCESS_KEY != 0 {
        find_access_keys(&patterns.access_key, text, spans);
    }
    if rules & CARD != 0 {
        for cluster in candidates.clusters().iter().filter(|c| c.card) {
            find_cards(text.as_bytes(), (cluster.start, cluster.end), spans);
        }
    }
    if rules & EMAIL != 0 {
        for m in patterns.email.find_iter(text) {
            spans.push(Span::builtin(m.start(), m.end(), BuiltinRule::Email));
        }
    }
    if rules & PHONE != 0 {
        for cluster in candidates.clusters() {
            find_phones(&patterns.phone, text, (cluster.start, cluster.end), spans);
        }
    }
}

/// Whether the byte before `start` is a letter or digit, i.e. `start` is inside a word.
fn word_before(bytes: &[u8], start: usize) -> bool {
    start.checked_sub(1).is_some_and(|i| bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
}

/// Whether a number starting at `start` stands on its own: it is not glued to a letter or digit, and is
/// not the tail of a decimal, time, version or signed number (`0.4111...`, `12:34`, `1-2`, `1+2`).
fn number_starts_alone(bytes: &[u8], start: usize) -> bool {
    let Some(prev) = start.checked_sub(1).map(|i| bytes[i]) else { return true };
    if prev.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(prev, b'.' | b':' | b'-' | b'+') {
        return !(start >= 2 && bytes[start - 2].is_ascii_digit());
    }
    true
}

/// The mirror of [`number_starts_alone`] for the byte at `end`.
fn number_ends_alone(bytes: &[u8], end: usize) -> bool {
    let Some(&next) = bytes.get(end) else { return true };
    if next.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(next, b'.' | b':' | b'-' | b'+') {
        return !bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
    }
    true
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| b.is_ascii_digit()).count()
}

/// Finds phone numbers in `text[range]`, a digit cluster that [`candidates`] found; the checks around
/// each number look at the whole text.
fn find_phones(regex: &Regex, text: &str, range: (usize, usize), spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    // A cluster starts at a digit, `+` or `(` and ends after a digit, so it lies on character boundaries.
    let Some(haystack) = text.get(range.0..range.1) else { return };
    let mut at = 0;
    while let Some(m) = regex.find_at(haystack, at) {
        let (start, mut end) = (range.0 + m.start(), range.0 + m.end());
        let mut digits = count_digits(&bytes[start..end]);
        // The international form is greedy: `+1 415-555-2671 12345` and `+1 415 555 2671 5th` read on into
        // the next word. Drop trailing groups until the count fits E.164 and the number ends cleanly.
        while bytes[start] == b'+' && (digits > PHONE_MAX_DIGITS || !number_ends_alone(bytes, end)) {
            match bytes[start..end].iter().rposition(|b| matches!(b, b' ' | b'.' | b'-')) {
                Some(cut) if cut > 0 => {
                    end = start + cut;
                    digits = count_digits(&bytes[start..end]);
                }
                _ => break,
            }
        }
        if (PHONE_MIN_DIGITS..=PHONE_MAX_DIGITS).contains(&digits)
            && number_starts_alone(bytes, start)
            && number_ends_alone(bytes, end)
        {
            spans.push(Span::builtin(start, end, BuiltinRule::Phone));
            at = end - range.0;
        } else {
            // A rejected match may hide one that starts inside it (`x+1 415-555-2671`). Matches start with
            // an ASCII byte and are at most a few dozen bytes long, so retrying costs little.
            at = m.start() + 1;
        }
    }
}

/// Finds card numbers: runs of 13 to 19 digits, whole or in groups joined by single spaces or dashes,
/// that start with a payment network's digit and pass the Luhn check.
///
/// The scan splits the text into maximal digit sequences (groups joined by one ` ` or `-`) and looks for
/// the longest card-shaped run of whole groups in each, leftmost first. A card-shaped run is one group of
/// 13 to 19 digits, or several groups of which all but the last have 4 to 6 digits and the last 1 to 6
/// (4-4-4-4, 4-6-5, 4-4-4-4-3, ...). That shape rule keeps UUID-like `12345678-1234-...` apart. A run that
/// touches the ends of its sequence must also stand alone (see [`number_starts_alone`]).
fn find_cards(bytes: &[u8], range: (usize, usize), spans: &mut Vec<Span>) {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = range.0;
    // A digit sequence lies inside one cluster, so it never runs past the end of the range.
    while i < range.1 {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        groups.clear();
        loop {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((start, i));
            let joined =
                matches!(bytes.get(i), Some(b' ' | b'-')) && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !joined {
                break;
            }
            i += 1;
        }
        if groups.iter().map(|(s, e)| e - s).sum::<usize>() >= *CARD_DIGITS.start() {
            find_cards_in_sequence(bytes, &groups, spans);
        }
    }
}

fn find_cards_in_sequence(bytes: &[u8], groups: &[(usize, usize)], spans: &mut Vec<Span>) {
    let len = |g: usize| groups[g].1 - groups[g].0;
    let last = groups.len() - 1;
    let mut first = 0;
    while first <= last {
        if first == 0 && !number_starts_alone(bytes, groups[0].0) {
            first += 1;
            continue;
        }
        let mut best = None;
        let mut digits = 0;
        for end in first..=last {
            digits += len(end);
            if digits > *CARD_DIGITS.end() {
                break;
            }
            let shaped = end == first || (1..=6).contains(&len(end));
            let alone = end != last || number_ends_alone(bytes, groups[last].1);
            if CARD_DIGITS.contains(&digits)
                && shaped
                && alone
                && network_prefix(bytes[groups[first].0])
                && luhn(bytes, &groups[first..=end])
            {
                best = Some(end);
            }
            // Only the last group of a multi-group card may be shorter than 4 or longer than 6.
            if !(4..=6).contains(&len(end)) {
                break;
            }
        }
        match best {
            Some(end) => {
                spans.push(Span::builtin(groups[first].0, groups[end].1, BuiltinRule::CardNumber));
                first = end + 1;
            }
            None => first += 1,
        }
    }
}

/// Whether a number's first digit is one the payment networks issue: 2 (Mastercard's 2-series), 3 (Amex,
/// Diners, JCB), 4 (Visa), 5 (Mastercard, Maestro), 6 (Discover, UnionPay, Maestro). Without it, one in ten
/// millisecond timestamps (13 digits starting with 1) would pass Luhn and be masked.
fn network_prefix(first_digit: u8) -> bool {
    (b'2'..=b'6').contains(&first_digit)
}

/// The Luhn (mod 10) check over the digits of `groups`.
fn luhn(bytes: &[u8], groups: &[(usize, usize)]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &(start, end) in groups.iter().rev() {
        for &b in bytes[start..end].iter().rev() {
            let mut d = u32::from(b - b'0');
            if double {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum += d;
            double = !double;
        }
    }
    sum % 10 == 0
}

fn find_bearer(regex: &Regex, text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(caps) = regex.captures_at(text, at) {
        let Some(whole) = caps.get(0) else { break };
        let credential = match (caps.name("header"), caps.name("scheme")) {
            (Some(credential), _) => Some(credential),
            // Outside a header, mask only what looks like a credential: `Bearer abc123` and
            // `Basic dXNlcjpwYXNz`, not `basic validation` or `bearer token`.
            (None, Some(credential)) => {
                let body = credential.as_str().trim_end_matches('=');
                let is_word = body.bytes().all(|b| b.is_ascii_lowercase());
                (!word_before(bytes, whole.start()) && !is_word).then_some(credential)
            }
            (None, None) => None,
        };
        match credential {
            Some(credential) => {
                spans.push(Span::builtin(credential.start(), credential.end(), BuiltinRule::BearerToken));
                at = whole.end();
            }
            // Matches start with an ASCII letter, so the next byte is a character boundary.
            None => at = whole.start() + 1,
        }
    }
}

fn find_access_keys(regex: &Regex, text: &str, spans: &mut Vec<Span>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while let Some(m) = regex.find_at(text, at) {
        // `task-...` is not an `sk-` key, nor `xAKIA...` an AWS key id.
        if !word_before(bytes, m.start()) || bytes[m.start()] == b'-' {
            spans.push(Span::builtin(m.start(), m.end(), BuiltinRule::AccessKey));
            at = m.end();
        } else {
            // Matches start with an ASCII byte, so the next byte is a character boundary.
            at = m.start() + 1;
        }
    }
}
