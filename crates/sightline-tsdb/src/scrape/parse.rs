//! A streaming parser for the Prometheus text format (0.0.4) and OpenMetrics text (1.0).
//!
//! Hand-written, as Prometheus's own is, because the scrape path needs two things a model-building parser
//! cannot give: it must not allocate per sample (a 10,000-series scrape is parsed every 15 s per target),
//! and it must hand out each sample's raw series text (`name{labels}`) so that the scrape cache can skip
//! label parsing for series it has seen before. `openmetrics-parser` builds a full object model of every
//! family, label set and value first; the scrape bench measures it side by side with this parser.
//!
//! The parser checks the syntax of every line (names, quoting, escapes, values, timestamps) and reports
//! the first error with its line number. Label sets are only materialised on request
//! ([`Parser::labels`]), for samples the cache does not know yet.

use std::fmt;

use crate::labels::{Label, METRIC_NAME};

/// The exposition format of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (`text/plain`).
    Prometheus,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header announces, or `None` for a type neither format uses. An absent
    /// or empty header means the Prometheus text format, as Prometheus reads it.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.is_empty() || media.eq_ignore_ascii_case("text/plain") {
            Some(Format::Prometheus)
        } else if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Some(Format::OpenMetrics)
        } else {
            None
        }
    }
}

/// The type declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricType {
    fn parse(word: &str, format: Format) -> Option<Self> {
        Some(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Prometheus) | ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            _ => return None,
        })
    }
}

/// A syntax error, with the 1-based line it is on and the start of that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
    pub excerpt: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)?;
        if !self.excerpt.is_empty() {
            write!(f, " in {:?}", self.excerpt)?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}

/// One entry of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text`, with the text still escaped.
    Help { name: &'a str, help: &'a str },
    /// `# TYPE name type`.
    Type { name: &'a str, kind: MetricType },
    /// `# UNIT name unit` (OpenMetrics).
    Unit { name: &'a str, unit: &'a str },
    /// A sample.
    Sample(SampleLine<'a>),
}

/// A sample line. Its labels are read with [`Parser::labels`] before the next call to [`Parser::next`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleLine<'a> {
    /// The series as written, `name{labels}`: equal texts are the same series, which is what the scrape
    /// cache keys on.
    pub series: &'a [u8],
    /// The value.
    pub value: f64,
    /// The timestamp in milliseconds, if the line has one.
    pub timestamp: Option<i64>,
}

/// Where a name or value is in the body, and whether it needs unescaping.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

#[derive(Debug, Clone, Copy)]
struct LabelSpan {
    name: Span,
    value: Span,
}

/// The streaming parser. See the [module docs](self).
#[derive(Debug)]
pub struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    line_start: usize,
    format: Format,
    /// The name and type of the last `# TYPE` line, to normalise `le` and `quantile` values as
    /// Prometheus 3 does.
    family: Option<(&'a str, MetricType)>,
    /// The current sample's metric name and labels.
    name: Span,
    spans: Vec<LabelSpan>,
}

// === impl Parser ===

impl<'a> Parser<'a> {
    /// A parser over `body`, which must be UTF-8 (both formats require it).
    pub fn new(body: &'a [u8], format: Format) -> Result<Self, ParseError> {
        let text = std::str::from_utf8(body).map_err(|e| {
            let line = body[..e.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            ParseError {
                line,
                message: "the body is not valid UTF-8; both exposition formats require it".into(),
                excerpt: String::new(),
            }
        })?;
        Ok(Self {
            text,
            pos: 0,
            line: 0,
            line_start: 0,
            format,
            family: None,
            name: Span::default(),
            spans: Vec::with_capacity(16),
        })
    }

    /// The 1-based number of the line last returned.
    pub fn line(&self) -> usize {
        self.line
    }

    /// An error about the current line.
    pub fn error(&self, message: impl Into<String>) -> ParseError {
        let rest = &self.text[self.line_start..];
        let line = rest.split('\n').next().unwrap_or("");
        let excerpt = match line.char_indices().nth(120) {
            Some((cut, _)) => format!("{}...", &line[..cut]),
            None => line.to_owned(),
        };
        ParseError { line: self.line, message: message.into(), excerpt }
    }

    /// The next entry, `Ok(None)` at the end. Comments and (in the text format) blank lines are skipped.
    #[allow(clippy::should_implement_trait)] // Entries borrow the body and errors stop the parse.
    pub fn next(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        let bytes = self.text.as_bytes();
        loop {
            if self.pos >= bytes.len() {
                if self.format == Format::OpenMetrics {
                    self.line += 1;
                    self.line_start = bytes.len();
                    return Err(
                        self.error("the body does not end with \"# EOF\", which OpenMetrics requires")
                    );
                }
                return Ok(None);
            }
            self.line += 1;
            self.line_start = self.pos;
            let start = self.pos;
            let newline = bytes[start..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| start + i);
            self.pos = newline + 1;
            // The text format tolerates CRLF line endings; OpenMetrics does not.
            let end = if self.format == Format::Prometheus && newline > start && bytes[newline - 1] == b'\r' {
                newline - 1
            } else {
                newline
            };
            let line = &self.text[start..end];
            if bytes[start] == b'#' {
                if self.format == Format::OpenMetrics && line == "# EOF" {
                    if newline + 1 < bytes.len() {
                        self.line += 1;
                        self.line_start = newline + 1;
                        return Err(self.error("content after \"# EOF\"; OpenMetrics ends the body there"));
                    }
                    self.pos = bytes.len();
                    return Ok(None);
                }
                if let Some(entry) = self.comment(line)? {
                    if let Entry::Type { name, kind } = entry {
                        self.family = Some((name, kind));
                    }
                    return Ok(Some(entry));
                }
            } else if line.trim_ascii().is_empty() {
                if self.format == Format::OpenMetrics {
                    return Err(self.error("empty line; OpenMetrics does not allow them"));
                }
            } else {
                let offset = match self.format {
                    Format::Prometheus => line.len() - line.trim_ascii_start().len(),
                    Format::OpenMetrics => 0,
                };
                return self.sample(start + offset, end).map(|s| Some(Entry::Sample(s)));
            }
        }
    }

    /// A `#` line: metadata, `# EOF` (returns `None` and is handled by the caller) or a comment.
    fn comment(&self, line: &'a str) -> Result<Option<Entry<'a>>, ParseError> {
        let rest = &line[1..];
        let (keyword, rest) = match self.format {
            Format::Prometheus => {
                let rest = rest.trim_ascii_start();
                let word_end = rest.find([' ', '\t']).unwrap_or(rest.len());
                (&rest[..word_end], &rest[word_end..])
            }
            Format::OpenMetrics => {
                let Some(rest) = rest.strip_prefix(' ') else {
                    return Err(self.error("expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\""));
                };
                let word_end = rest.find(' ').unwrap_or(rest.len());
                (&rest[..word_end], &rest[word_end..])
            }
        };
        let kind = match keyword {
            "HELP" | "TYPE" => keyword,
            "UNIT" if self.format == Format::OpenMetrics => keyword,
            _ if self.format == Format::Prometheus => return Ok(None),
            _ => {
                return Err(self.error(format!(
                    "unexpected \"# {keyword}\"; OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF"
                )));
            }
        };
        // One separator, then the metric name, then one separator and the rest.
        let rest = match self.format {
            Format::Prometheus => rest.trim_ascii_start(),
            Format::OpenMetrics => rest.strip_prefix(' ').unwrap_or(rest),
        };
        let name_end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !is_metric_name(name) {
            return Err(self.error(format!("invalid metric name {name:?} in # {kind}")));
        }
        let tail = &rest[name_end..];
        let tail = match self.format {
            Format::Prometheus => tail.trim_ascii(),
            Format::OpenMetrics => tail.strip_prefix(' ').unwrap_or(tail),
        };
        Ok(Some(match kind {
            "HELP" => Entry::Help { name, help: tail },
            "UNIT" => Entry::Unit { name, unit: tail },
            _ => {
                let Some(kind) = MetricType::parse(tail, self.format) else {
                    return Err(self.error(format!("unknown metric type {tail:?}")));
                };
                Entry::Type { name, kind }
            }
        }))
    }

    /// Parses a sample line in `text[start..end]`.
    fn sample(&mut self, start: usize, end: usize) -> Result<SampleLine<'a>, ParseError> {
        let b = self.text.as_bytes();
        let mut i = start;
        self.spans.clear();
        self.name = Span::default();
        // The metric name, unless it is quoted inside the braces.
        if b[i] != b'{' {
            if !is_name_start(b[i]) {
                return Err(self.error("expected a metric name"));
            }
            i += 1;
            while i < end && is_name_char(b[i]) {
                i += 1;
            }
            self.name = Span { start, end: i, escaped: false };
            // The text format allows blanks between the name and its labels.
            let j = skip_blanks(b, i, end);
            if self.format == Format::Prometheus && j < end && b[j] == b'{' {
                i = j;
            }
        }
        if i < end && b[i] == b'{' {
            i = self.label_block(i + 1, end)?;
        }
        if self.name.end == 0 {
            return Err(self.error("the series has no metric name"));
        }
        let series_end = i;
        // The value, after at least one separator.
        if i >= end || !(b[i] == b' ' || b[i] == b'\t') {
            return Err(self.error(if i >= end {
                "expected a value after the series".to_owned()
            } else {
                format!(
                    "unexpected character {:?} after the series",
                    self.text[i..].chars().next().unwrap_or(' ')
                )
            }));
        }
        i = skip_blanks(b, i, end);
        let value_start = i;
        while i < end && b[i] != b' ' && b[i] != b'\t' {
            i += 1;
        }
        let token = &self.text[value_start..i];
        let Some(value) = parse_float(token) else {
            return Err(self.error(format!("invalid value {token:?}")));
        };
        i = skip_blanks(b, i, end);
        let mut timestamp = None;
        if i < end && b[i] != b'#' {
            let ts_start = i;
            while i < end && b[i] != b' ' && b[i] != b'\t' {
                i += 1;
            }
            let token = &self.text[ts_start..i];
            timestamp = Some(match self.format {
                Format::Prometheus => token.parse::<i64>().map_err(|_| {
                    self.error(format!("invalid timestamp {token:?}; expected integer milliseconds"))
                })?,
                Format::OpenMetrics => match parse_float(token) {
                    Some(seconds) if seconds.is_finite() && (seconds * 1000.0).abs() < 9.2e18 => {
                        (seconds * 1000.0).round() as i64
                    }
                    _ => return Err(self.error(format!("invalid timestamp {token:?}; expected seconds"))),
                },
            });
            i = skip_blanks(b, i, end);
        }
        if i < end {
            // An OpenMetrics exemplar is checked no further, and not stored.
            if !(self.format == Format::OpenMetrics && self.text[i..end].starts_with("# {")) {
                return Err(self.error(format!("unexpected {:?} after the value", &self.text[i..end])));
            }
        }
        Ok(SampleLine { series: &b[start..series_end], value, timestamp })
    }

    /// Parses `name="value", ...}` from `i` (just after `{`); returns the index after `}`.
    fn label_block(&mut self, mut i: usize, end: usize) -> Result<usize, ParseError> {
        let b = self.text.as_bytes();
        loop {
            i = skip_blanks(b, i, end);
            if i >= end {
                return Err(self.error("unterminated label set; expected '}'"));
            }
            if b[i] == b'}' {
                return Ok(i + 1);
            }
            // A label name, bare or quoted (a quoted string not followed by '=' is the metric name).
            let name = if b[i] == b'"' {
                let span = self.quoted(i + 1, end)?;
                i = skip_blanks(b, span.end + 1, end);
                if i < end && (b[i] == b',' || b[i] == b'}') {
                    if self.name.end != 0 {
                        return Err(self.error("the series has two metric names"));
                    }
                    if span.start == span.end {
                        return Err(self.error("empty quoted metric name"));
                    }
                    self.name = span;
                    if b[i] == b',' {
                        i += 1;
                    }
                    continue;
                }
                if span.start == span.end {
                    return Err(self.error("empty quoted label name"));
                }
                span
            } else {
                let start = i;
                if !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
                    return Err(self.error("expected a label name"));
                }
                i += 1;
                while i < end && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let span = Span { start, end: i, escaped: false };
                i = skip_blanks(b, i, end);
                span
            };
            if i >= end || b[i] != b'=' {
                return Err(self
                    .error(format!("expected '=' after label name {:?}", &self.text[name.start..name.end])));
            }
            i = skip_blanks(b, i + 1, end);
            if i >= end || b[i] != b'"' {
                return Err(self.error(format!(
                    "expected a quoted value for label {:?}",
                    &self.text[name.start..name.end]
                )));
            }
            let value = self.quoted(i + 1, end)?;
            self.spans.push(LabelSpan { name, value });
            i = skip_blanks(b, value.end + 1, end);
            if i < end && b[i] == b',' {
                i += 1;
            } else if i >= end || b[i] != b'}' {
                return Err(self.error("expected ',' or '}' after a label value"));
            }
        }
    }

    /// Scans a quoted string whose contents start at `i`; the span ends at the closing quote.
    fn quoted(&self, start: usize, end: usize) -> Result<Span, ParseError> {
        let b = self.text.as_bytes();
        let mut i = start;
        let mut escaped = false;
        while i < end {
            match b[i] {
                b'"' => return Ok(Span { start, end: i, escaped }),
                b'\\' => {
                    match b.get(i + 1) {
                        Some(b'\\' | b'"' | b'n') if i + 1 < end => {}
                        _ => {
                            return Err(self.error(
                                "invalid escape in a quoted string; only \\\\, \\\" and \\n are allowed",
                            ));
                        }
                    }
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        Err(self.error("unterminated quoted string"))
    }

    /// The current sample's labels, `__name__` first, unescaped. `le` (histograms) and `quantile`
    /// (summaries) values are normalised to Prometheus 3's float form (`1` becomes `1.0`), so a series
    /// is the same whichever format the target served. Fails on a repeated label name.
    pub fn labels(&self, out: &mut Vec<Label>) -> Result<(), ParseError> {
        out.push(Label::new(METRIC_NAME, self.unescape(self.name)));
        let name = &self.text[self.name.start..self.name.end];
        // Only a histogram's buckets and a summary's quantiles of the family just typed.
        let normalise = match self.family {
            Some((family, kind)) => match (kind, name.strip_prefix(family)) {
                (MetricType::Histogram | MetricType::GaugeHistogram, Some("_bucket")) => Some("le"),
                (MetricType::Summary, Some("")) => Some("quantile"),
                _ => None,
            },
            None => None,
        };
        let first = out.len();
        for span in &self.spans {
            let label_name = self.unescape(span.name);
            let mut value = self.unescape(span.value);
            if normalise == Some(label_name.as_str())
                && let Some(v) = parse_float(&value)
            {
                value = format_float(v);
            }
            out.push(Label::new(label_name, value));
        }
        if self.spans.len() > 1 {
            let mut names: Vec<&str> = out[first..].iter().map(|l| l.name.as_str()).collect();
            names.sort_unstable();
            if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
                return Err(self.error(format!("label {:?} appears twice", pair[0])));
            }
        }
        if out[first..].iter().any(|l| l.name == METRIC_NAME) {
            return Err(self.error("the metric name is given twice"));
        }
        Ok(())
    }

    fn unescape(&self, span: Span) -> String {
        let raw = &self.text[span.start..span.end];
        if !span.escaped {
            return raw.to_owned();
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => {}
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}

fn skip_blanks(b: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty() && is_name_start(b[0]) && b[1..].iter().all(|c| is_name_char(*c))
}

/// A sample value: a decimal or exponent float, `NaN`, `+Inf`, `-Inf` (any case, as Go reads them).
fn parse_float(token: &str) -> Option<f64> {
    if token.is_empty() {
        return None;
    }
    // Rust also reads "infinity" and "nan" in any case, as Go's ParseFloat does; it rejects hex floats and
    // underscores, which no exposition library writes.
    token.parse::<f64>().ok()
}

/// Formats a float as Prometheus 3 normalises `le` and `quantile` values: Go's shortest `%g` form, with
/// `.0` added to whole numbers (`1.0`, `0.25`, `1e+06`, `+Inf`).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let exp_form = format!("{v:e}");
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((&exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    // Go's shortest `%g` switches to the exponent form below 1e-4 and from 1e6 (its "precision 6" rule).
    if v != 0.0 && !(-4..6).contains(&exp) {
        return format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let plain = v.to_string();
    if plain.contains('.') { plain } else { format!("{plain}.0") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(body: &str, format: Format) -> Result<Vec<(String, f64, Option<i64>)>, ParseError> {
        let mut p = Parser::new(body.as_bytes(), format)?;
        let mut out = Vec::new();
        while let Some(entry) = p.next()? {
            if let Entry::Sample(s) = entry {
                let mut labels = Vec::new();
                p.labels(&mut labels)?;
                let labels = crate::labels::Labels::new(labels);
                out.push((labels.to_string(), s.value, s.timestamp));
            }
        }
        Ok(out)
    }

    #[test]
    fn text_format() {
        let body = "# HELP http_requests_total The total.\n# TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{ method = \"get\" , code=\"400\", } 3\n\
                    # a comment\n\n\
                    msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n\
                    metric_without_labels 12.47\n\
                    something_weird{problem=\"division by zero\"} +Inf -3982045\n\
                    nan_value NaN\n\
                    # TYPE h histogram\n\
                    h_bucket{le=\"1\"} 2\n\
                    h_bucket{le=\"+Inf\"} 3\n\
                    hx{le=\"1\"} 3\n\
                    {\"dotted.name\", \"label.x\"=\"y\"} 1\n";
        let got = all(body, Format::Prometheus).expect("parses");
        assert_eq!(
            got[0],
            (r#"http_requests_total{code="200", method="post"}"#.into(), 1027.0, Some(1395066363000))
        );
        assert_eq!(got[1].0, r#"http_requests_total{code="400", method="get"}"#);
        assert_eq!(
            got[2].0,
            r#"msdos_file_access_time_seconds{error="Cannot find file:\n\"FILE.TXT\"", path="C:\\DIR\\FILE.TXT"}"#
        );
        assert_eq!(got[3], ("metric_without_labels".into(), 12.47, None));
        assert_eq!(got[4].1, f64::INFINITY);
        assert_eq!(got[4].2, Some(-3982045));
        assert!(got[5].1.is_nan());
        assert_eq!(got[6].0, r#"h_bucket{le="1.0"}"#);
        assert_eq!(got[7].0, r#"h_bucket{le="+Inf"}"#);
        assert_eq!(got[8].0, r#"hx{le="1"}"#, "not a bucket of h: left alone");
        assert_eq!(got[9].0, r#"dotted.name{label.x="y"}"#);
    }

    #[test]
    fn openmetrics_format() {
        let body = "# TYPE foo counter\n# UNIT foo seconds\n# HELP foo Help.\n\
                    foo_total{a=\"b\"} 17.0 1520879607.789 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789\n\
                    foo_created{a=\"b\"} 1520430000.123\n\
                    # TYPE s summary\n\
                    s{quantile=\"0.5\"} 1\n\
                    # EOF\n";
        let got = all(body, Format::OpenMetrics).expect("parses");
        assert_eq!(got[0], (r#"foo_total{a="b"}"#.into(), 17.0, Some(1520879607789)));
        assert_eq!(got[1].0, r#"foo_created{a="b"}"#);
        assert_eq!(got[2].0, r#"s{quantile="0.5"}"#);
        assert!(all("# EOF", Format::OpenMetrics).expect("no newline after EOF is fine").is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, Format, usize, &str)] = &[
            ("ok 1\nbad{a=\"b\" 1\n", Format::Prometheus, 2, "expected ',' or '}'"),
            ("ok 1\n\n9bad 1\n", Format::Prometheus, 3, "expected a metric name"),
            ("x{a=b} 1\n", Format::Prometheus, 1, "quoted value"),
            ("x{a=\"\\t\"} 1\n", Format::Prometheus, 1, "invalid escape"),
            ("x 1 2 3\n", Format::Prometheus, 1, "unexpected"),
            ("x abc\n", Format::Prometheus, 1, "invalid value"),
            ("x 1 1.5\n", Format::Prometheus, 1, "invalid timestamp"),
            ("x{a=\"1\",a=\"2\"} 1\n", Format::Prometheus, 1, "appears twice"),
            ("x{a=\"1\n", Format::Prometheus, 1, "unterminated"),
            ("# TYPE x blah\n", Format::Prometheus, 1, "unknown metric type"),
            ("x\n", Format::Prometheus, 1, "expected a value"),
            ("<html>\n", Format::Prometheus, 1, "expected a metric name"),
            ("x 1\n", Format::OpenMetrics, 2, "does not end with \"# EOF\""),
            ("x 1\n# EOF\nx 2\n", Format::OpenMetrics, 3, "after \"# EOF\""),
            ("x 1\n\n# EOF\n", Format::OpenMetrics, 2, "empty line"),
            ("# random comment\n# EOF\n", Format::OpenMetrics, 1, "unexpected \"# random\""),
        ];
        for (body, format, line, needle) in cases {
            let e = all(body, *format).expect_err(body);
            assert_eq!(e.line, *line, "{body:?}: {e}");
            assert!(e.to_string().contains(needle), "{body:?}: {e}");
        }
        let e = all("ok 1\n\u{0}\u{ff}", Format::Prometheus).expect_err("binary");
        assert!(e.to_string().contains("expected a metric name"), "{e}");
        let e = Parser::new(b"ok 1\n\xff\xfe", Format::Prometheus).expect_err("not utf-8");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn floats_format_like_prometheus_3() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.25, "0.25"),
            (0.0, "0.0"),
            (100000.0, "100000.0"),
            (1e6, "1e+06"),
            (123456.0, "123456.0"),
            (2.5e-7, "2.5e-07"),
            (0.00001, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
        ] {
            assert_eq!(format_float(v), s, "{v}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(Format::from_content_type(""), Some(Format::Prometheus));
        assert_eq!(
            Format::from_content_type("text/plain; version=0.0.4; charset=utf-8"),
            Some(Format::Prometheus)
        );
        assert_eq!(
            Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Some(Format::OpenMetrics)
        );
        assert_eq!(Format::from_content_type("text/html"), None);
    }
}
