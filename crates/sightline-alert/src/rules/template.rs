//! The subset of Go's `text/template` that Prometheus alert templates use, with Prometheus's functions.
//!
//! Hand-written rather than taken from crates.io: the one Go-template crate (`gtmpl`) has not been
//! released since 2021, formats numbers its own way rather than as Go's `fmt` does, and its error
//! messages carry no template name, while alert text must match what Prometheus renders byte for byte.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; variables
//! `$labels`, `$value`, `$externalLabels`, `$externalURL`, `$` and `.` (with `.Labels`, `.Value`, ...),
//! field access on maps (`$labels.instance`), `{{ $x := ... }}` and `{{ $x = ... }}`; pipelines
//! (`{{ $value | humanize }}`) and parenthesised sub-pipelines; `if`/`else if`/`else`/`end`,
//! `with`/`else`/`end` and `range` over maps (`{{ range $k, $v := $labels }}`); functions `printf`,
//! `print`, `humanize`, `humanize1024`, `humanizePercentage`, `humanizeDuration`, `humanizeTimestamp`,
//! `toUpper`, `toLower`, `title`, `stripPort`, `reReplaceAll`, `match`, `safeHtml`, `len`, `index`,
//! `eq`/`ne`/`lt`/`le`/`gt`/`ge`, `and`/`or`/`not`. The `query` family (`query`, `first`, `value`,
//! `label`, ...) needs a store: such templates parse, so that rule files written for Prometheus pass
//! `rules check`, and expanding them fails with a message saying so (the alert's text then shows
//! `<error expanding template: ...>`, as Prometheus shows expansion errors).

use std::collections::BTreeMap;
use std::fmt;

use super::gofmt::{format_e, format_f, format_g, go_quote};

/// A template error: where (template name, line:column) and what.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("template: {name}:{line}:{column}: {message}")]
pub struct TemplateError {
    pub name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A value in a template.
#[derive(Clone, Debug, PartialEq)]
pub enum TValue {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Map(BTreeMap<String, String>),
}

// === impl TValue ===

impl TValue {
    fn truthy(&self) -> bool {
        match self {
            TValue::Nil => false,
            TValue::Bool(b) => *b,
            TValue::Int(i) => *i != 0,
            TValue::Float(f) => *f != 0.0,
            TValue::Str(s) => !s.is_empty(),
            TValue::Map(m) => !m.is_empty(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            TValue::Nil => "nil",
            TValue::Bool(_) => "bool",
            TValue::Int(_) => "int",
            TValue::Float(_) => "float64",
            TValue::Str(_) => "string",
            TValue::Map(_) => "map[string]string",
        }
    }

    /// A number for the humanize functions, which (like Prometheus's `convertToFloat`) also take strings.
    fn to_float(&self) -> Result<f64, String> {
        match self {
            TValue::Float(f) => Ok(*f),
            TValue::Int(i) => Ok(*i as f64),
            TValue::Str(s) => {
                s.trim().parse().map_err(|e| format!("strconv.ParseFloat: parsing {}: {e}", go_quote(s)))
            }
            other => Err(format!("can't convert {} to float", other.type_name())),
        }
    }
}

/// As Go's `%v` prints values (`fmt.Sprint`).
impl fmt::Display for TValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TValue::Nil => f.write_str("<no value>"),
            TValue::Bool(b) => write!(f, "{b}"),
            TValue::Int(i) => write!(f, "{i}"),
            TValue::Float(v) => f.write_str(&format_g(*v, None)),
            TValue::Str(s) => f.write_str(s),
            TValue::Map(m) => {
                f.write_str("map[")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// What an alert template is expanded with.
#[derive(Clone, Debug, Default)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        key: Option<String>,
        value: Option<String>,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Clone, Debug)]
struct Pipeline {
    /// `$x := ...` declares, `$x = ...` assigns.
    decl: Option<(String, bool)>,
    cmds: Vec<Vec<Arg>>,
    pos: Pos,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pos {
    line: usize,
    column: usize,
}

#[derive(Clone, Debug)]
enum Arg {
    Func(String),
    Var(String, Vec<String>),
    Dot(Vec<String>),
    Lit(TValue),
    Sub(Pipeline),
}

const FUNCS: &[&str] = &[
    "printf",
    "print",
    "println",
    "humanize",
    "humanize1024",
    "humanizePercentage",
    "humanizeDuration",
    "humanizeTimestamp",
    "toUpper",
    "toLower",
    "title",
    "stripPort",
    "reReplaceAll",
    "match",
    "safeHtml",
    "len",
    "index",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "and",
    "or",
    "not",
    "html",
    "js",
    "urlquery",
];

/// Functions of Prometheus's template set that need a store or a running server.
const UNSUPPORTED: &[&str] = &[
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "sortByLabel",
    "args",
    "tmpl",
    "pathPrefix",
    "graphLink",
    "tableLink",
    "externalURL",
    "parseDuration",
];

// === impl Template ===

impl Template {
    /// Parses `text`; `name` is used in errors (Prometheus names alert templates `__alert_NAME`).
    pub fn parse(name: &str, text: &str) -> Result<Self, TemplateError> {
        let mut parser = Parser {
            name,
            text,
            pos: 0,
            vars: vec![
                "$".into(),
                "$labels".into(),
                "$value".into(),
                "$externalLabels".into(),
                "$externalURL".into(),
            ],
        };
        let (nodes, end) = parser.parse_list()?;
        if let Some((kw, pos)) = end {
            return Err(parser.error_at(pos, format!("unexpected {{{{{kw}}}}}")));
        }
        Ok(Self { name: name.to_owned(), nodes })
    }

    /// Whether the text has no actions at all (so expansion would return it unchanged).
    pub fn is_static(&self) -> bool {
        self.nodes.iter().all(|n| matches!(n, Node::Text(_)))
    }

    /// Expands the template with Prometheus's alert variables.
    pub fn expand(&self, data: &TemplateData) -> Result<String, TemplateError> {
        let dot = BTreeMap::from([
            ("Labels".to_owned(), TValue::Map(data.labels.clone())),
            ("ExternalLabels".to_owned(), TValue::Map(data.external_labels.clone())),
            ("ExternalURL".to_owned(), TValue::Str(data.external_url.clone())),
            ("Value".to_owned(), TValue::Float(data.value)),
        ]);
        let mut ev = Eval {
            name: &self.name,
            dot: Dot::Root(&dot),
            vars: vec![
                ("$labels".into(), TValue::Map(data.labels.clone())),
                ("$externalLabels".into(), TValue::Map(data.external_labels.clone())),
                ("$externalURL".into(), TValue::Str(data.external_url.clone())),
                ("$value".into(), TValue::Float(data.value)),
            ],
            out: String::new(),
            steps: 0,
        };
        ev.walk(&self.nodes)?;
        Ok(ev.out)
    }
}

/// Parses and expands in one step; a convenience for tests and one-off texts.
pub fn expand(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    Template::parse(name, text)?.expand(data)
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    pos: usize,
    vars: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Var(String, Vec<String>),
    Field(Vec<String>),
    Str(String),
    Num(TValue),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

// === impl Parser ===

impl Parser<'_> {
    fn position(&self, at: usize) -> Pos {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Pos { line, column }
    }

    fn error_at(&self, at: usize, message: String) -> TemplateError {
        let p = self.position(at);
        TemplateError { name: self.name.to_owned(), line: p.line, column: p.column, message }
    }

    /// Parses nodes up to `{{end}}`/`{{else ...}}` (returned with its position) or the end of the text.
    #[allow(clippy::type_complexity)]
    fn parse_list(&mut self) -> Result<(Vec<Node>, Option<(String, usize)>), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(open) = rest.find("{{") else {
                if !rest.is_empty() {
                    nodes.push(Node::Text(rest.to_owned()));
                }
                self.pos = self.text.len();
                return Ok((nodes, None));
            };
            let mut text = &rest[..open];
            let action_start = self.pos + open;
            let mut inner_start = action_start + 2;
            if self.text[inner_start..].starts_with("- ")
                || self.text[inner_start..].starts_with("-\t")
                || self.text[inner_start..].starts_with("-\n")
            {
                text = text.trim_end();
                inner_start += 1;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_owned()));
            }
            let Some(close_rel) = self.find_close(inner_start) else {
                return Err(self.error_at(action_start, "unclosed action".into()));
            };
            let mut inner_end = inner_start + close_rel;
            let mut after = inner_end + 2;
            let trim_right = inner_end > inner_start
                && self.text[..inner_end].ends_with('-')
                && self.text[..inner_end - 1].ends_with([' ', '\t', '\n']);
            if trim_right {
                inner_end -= 1;
            }
            let inner = &self.text[inner_start..inner_end];
            if trim_right {
                let skipped = self.text[after..].len() - self.text[after..].trim_start().len();
                after += skipped;
            }
            self.pos = after;
            let trimmed = inner.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") {
                    return Err(self.error_at(action_start, "unclosed comment".into()));
                }
                continue;
            }
            let toks = self.lex(inner, inner_start)?;
            match toks.first() {
                Some((Tok::Ident(kw), _)) if kw == "end" => {
                    return Ok((nodes, Some(("end".into(), action_start))));
                }
                Some((Tok::Ident(kw), _)) if kw == "else" => {
                    // `else` may carry `if ...` (an else-if chain); the caller reads it again.
                    let rest = inner.trim_start().trim_start_matches("else").to_owned();
                    return Ok((nodes, Some((format!("else{rest}"), action_start))));
                }
                Some((Tok::Ident(kw), _)) if kw == "if" => {
                    let node = self.parse_if(&toks[1..], action_start)?;
                    nodes.push(node);
                }
                Some((Tok::Ident(kw), _)) if kw == "with" => {
                    let pipe = self.pipeline(&toks[1..], action_start)?;
                    let (body, otherwise) = self.parse_body("with", action_start)?;
                    nodes.push(Node::With { pipe, body, otherwise });
                }
                Some((Tok::Ident(kw), _)) if kw == "range" => {
                    let node = self.parse_range(&toks[1..], action_start)?;
                    nodes.push(node);
                }
                Some((Tok::Ident(kw), _))
                    if ["define", "template", "block", "break", "continue"].contains(&kw.as_str()) =>
                {
                    return Err(self.error_at(
                        action_start,
                        format!("{{{{{kw}}}}} is not supported in alert templates"),
                    ));
                }
                _ => {
                    let pipe = self.pipeline(&toks, action_start)?;
                    nodes.push(Node::Action(pipe));
                }
            }
        }
    }

    /// The offset (from `from`) of the `}}` closing an action, skipping over quoted strings.
    fn find_close(&self, from: usize) -> Option<usize> {
        let bytes = self.text.as_bytes();
        let mut i = from;
        while i + 1 < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                }
                b'`' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'`' {
                        i += 1;
                    }
                }
                b'}' if bytes[i + 1] == b'}' => return Some(i - from),
                _ => {}
            }
            i += 1;
        }
        None
    }

    fn parse_body(&mut self, what: &str, start: usize) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
        let (body, end) = self.parse_list()?;
        match end {
            Some((kw, _)) if kw == "end" => Ok((body, Vec::new())),
            Some((kw, pos)) if kw.starts_with("else") => {
                if !kw["else".len()..].trim().is_empty() {
                    return Err(self.error_at(
                        pos,
                        format!("else with a condition is only allowed in if, not in {what}"),
                    ));
                }
                let (otherwise, end) = self.parse_list()?;
                match end {
                    Some((kw, _)) if kw == "end" => Ok((body, otherwise)),
                    _ => {
                        Err(self
                            .error_at(start, format!("unexpected EOF: {{{{{what}}}}} has no {{{{end}}}}")))
                    }
                }
            }
            _ => Err(self.error_at(start, format!("unexpected EOF: {{{{{what}}}}} has no {{{{end}}}}"))),
        }
    }

    fn parse_if(&mut self, cond: &[(Tok, usize)], start: usize) -> Result<Node, TemplateError> {
        let mut branches = vec![];
        let mut pipe = self.pipeline(cond, start)?;
        loop {
            let (body, end) = self.parse_list()?;
            branches.push((pipe, body));
            match end {
                Some((kw, _)) if kw == "end" => return Ok(Node::If { branches, otherwise: Vec::new() }),
                Some((kw, pos)) if kw.starts_with("else") => {
                    let rest = kw["else".len()..].trim();
                    if rest.is_empty() {
                        let (otherwise, end) = self.parse_list()?;
                        return match end {
                            Some((kw, _)) if kw == "end" => Ok(Node::If { branches, otherwise }),
                            _ => Err(self.error_at(start, "unexpected EOF: {{if}} has no {{end}}".into())),
                        };
                    }
                    let Some(cond) = rest.strip_prefix("if") else {
                        return Err(self.error_at(pos, format!("unexpected {:?} after else", rest)));
                    };
                    // Re-lex the condition at its place in the text so positions stay right.
                    let offset = self.text[pos..].find("if").map_or(pos, |i| pos + i + 2);
                    let toks = self.lex(cond.trim_end_matches('-').trim_end(), offset)?;
                    pipe = self.pipeline(&toks, pos)?;
                }
                _ => return Err(self.error_at(start, "unexpected EOF: {{if}} has no {{end}}".into())),
            }
        }
    }

    fn parse_range(&mut self, toks: &[(Tok, usize)], start: usize) -> Result<Node, TemplateError> {
        let (mut key, mut value, mut rest) = (None, None, toks);
        let decl_at = toks.iter().position(|(t, _)| *t == Tok::Declare);
        if let Some(i) = decl_at {
            let names: Vec<String> = toks[..i]
                .iter()
                .filter_map(|(t, _)| match t {
                    Tok::Var(v, f) if f.is_empty() => Some(v.clone()),
                    _ => None,
                })
                .collect();
            match names.as_slice() {
                [v] => value = Some(v.clone()),
                [k, v] => {
                    key = Some(k.clone());
                    value = Some(v.clone());
                }
                _ => return Err(self.error_at(start, "range can declare at most two variables".into())),
            }
            rest = &toks[i + 1..];
        }
        let depth = self.vars.len();
        self.vars.extend(key.iter().chain(value.iter()).cloned());
        let pipe = self.pipeline(rest, start)?;
        let (body, otherwise) = self.parse_body("range", start)?;
        self.vars.truncate(depth);
        Ok(Node::Range { key, value, pipe, body, otherwise })
    }

    fn lex(&self, inner: &str, base: usize) -> Result<Vec<(Tok, usize)>, TemplateError> {
        let mut toks = Vec::new();
        let chars: Vec<(usize, char)> = inner.char_indices().collect();
        let mut i = 0;
        let at = |i: usize| chars.get(i).map_or(inner.len(), |c| c.0) + base;
        while i < chars.len() {
            let (off, c) = chars[i];
            let pos = base + off;
            match c {
                c if c.is_whitespace() => i += 1,
                '|' => {
                    toks.push((Tok::Pipe, pos));
                    i += 1;
                }
                '(' => {
                    toks.push((Tok::LParen, pos));
                    i += 1;
                }
                ')' => {
                    toks.push((Tok::RParen, pos));
                    i += 1;
                }
                ',' => {
                    toks.push((Tok::Comma, pos));
                    i += 1;
                }
                ':' if chars.get(i + 1).map(|c| c.1) == Some('=') => {
                    toks.push((Tok::Declare, pos));
                    i += 2;
                }
                '=' => {
                    toks.push((Tok::Assign, pos));
                    i += 1;
                }
                '"' => {
                    let mut s = String::new();
                    i += 1;
                    loop {
                        let Some(&(_, c)) = chars.get(i) else {
                            return Err(self.error_at(pos, "unterminated quoted string".into()));
                        };
                        i += 1;
                        match c {
                            '"' => break,
                            '\\' => {
                                let Some(&(_, e)) = chars.get(i) else {
                                    return Err(self.error_at(pos, "unterminated quoted string".into()));
                                };
                                i += 1;
                                s.push(match e {
                                    'n' => '\n',
                                    't' => '\t',
                                    'r' => '\r',
                                    '\\' => '\\',
                                    '"' => '"',
                                    '\'' => '\'',
                                    other => {
                                        return Err(self.error_at(
                                            at(i - 2),
                                            format!("unknown escape sequence: \\{other}"),
                                        ));
                                    }
                                });
                            }
                            '\n' => return Err(self.error_at(pos, "unterminated quoted string".into())),
                            c => s.push(c),
                        }
                    }
                    toks.push((Tok::Str(s), pos));
                }
                '`' => {
                    let start = i + 1;
                    let Some(end) = chars[start..].iter().position(|c| c.1 == '`') else {
                        return Err(self.error_at(pos, "unterminated raw quoted string".into()));
                    };
                    toks.push((Tok::Str(chars[start..start + end].iter().map(|c| c.1).collect()), pos));
                    i = start + end + 1;
                }
                '$' | '.' => {
                    let start = i;
                    i += 1;
                    while i < chars.len()
                        && (chars[i].1.is_alphanumeric() || chars[i].1 == '_' || chars[i].1 == '.')
                    {
                        i += 1;
                    }
                    let word: String = chars[start..i].iter().map(|c| c.1).collect();
                    if c == '.' && word.len() > 1 && word[1..].starts_with(|c: char| c.is_ascii_digit()) {
                        let n: f64 = word
                            .parse()
                            .map_err(|_| self.error_at(pos, format!("bad number syntax: {word:?}")))?;
                        toks.push((Tok::Num(TValue::Float(n)), pos));
                        continue;
                    }
                    let mut parts = word.split('.');
                    let head = parts.next().unwrap_or_default().to_owned();
                    let fields: Vec<String> = parts.map(str::to_owned).collect();
                    if fields.iter().any(String::is_empty) && !(c == '.' && word == ".") {
                        return Err(self.error_at(pos, format!("bad field syntax: {word:?}")));
                    }
                    if c == '$' {
                        toks.push((Tok::Var(head, fields), pos));
                    } else {
                        toks.push((Tok::Field(fields.into_iter().filter(|f| !f.is_empty()).collect()), pos));
                    }
                }
                c if c.is_ascii_digit() || c == '-' || c == '+' => {
                    let start = i;
                    i += 1;
                    while i < chars.len()
                        && (chars[i].1.is_ascii_alphanumeric() || matches!(chars[i].1, '.' | '+' | '-' | '_'))
                    {
                        if matches!(chars[i].1, '+' | '-') && !matches!(chars[i - 1].1, 'e' | 'E') {
                            break;
                        }
                        i += 1;
                    }
                    let word: String = chars[start..i].iter().map(|c| c.1).collect();
                    let num = if let Ok(n) = word.parse::<i64>() {
                        TValue::Int(n)
                    } else if let Ok(f) = word.parse::<f64>() {
                        TValue::Float(f)
                    } else if let Some(hex) = word.strip_prefix("0x") {
                        TValue::Int(
                            i64::from_str_radix(hex, 16)
                                .map_err(|_| self.error_at(pos, format!("bad number syntax: {word:?}")))?,
                        )
                    } else {
                        return Err(self.error_at(pos, format!("bad number syntax: {word:?}")));
                    };
                    toks.push((Tok::Num(num), pos));
                }
                c if c.is_alphabetic() || c == '_' => {
                    let start = i;
                    while i < chars.len() && (chars[i].1.is_alphanumeric() || chars[i].1 == '_') {
                        i += 1;
                    }
                    toks.push((Tok::Ident(chars[start..i].iter().map(|c| c.1).collect()), pos));
                }
                other => return Err(self.error_at(pos, format!("unexpected {other:?} in command"))),
            }
        }
        Ok(toks)
    }

    fn pipeline(&mut self, toks: &[(Tok, usize)], start: usize) -> Result<Pipeline, TemplateError> {
        let pos = self.position(toks.first().map_or(start, |t| t.1));
        let mut rest = toks;
        let mut decl = None;
        if let [(Tok::Var(name, fields), p), (op @ (Tok::Declare | Tok::Assign), _), tail @ ..] = toks {
            if !fields.is_empty() {
                return Err(self.error_at(*p, "cannot assign to a field".into()));
            }
            let declare = *op == Tok::Declare;
            if !declare && !self.vars.contains(name) {
                return Err(self.error_at(*p, format!("undefined variable: {name}")));
            }
            decl = Some((name.clone(), declare));
            rest = tail;
        }
        if rest.is_empty() {
            return Err(self.error_at(start, "missing value for command".into()));
        }
        let mut cmds = Vec::new();
        let mut cmd = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let (tok, p) = &rest[i];
            match tok {
                Tok::Pipe => {
                    if cmd.is_empty() {
                        return Err(self.error_at(*p, "missing command before '|'".into()));
                    }
                    cmds.push(std::mem::take(&mut cmd));
                }
                Tok::LParen => {
                    let mut depth = 0usize;
                    let mut j = i;
                    loop {
                        match rest.get(j).map(|t| &t.0) {
                            Some(Tok::LParen) => depth += 1,
                            Some(Tok::RParen) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            Some(_) => {}
                            None => return Err(self.error_at(*p, "unclosed left paren".into())),
                        }
                        j += 1;
                    }
                    let sub = self.pipeline(&rest[i + 1..j], *p)?;
                    cmd.push(Arg::Sub(sub));
                    i = j;
                }
                Tok::RParen => return Err(self.error_at(*p, "unexpected right paren".into())),
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return Err(self.error_at(*p, "unexpected assignment or comma in command".into()));
                }
                Tok::Ident(name) => match name.as_str() {
                    "true" => cmd.push(Arg::Lit(TValue::Bool(true))),
                    "false" => cmd.push(Arg::Lit(TValue::Bool(false))),
                    "nil" => cmd.push(Arg::Lit(TValue::Nil)),
                    n if FUNCS.contains(&n) => cmd.push(Arg::Func(n.to_owned())),
                    // Prometheus's functions that need a store or a server parse (so that rule files
                    // written for Prometheus pass `rules check`) and fail when run.
                    n if UNSUPPORTED.contains(&n) => cmd.push(Arg::Func(n.to_owned())),
                    n => return Err(self.error_at(*p, format!("function {n:?} not defined"))),
                },
                Tok::Var(name, fields) => {
                    if !self.vars.contains(name) {
                        return Err(self.error_at(*p, format!("undefined variable {name:?}")));
                    }
                    cmd.push(Arg::Var(name.clone(), fields.clone()));
                }
                Tok::Field(fields) => cmd.push(Arg::Dot(fields.clone())),
                Tok::Str(s) => cmd.push(Arg::Lit(TValue::Str(s.clone()))),
                Tok::Num(n) => cmd.push(Arg::Lit(n.clone())),
            }
            i += 1;
        }
        if cmd.is_empty() {
            return Err(self.error_at(start, "missing command after '|'".into()));
        }
        cmds.push(cmd);
        for c in cmds.iter().skip(1) {
            if !matches!(c.first(), Some(Arg::Func(_))) {
                return Err(self.error_at(start, "non executable command in pipeline stage".into()));
            }
        }
        if let Some((name, true)) = &decl {
            self.vars.push(name.clone());
        }
        Ok(Pipeline { decl, cmds, pos })
    }
}

/// What `.` is.
#[derive(Clone, Debug)]
enum Dot<'a> {
    Root(&'a BTreeMap<String, TValue>),
    Value(TValue),
}

struct Eval<'a> {
    name: &'a str,
    dot: Dot<'a>,
    vars: Vec<(String, TValue)>,
    out: String,
    /// Actions run so far; bounds the work of a template (ranges over large maps).
    steps: usize,
}

/// The most actions one expansion may run.
const MAX_STEPS: usize = 100_000;

// === impl Eval ===

impl Eval<'_> {
    fn error(&self, pos: Pos, message: String) -> TemplateError {
        TemplateError {
            name: self.name.to_owned(),
            line: pos.line,
            column: pos.column,
            message: format!("executing {:?}: {message}", self.name),
        }
    }

    fn walk(&mut self, nodes: &[Node]) -> Result<(), TemplateError> {
        for node in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(self.error(Pos::default(), format!("template ran more than {MAX_STEPS} actions")));
            }
            match node {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p)?;
                    if p.decl.is_none() {
                        self.out.push_str(&v.to_string());
                    }
                }
                Node::If { branches, otherwise } => {
                    let depth = self.vars.len();
                    let mut done = false;
                    for (cond, body) in branches {
                        if self.pipeline(cond)?.truthy() {
                            self.walk(body)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.walk(otherwise)?;
                    }
                    self.vars.truncate(depth);
                }
                Node::With { pipe, body, otherwise } => {
                    let depth = self.vars.len();
                    let v = self.pipeline(pipe)?;
                    if v.truthy() {
                        let saved = std::mem::replace(&mut self.dot, Dot::Value(v));
                        self.walk(body)?;
                        self.dot = saved;
                    } else {
                        self.walk(otherwise)?;
                    }
                    self.vars.truncate(depth);
                }
                Node::Range { key, value, pipe, body, otherwise } => {
                    let depth = self.vars.len();
                    let items: Vec<(TValue, TValue)> = match self.pipeline(pipe)? {
                        TValue::Map(m) => {
                            m.into_iter().map(|(k, v)| (TValue::Str(k), TValue::Str(v))).collect()
                        }
                        TValue::Int(n) => (0..n.max(0)).map(|i| (TValue::Int(i), TValue::Int(i))).collect(),
                        TValue::Nil => Vec::new(),
                        other => {
                            return Err(self.error(pipe.pos, format!("range can't iterate over {other}")));
                        }
                    };
                    if items.is_empty() {
                        self.walk(otherwise)?;
                    }
                    for (k, v) in items {
                        let inner = self.vars.len();
                        if let Some(name) = key {
                            self.vars.push((name.clone(), k));
                        }
                        if let Some(name) = value {
                            self.vars.push((name.clone(), v.clone()));
                        }
                        let saved = std::mem::replace(&mut self.dot, Dot::Value(v));
                        self.walk(body)?;
                        self.dot = saved;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(depth);
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline) -> Result<TValue, TemplateError> {
        let mut last: Option<TValue> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, last, p.pos)?);
        }
        let v = last.unwrap_or(TValue::Nil);
        if let Some((name, declare)) = &p.decl {
            if *declare {
                self.vars.push((name.clone(), v.clone()));
            } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v.clone();
            }
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, pos: Pos) -> Result<TValue, TemplateError> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p) => self.pipeline(p),
            Arg::Var(name, fields) => {
                let base = if name == "$" {
                    match &self.dot {
                        Dot::Root(m) => TValue::Map(BTreeMap::new()).clone_root(m),
                        Dot::Value(v) => v.clone(),
                    }
                } else {
                    self.vars
                        .iter()
                        .rev()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or(TValue::Nil)
                };
                self.fields(base, fields, pos)
            }
            Arg::Dot(fields) => match (&self.dot, fields.split_first()) {
                (Dot::Root(m), Some((first, rest))) => {
                    let Some(v) = m.get(first) else {
                        return Err(self
                            .error(pos, format!("can't evaluate field {first} in type *template.tmplData")));
                    };
                    self.fields(v.clone(), rest, pos)
                }
                (Dot::Root(_), None) => {
                    Ok(TValue::Str("{Labels, ExternalLabels, ExternalURL, Value}".into()))
                }
                (Dot::Value(v), _) => self.fields(v.clone(), fields, pos),
            },
            Arg::Func(name) => self.call(name, Vec::new(), pos),
        }
    }

    fn fields(&self, mut v: TValue, fields: &[String], pos: Pos) -> Result<TValue, TemplateError> {
        for f in fields {
            v = match v {
                // A missing key of a map[string]string is the zero value, as in Go.
                TValue::Map(m) => TValue::Str(m.get(f).cloned().unwrap_or_default()),
                TValue::Nil => TValue::Nil,
                other => {
                    return Err(
                        self.error(pos, format!("can't evaluate field {f} in type {}", other.type_name()))
                    );
                }
            };
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &[Arg], piped: Option<TValue>, pos: Pos) -> Result<TValue, TemplateError> {
        let Some((first, rest)) = cmd.split_first() else {
            return Ok(TValue::Nil);
        };
        match first {
            Arg::Func(name) => {
                let mut args = Vec::with_capacity(rest.len() + 1);
                for a in rest {
                    args.push(self.arg(a, pos)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                self.call(name, args, pos)
            }
            other => {
                if !rest.is_empty() || piped.is_some() {
                    return Err(self.error(pos, "can't give argument to non-function".into()));
                }
                self.arg(other, pos)
            }
        }
    }

    fn call(&self, name: &str, args: Vec<TValue>, pos: Pos) -> Result<TValue, TemplateError> {
        let err = |m: String| self.error(pos, format!("error calling {name}: {m}"));
        let want = |n: usize| -> Result<(), TemplateError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(self.error(pos, format!("wrong number of args for {name}: want {n} got {}", args.len())))
            }
        };
        let str_arg = |v: &TValue| -> String { v.to_string() };
        Ok(match name {
            "printf" => {
                let Some((fmt, rest)) = args.split_first() else {
                    return Err(
                        self.error(pos, "wrong number of args for printf: want at least 1 got 0".into())
                    );
                };
                TValue::Str(sprintf(&str_arg(fmt), rest))
            }
            "print" => {
                // Go's Sprint puts spaces only between operands when neither is a string.
                let mut s = String::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 && !matches!(a, TValue::Str(_)) && !matches!(args[i - 1], TValue::Str(_)) {
                        s.push(' ');
                    }
                    s.push_str(&a.to_string());
                }
                TValue::Str(s)
            }
            "println" => {
                TValue::Str(args.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ") + "\n")
            }
            "humanize" | "humanize1024" | "humanizePercentage" | "humanizeDuration" | "humanizeTimestamp" => {
                want(1)?;
                let v = args[0].to_float().map_err(err)?;
                TValue::Str(match name {
                    "humanize" => humanize(v),
                    "humanize1024" => humanize1024(v),
                    "humanizePercentage" => format!("{}%", format_g(v * 100.0, Some(4))),
                    "humanizeDuration" => humanize_duration(v),
                    _ => humanize_timestamp(v),
                })
            }
            "toUpper" | "toLower" | "title" | "stripPort" | "safeHtml" | "html" | "js" | "urlquery" => {
                want(1)?;
                let s = str_arg(&args[0]);
                TValue::Str(match name {
                    "toUpper" => s.to_uppercase(),
                    "toLower" => s.to_lowercase(),
                    "title" => title(&s),
                    "stripPort" => strip_port(&s),
                    "html" => s
                        .replace('&', "&amp;")
                        .replace('<', "&lt;")
                        .replace('>', "&gt;")
                        .replace('"', "&#34;")
                        .replace('\'', "&#39;"),
                    "urlquery" => query_escape(&s),
                    _ => s,
                })
            }
            "reReplaceAll" => {
                want(3)?;
                // Prometheus compiles the pattern as given (unanchored) and replaces every match.
                let re = regex::Regex::new(&str_arg(&args[0])).map_err(|e| err(e.to_string()))?;
                // Go's replacement syntax (`$1`, `${name}`) is the regex crate's.
                let repl = str_arg(&args[1]);
                TValue::Str(re.replace_all(&str_arg(&args[2]), repl.as_str()).into_owned())
            }
            "match" => {
                want(2)?;
                let re = regex::Regex::new(&str_arg(&args[0])).map_err(|e| err(e.to_string()))?;
                TValue::Bool(re.is_match(&str_arg(&args[1])))
            }
            "len" => {
                want(1)?;
                match &args[0] {
                    TValue::Str(s) => TValue::Int(s.len() as i64),
                    TValue::Map(m) => TValue::Int(m.len() as i64),
                    other => return Err(err(format!("len of type {}", other.type_name()))),
                }
            }
            "index" => {
                want(2)?;
                match &args[0] {
                    TValue::Map(m) => TValue::Str(m.get(&str_arg(&args[1])).cloned().unwrap_or_default()),
                    other => return Err(err(format!("can't index item of type {}", other.type_name()))),
                }
            }
            "not" => {
                want(1)?;
                TValue::Bool(!args[0].truthy())
            }
            "and" => args.iter().find(|a| !a.truthy()).or(args.last()).cloned().unwrap_or(TValue::Nil),
            "or" => args.iter().find(|a| a.truthy()).or(args.last()).cloned().unwrap_or(TValue::Nil),
            "eq" => {
                let Some((first, rest)) = args.split_first() else {
                    return Err(err("missing argument for comparison".into()));
                };
                if rest.is_empty() {
                    return Err(err("missing argument for comparison".into()));
                }
                let mut any = false;
                for other in rest {
                    if compare(first, other).map_err(err)? == std::cmp::Ordering::Equal {
                        any = true;
                    }
                }
                TValue::Bool(any)
            }
            "ne" | "lt" | "le" | "gt" | "ge" => {
                want(2)?;
                let ord = compare(&args[0], &args[1]).map_err(err)?;
                if matches!(name, "lt" | "le" | "gt" | "ge") && matches!(args[0], TValue::Bool(_)) {
                    return Err(err("invalid type for comparison".into()));
                }
                TValue::Bool(match name {
                    "ne" => ord != std::cmp::Ordering::Equal,
                    "lt" => ord == std::cmp::Ordering::Less,
                    "le" => ord != std::cmp::Ordering::Greater,
                    "gt" => ord == std::cmp::Ordering::Greater,
                    _ => ord != std::cmp::Ordering::Less,
                })
            }
            other if UNSUPPORTED.contains(&other) => {
                return Err(self.error(
                    pos,
                    format!(
                        "function {other:?} is not supported in sightline's alert templates (it needs a query engine or server context); \
                         compute the value in the rule's expression instead"
                    ),
                ));
            }
            other => return Err(self.error(pos, format!("function {other:?} not defined"))),
        })
    }
}

impl TValue {
    fn clone_root(self, root: &BTreeMap<String, TValue>) -> TValue {
        let _ = self;
        TValue::Map(root.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
    }
}

/// Go's template comparison: same basic kind required (an int literal against a float64 `$value` is
/// "incompatible types for comparison", as Go reports it).
fn compare(a: &TValue, b: &TValue) -> Result<std::cmp::Ordering, String> {
    use std::cmp::Ordering;
    match (a, b) {
        (TValue::Int(x), TValue::Int(y)) => Ok(x.cmp(y)),
        (TValue::Float(x), TValue::Float(y)) => Ok(x.partial_cmp(y).unwrap_or(Ordering::Less)),
        (TValue::Str(x), TValue::Str(y)) => Ok(x.cmp(y)),
        (TValue::Bool(x), TValue::Bool(y)) => Ok(x.cmp(y)),
        (TValue::Nil, TValue::Nil) => Ok(Ordering::Equal),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Prometheus's `humanize`: SI prefixes, four significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4)))
}

/// Prometheus's `humanizeDuration` of seconds: `1d 2h 3m 4s`, `1m 30s`, `1.5s`, `500ms`.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format_g(v, Some(4));
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4)));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (seconds, minutes, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_g(v, Some(4)));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4)))
}

/// Prometheus's `humanizeTimestamp`: Go's `time.Time.String()` in UTC
/// (`2006-01-02 15:04:05.999999999 +0000 UTC`).
pub fn humanize_timestamp(v: f64) -> String {
    if !(0.0..=1e11).contains(&v) {
        return format_g(v, Some(4));
    }
    let nanos = (v * 1e9).round() as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
    let text = humantime::format_rfc3339_nanos(t).to_string();
    // `2006-01-02T15:04:05.123456789Z` into Go's form, trailing zeros of the fraction dropped.
    let body = text.trim_end_matches('Z').replacen('T', " ", 1);
    let body = match body.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() { whole.to_owned() } else { format!("{whole}.{frac}") }
        }
        None => body,
    };
    format!("{body} +0000 UTC")
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, _)) = rest.split_once(']') {
            return host.to_owned();
        }
    }
    match s.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_owned(),
        _ => s.to_owned(),
    }
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs alert templates use: `%v %s %d %f %e %g %q %x %t %%`, with flags
/// `-+ 0`, width and precision. A verb that does not fit its operand prints as Go does (`%!d(float64=1.5)`).
pub fn sprintf(format: &str, args: &[TValue]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ 0#".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let body = match (verb, arg) {
            ('v', TValue::Float(f)) => match prec {
                Some(p) => format_g(*f, Some(p)),
                None => format_g(*f, None),
            },
            ('v', a) | ('s', a @ TValue::Str(_)) => a.to_string(),
            ('d', TValue::Int(i)) => i.to_string(),
            ('f' | 'F', TValue::Float(f)) => format_f(*f, prec.unwrap_or(6)),
            ('e', TValue::Float(f)) => format_e(*f, Some(prec.unwrap_or(6))),
            ('g', TValue::Float(f)) => format_g(*f, prec),
            ('f' | 'F', TValue::Int(i)) | ('e', TValue::Int(i)) | ('g', TValue::Int(i)) => {
                format!("%!{verb}(int={i})")
            }
            ('q', TValue::Str(s)) => go_quote(s),
            ('x', TValue::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('x', TValue::Int(i)) => format!("{i:x}"),
            ('t', TValue::Bool(b)) => b.to_string(),
            (verb, a) => format!("%!{verb}({}={a})", a.type_name()),
        };
        let body = match (verb, arg) {
            ('d' | 'f' | 'e' | 'g' | 'v', TValue::Int(_) | TValue::Float(_))
                if flags.contains('+') && !body.starts_with('-') =>
            {
                format!("+{body}")
            }
            _ => body,
        };
        let width: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len >= width {
            out.push_str(&body);
        } else if flags.contains('-') {
            out.push_str(&body);
            out.push_str(&" ".repeat(width - len));
        } else if flags.contains('0') && matches!(arg, TValue::Int(_) | TValue::Float(_)) {
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(d) => (&body[..1], d),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(width - len));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(width - len));
            out.push_str(&body);
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..].iter().map(|a| format!("{}={a}", a.type_name())).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(value: f64) -> TemplateData {
        TemplateData {
            labels: BTreeMap::from([("instance".into(), "host:9100".into()), ("job".into(), "node".into())]),
            external_labels: BTreeMap::from([("cluster".into(), "eu1".into())]),
            external_url: "http://prom".into(),
            value,
        }
    }

    fn run(text: &str, value: f64) -> String {
        expand("t", text, &data(value)).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn prometheus_functions_format_like_prometheus() {
        assert_eq!(humanize(1_234_567.0), "1.235M");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(999.0), "999");
        assert_eq!(humanize1024(1024.0 * 1024.0), "1Mi");
        assert_eq!(humanize_duration(90.0), "1m 30s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_timestamp(1_435_065_584.128), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(run("{{ 0.1234 | humanizePercentage }}", 0.0), "12.34%");
    }

    #[test]
    fn variables_pipelines_and_functions() {
        assert_eq!(
            run("{{ $labels.instance }} of {{ $labels.job }} is {{ $value }}", 1e6),
            "host:9100 of node is 1e+06"
        );
        assert_eq!(run("{{ .Labels.job }}/{{ .Value }}", 0.5), "node/0.5");
        assert_eq!(run("{{ $externalLabels.cluster }} {{ $externalURL }}", 0.0), "eu1 http://prom");
        assert_eq!(run("{{ $value | humanize }}", 1_234_567.0), "1.235M");
        assert_eq!(run("{{ printf \"%.2f\" $value }}", 1.23456), "1.23");
        assert_eq!(run("{{ printf \"%s=%v\" $labels.job $value }}", 2.0), "node=2");
        assert_eq!(
            run("{{ $labels.job | toUpper }} {{ toLower \"AB\" }} {{ title \"foo bar\" }}", 0.0),
            "NODE ab Foo Bar"
        );
        assert_eq!(run("{{ $labels.missing }}|", 0.0), "|");
        assert_eq!(run("{{ $x := $labels.job }}{{ $x }}", 0.0), "node");
        assert_eq!(run("{{ humanize (printf \"%f\" $value) }}", 2000.0), "2k");
        assert_eq!(run("{{ reReplaceAll \":.*\" \"\" $labels.instance }}", 0.0), "host");
        assert_eq!(
            run("{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}", 0.0),
            "instance=host:9100;job=node;"
        );
    }

    #[test]
    fn conditions_and_trim_markers() {
        let t = "{{ if gt $value 90.0 }}high{{ else if gt $value 50.0 }}mid{{ else }}low{{ end }}";
        assert_eq!(run(t, 95.0), "high");
        assert_eq!(run(t, 60.0), "mid");
        assert_eq!(run(t, 1.0), "low");
        assert_eq!(run("a  {{- \"b\" -}}  c", 0.0), "abc");
        assert_eq!(run("{{ if eq $labels.job \"node\" }}yes{{ end }}", 0.0), "yes");
        assert_eq!(run("{{/* a comment */}}x", 0.0), "x");
        assert_eq!(run("{{ with $labels.job }}{{ . }}{{ end }}", 0.0), "node");
        assert_eq!(run("{{ if and (gt $value 1.0) (lt $value 3.0) }}in{{ end }}", 2.0), "in");
    }

    #[test]
    fn errors_name_the_template_and_position() {
        let e = Template::parse("__alert_X", "ok {{ $value | nosuch }}")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(e, "template: __alert_X:1:16: function \"nosuch\" not defined");
        let e = Template::parse("n", "line\n{{ if true }}x").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("template: n:2:1: unexpected EOF"), "{e}");
        let e = Template::parse("n", "{{ $nope }}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("undefined variable"), "{e}");
        let e = Template::parse("n", "{{ .Value").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unclosed action"), "{e}");
        // Go refuses to compare an int literal with the float64 $value; so do we, at expansion.
        let e = expand("n", "{{ if gt $value 1 }}x{{ end }}", &data(2.0))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("incompatible types for comparison"), "{e}");
        let t = Template::parse("n", "{{ query \"up\" }}").expect("Prometheus's query function parses");
        let e = t.expand(&data(1.0)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("\"query\" is not supported"), "{e}");
    }

    #[test]
    fn printf_handles_widths_and_mismatches() {
        assert_eq!(
            sprintf("%5.1f|%-4s|%03d", &[TValue::Float(2.25), TValue::Str("ab".into()), TValue::Int(7)]),
            "  2.2|ab  |007"
        );
        assert_eq!(sprintf("%d", &[TValue::Float(1.5)]), "%!d(float64=1.5)");
        assert_eq!(sprintf("%s %s", &[TValue::Str("a".into())]), "a %!s(MISSING)");
        assert_eq!(sprintf("100%%", &[]), "100%");
    }
}
