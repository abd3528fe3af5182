//! Alertmanager's label matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`, alone
//! or in comma-separated lists optionally wrapped in braces (`{a="b",c=~"d"}`), following the quoting rules
//! of Alertmanager 0.25's `labels.ParseMatchers`: values may be double-quoted with `\"`, `\\` and `\n`
//! escapes, or unquoted; regular expressions are anchored at both ends.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::LabelSet;

/// Why a matcher did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error(
        "bad matcher {input:?}: expected name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""
    )]
    Syntax { input: String },
    #[error(
        "bad matcher {input:?}: invalid label name {name:?} (use letters, digits, '_' and ':', not starting with a digit)"
    )]
    LabelName { input: String, name: String },
    #[error(
        "bad matcher {input:?}: unbalanced double quotes in the value; quote the whole value and escape inner quotes as \\\""
    )]
    Quote { input: String },
    #[error("bad matcher {input:?}: invalid regular expression: {reason}")]
    Regex { input: String, reason: String },
}

/// The four matcher operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchType {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regexp,
    #[serde(rename = "!~")]
    NotRegexp,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regexp => "=~",
            MatchType::NotRegexp => "!~",
        }
    }
}

/// One label matcher. A missing label matches as the empty string, as in Alertmanager.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchType,
    pub value: String,
    regex: Option<Regex>,
}

// === impl Matcher ===

impl Matcher {
    /// Builds a matcher, compiling the anchored regular expression for `=~` and `!~`.
    pub fn new(name: &str, op: MatchType, value: &str) -> Result<Self, MatcherError> {
        let input = format!("{name}{}{value:?}", op.as_str());
        if !valid_label_name(name) {
            return Err(MatcherError::LabelName { input, name: name.to_owned() });
        }
        let regex = match op {
            MatchType::Regexp | MatchType::NotRegexp => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| MatcherError::Regex { input, reason: e.to_string() })?,
            ),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Self { name: name.to_owned(), op, value: value.to_owned(), regex })
    }

    /// Parses one matcher such as `severity=~"critical|page"`.
    pub fn parse(input: &str) -> Result<Self, MatcherError> {
        let mut list = parse_matchers(input)?;
        if list.len() != 1 {
            return Err(MatcherError::Syntax { input: input.to_owned() });
        }
        Ok(list.remove(0))
    }

    /// Whether a value (the empty string for a missing label) matches.
    pub fn matches_value(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchType::Equal, _) => value == self.value,
            (MatchType::NotEqual, _) => value != self.value,
            (MatchType::Regexp, Some(re)) => re.is_match(value),
            (MatchType::NotRegexp, Some(re)) => !re.is_match(value),
            // Regex matchers always carry their compiled expression; `new` is the only constructor.
            (MatchType::Regexp | MatchType::NotRegexp, None) => false,
        }
    }

    /// Whether a label set matches.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

/// Prints the matcher the way Alertmanager does, with the value quoted and escaped.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), escape(&self.value))
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Matcher::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A conjunction of matchers: all must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

// === impl Matchers ===

impl Matchers {
    /// Parses a list such as `{a="b", c=~"d"}` or `a="b",c=~"d"`.
    pub fn parse(input: &str) -> Result<Self, MatcherError> {
        parse_matchers(input).map(Matchers)
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Label names as Prometheus allows them.
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Splits a matcher list at commas outside double quotes and parses each part.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let trimmed = input.trim();
    let inner = match (trimmed.strip_prefix('{'), trimmed.ends_with('}')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (Some(_), false) => return Err(MatcherError::Syntax { input: input.to_owned() }),
        (None, _) => trimmed,
    };
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                current.push(c);
            }
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            ',' if !in_quotes => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if in_quotes {
        return Err(MatcherError::Quote { input: input.to_owned() });
    }
    parts.push(current);
    // A trailing comma, as in `{a="b",}`, is allowed, as Alertmanager allows it.
    if parts.len() > 1 && parts.last().is_some_and(|p| p.trim().is_empty()) {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].trim().is_empty() {
        return if inner.len() == trimmed.len() {
            Err(MatcherError::Syntax { input: input.to_owned() })
        } else {
            // `{}` is an empty list.
            Ok(Vec::new())
        };
    }
    parts.iter().map(|p| parse_one(p.trim(), input)).collect()
}

fn parse_one(part: &str, input: &str) -> Result<Matcher, MatcherError> {
    let syntax = || MatcherError::Syntax { input: input.to_owned() };
    let name_end =
        part.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).ok_or_else(syntax)?;
    let name = &part[..name_end];
    let rest = part[name_end..].trim_start();
    let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
        (MatchType::Regexp, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (MatchType::NotRegexp, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (MatchType::NotEqual, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (MatchType::Equal, v)
    } else {
        return Err(syntax());
    };
    if name.is_empty() {
        return Err(syntax());
    }
    let value = value.trim();
    let value = if let Some(quoted) = value.strip_prefix('"') {
        let body = quoted.strip_suffix('"').ok_or_else(|| MatcherError::Quote { input: input.to_owned() })?;
        unescape(body).ok_or_else(|| MatcherError::Quote { input: input.to_owned() })?
    } else {
        if value.contains('"') {
            return Err(MatcherError::Quote { input: input.to_owned() });
        }
        value.to_owned()
    };
    Matcher::new(name, op, &value).map_err(|e| match e {
        MatcherError::Regex { reason, .. } => MatcherError::Regex { input: input.to_owned(), reason },
        MatcherError::LabelName { name, .. } => MatcherError::LabelName { input: input.to_owned(), name },
        other => other,
    })
}

/// Undoes `\"`, `\\` and `\n`; an unescaped quote inside means the value was badly quoted.
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                // Other escapes are kept as written, so regexes like `\d` survive quoting.
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn parses_lists_and_quoting() {
        let ms =
            Matchers::parse(r#"{alertname="Disk, full", severity=~"crit.*",team!="a\"b"}"#).expect("parses");
        assert_eq!(ms.0.len(), 3);
        assert_eq!(ms.0[0].value, "Disk, full");
        assert_eq!(ms.0[2].value, "a\"b");
        assert!(ms.matches(&labels(&[("alertname", "Disk, full"), ("severity", "critical")])));
        assert!(!ms.matches(&labels(&[("alertname", "Disk, full"), ("severity", "xcritical")])));
        let unquoted = Matcher::parse("foo=bar").expect("unquoted");
        assert_eq!(unquoted.value, "bar");
        assert_eq!(unquoted.to_string(), r#"foo="bar""#);
        assert!(Matcher::parse(r#"foo!~"b.*""#).expect("neg").matches(&labels(&[("foo", "a")])));
        assert!(Matcher::parse(r#"foo!="x""#).expect("ne").matches(&labels(&[])));
        assert_eq!(Matchers::parse("{}").expect("empty").0.len(), 0);
        assert_eq!(Matcher::parse(r#"re=~"\d+""#).expect("digits").value, r"\d+");
    }

    #[test]
    fn rejects_bad_matchers() {
        for bad in [r#"1foo="x""#, "{foo=\"x\"", "=x", "", r#"a="b" c="d""#] {
            assert!(Matchers::parse(bad).is_err(), "{bad} should not parse");
        }
        assert!(Matcher::parse(r#"foo=~"(""#).is_err());
        assert!(Matcher::parse("foo").is_err());
        assert!(Matcher::parse(r#"foo="bar"#).is_err());
        assert!(Matcher::parse(r#"foo=a"b"#).is_err());
    }
}
