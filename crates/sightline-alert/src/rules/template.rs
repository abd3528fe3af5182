//! The subset of Go's `text/template` that Prometheus alert templates and Alertmanager notification
//! templates use, with each one's functions.
//!
//! Hand-written rather than taken from crates.io: the one Go-template crate (`gtmpl`) has not been
//! released since 2021, formats numbers its own way rather than as Go's `fmt` does, and its error
//! messages carry no template name, while alert text must match what Prometheus and Alertmanager render
//! byte for byte.
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
//!
//! [`Dialect::Alertmanager`] adds what notification templates need: `{{ define }}`, `{{ template }}` and
//! `{{ block }}` with a [`TemplateSet`] of named templates, Alertmanager's data (structs, lists, `KV`
//! maps with `SortedPairs`/`Names`/`Values`/`Remove`, times with `Format`/`Unix`), method calls with
//! arguments, `range` over lists, its functions (`join`, `stringSlice`, `trimSpace`, `safeHtml`, ...) and
//! `html/template`'s escaping for HTML fields (see [`TemplateSet::execute`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

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

/// Which template language: Prometheus's alert templates (rule labels and annotations) or
/// Alertmanager's notification templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Prometheus,
    Alertmanager,
}

/// A value in a template.
#[derive(Clone, Debug, PartialEq)]
pub enum TValue {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A Go `map[string]string` (Prometheus's `$labels`), printed `map[a:b]`.
    Map(BTreeMap<String, String>),
    /// Alertmanager's `template.KV`: a map with the methods `SortedPairs`, `Names`, `Values`, `Remove`,
    /// printed `a=b, c=d`.
    Kv(Arc<BTreeMap<String, String>>),
    /// A slice; the kind says which methods it has.
    List(ListKind, Arc<Vec<TValue>>),
    /// A struct (Alertmanager's `Data`, `Alert`, `Pair`): fields by name.
    Struct(Arc<Struct>),
    /// A `time.Time` in UTC; `None` is Go's zero time.
    Time(Option<SystemTime>),
    /// `html/template.HTML` (from `safeHtml`): not escaped in HTML output.
    Html(String),
}

/// What a [`TValue::List`] holds, for its methods and its printed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    /// `[]string`.
    Strings,
    /// Alertmanager's `Pairs` (`Names`, `Values`, printed `a=b, c=d`).
    Pairs,
    /// Alertmanager's `Alerts` (`Firing`, `Resolved`).
    Alerts,
    /// Any other slice (`[]Alert` as `Firing` returns it).
    Plain,
}

/// A struct value: its Go type name (for errors) and its fields in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct Struct {
    pub type_name: &'static str,
    pub fields: Vec<(&'static str, TValue)>,
}

// === impl TValue ===

impl TValue {
    fn truthy(&self) -> bool {
        match self {
            TValue::Nil => false,
            TValue::Bool(b) => *b,
            TValue::Int(i) => *i != 0,
            TValue::Float(f) => *f != 0.0,
            TValue::Str(s) | TValue::Html(s) => !s.is_empty(),
            TValue::Map(m) => !m.is_empty(),
            TValue::Kv(m) => !m.is_empty(),
            TValue::List(_, l) => !l.is_empty(),
            TValue::Struct(_) | TValue::Time(_) => true,
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
            TValue::Kv(_) => "template.KV",
            TValue::List(ListKind::Strings, _) => "[]string",
            TValue::List(ListKind::Pairs, _) => "template.Pairs",
            TValue::List(ListKind::Alerts, _) => "template.Alerts",
            TValue::List(ListKind::Plain, _) => "[]template.Alert",
            TValue::Struct(s) => s.type_name,
            TValue::Time(_) => "time.Time",
            TValue::Html(_) => "template.HTML",
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

    /// A string argument, as Go passes one to a `string` parameter: strings (and `template.HTML`) only.
    fn as_str(&self) -> Result<&str, String> {
        match self {
            TValue::Str(s) | TValue::Html(s) => Ok(s),
            other => Err(format!("wrong type for value; expected string; got {}", other.type_name())),
        }
    }

    /// A `[]string` argument.
    fn as_strings(&self) -> Result<Vec<String>, String> {
        match self {
            TValue::List(ListKind::Strings, items) => Ok(items.iter().map(ToString::to_string).collect()),
            other => Err(format!("wrong type for value; expected []string; got {}", other.type_name())),
        }
    }

    /// A `[]string` value.
    pub fn strings(items: impl IntoIterator<Item = String>) -> TValue {
        TValue::List(ListKind::Strings, Arc::new(items.into_iter().map(TValue::Str).collect()))
    }
}

/// Alertmanager's `KV.SortedPairs`: by name, except that `alertname` comes first.
fn sorted_pairs(kv: &BTreeMap<String, String>) -> Vec<(&String, &String)> {
    let mut pairs: Vec<(&String, &String)> = Vec::with_capacity(kv.len());
    if let Some((k, v)) = kv.get_key_value("alertname") {
        pairs.push((k, v));
    }
    pairs.extend(kv.iter().filter(|(k, _)| k.as_str() != "alertname"));
    pairs
}

fn write_pairs<'a>(
    f: &mut fmt::Formatter<'_>,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> fmt::Result {
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{k}={v}")?;
    }
    Ok(())
}

/// As Go's `%v` prints values (`fmt.Sprint`), using a type's `String` method where it has one.
impl fmt::Display for TValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TValue::Nil => f.write_str("<no value>"),
            TValue::Bool(b) => write!(f, "{b}"),
            TValue::Int(i) => write!(f, "{i}"),
            TValue::Float(v) => f.write_str(&format_g(*v, None)),
            TValue::Str(s) | TValue::Html(s) => f.write_str(s),
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
            TValue::Kv(m) => {
                write_pairs(f, sorted_pairs(m).into_iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
            TValue::List(ListKind::Pairs, items) => write_pairs(
                f,
                items.iter().filter_map(|p| match p {
                    TValue::Struct(s) => match s.fields.as_slice() {
                        [(_, TValue::Str(k)), (_, TValue::Str(v))] => Some((k.as_str(), v.as_str())),
                        _ => None,
                    },
                    _ => None,
                }),
            ),
            TValue::List(_, items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            TValue::Struct(s) => {
                f.write_str("{")?;
                for (i, (_, v)) in s.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("}")
            }
            TValue::Time(t) => f.write_str(&super::template_time::go_string(*t)),
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
    /// Templates the text `define`s (Alertmanager dialect), looked up before the set's.
    defines: Defs,
}

/// Named templates: their file (for errors) and body.
pub(crate) type Defs = HashMap<String, Arc<Def>>;

#[derive(Debug)]
pub(crate) struct Def {
    file: String,
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
    /// `{{ template "name" pipeline }}` (and the call half of `{{ block }}`).
    Template {
        name: String,
        pipe: Option<Pipeline>,
        pos: Pos,
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
    /// `(pipeline).Field.Method`.
    Chain(Pipeline, Vec<String>),
}

/// Go's built-in template functions, in both dialects.
const GO_FUNCS: &[&str] = &[
    "printf", "print", "println", "len", "index", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
    "html", "js", "urlquery",
];

/// Prometheus's template functions.
const FUNCS: &[&str] = &[
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
];

/// Alertmanager's `DefaultFuncs`: 0.25's, plus `trimSpace`, `safeUrl`, `urlUnescape`, `date` and
/// `humanizeDuration` from later releases.
const AM_FUNCS: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "trimSpace",
    "join",
    "match",
    "safeHtml",
    "safeUrl",
    "urlUnescape",
    "reReplaceAll",
    "stringSlice",
    "date",
    "humanizeDuration",
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
        Self::parse_in(name, text, Dialect::Prometheus)
    }

    /// Parses `text` in `dialect`.
    pub fn parse_in(name: &str, text: &str, dialect: Dialect) -> Result<Self, TemplateError> {
        let vars: Vec<String> = match dialect {
            Dialect::Prometheus => vec![
                "$".into(),
                "$labels".into(),
                "$value".into(),
                "$externalLabels".into(),
                "$externalURL".into(),
            ],
            Dialect::Alertmanager => vec!["$".into()],
        };
        let mut parser = Parser { name, text, pos: 0, vars, dialect, nesting: 0, defines: HashMap::new() };
        let (nodes, end) = parser.parse_list()?;
        if let Some((kw, pos)) = end {
            return Err(parser.error_at(pos, format!("unexpected {{{{{kw}}}}}")));
        }
        Ok(Self { name: name.to_owned(), nodes, defines: parser.defines })
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
            file: self.name.clone(),
            exec: self.name.clone(),
            dot: Dot::Root(&dot),
            vars: vec![
                ("$labels".into(), TValue::Map(data.labels.clone())),
                ("$externalLabels".into(), TValue::Map(data.external_labels.clone())),
                ("$externalURL".into(), TValue::Str(data.external_url.clone())),
                ("$value".into(), TValue::Float(data.value)),
            ],
            out: String::new(),
            steps: 0,
            defs: [&self.defines, &self.defines],
            html: false,
            depth: 0,
            dialect: Dialect::Prometheus,
        };
        ev.walk(&self.nodes)?;
        Ok(ev.out)
    }

    /// The names of the templates this text calls (`{{ template "x" }}`), its own `define`s included.
    fn calls(&self) -> Vec<(String, Pos)> {
        let mut out = Vec::new();
        collect_calls(&self.nodes, &mut out);
        for def in self.defines.values() {
            collect_calls(&def.nodes, &mut out);
        }
        out
    }
}

fn collect_calls(nodes: &[Node], out: &mut Vec<(String, Pos)>) {
    for node in nodes {
        match node {
            Node::Template { name, pos, .. } => out.push((name.clone(), *pos)),
            Node::If { branches, otherwise } => {
                for (_, body) in branches {
                    collect_calls(body, out);
                }
                collect_calls(otherwise, out);
            }
            Node::With { body, otherwise, .. } | Node::Range { body, otherwise, .. } => {
                collect_calls(body, out);
                collect_calls(otherwise, out);
            }
            Node::Text(_) | Node::Action(_) => {}
        }
    }
}

/// Parses and expands in one step; a convenience for tests and one-off texts.
pub fn expand(name: &str, text: &str, data: &TemplateData) -> Result<String, TemplateError> {
    Template::parse(name, text)?.expand(data)
}

/// A set of named templates in Alertmanager's dialect (the `define`s of template files), which texts are
/// executed against, as Alertmanager executes a receiver's fields against its default templates and the
/// files of `templates:`.
#[derive(Clone, Debug, Default)]
pub struct TemplateSet {
    defs: Defs,
}

// === impl TemplateSet ===

impl TemplateSet {
    /// Adds the `define`s (and `block`s) of a template file; a name defined again replaces the earlier
    /// definition, so files loaded later override earlier ones, as in Go. The file's top-level text is
    /// itself a template named `file_name`, as Go's `ParseFiles` names it.
    pub fn add_file(&mut self, file_name: &str, text: &str) -> Result<(), TemplateError> {
        let parsed = Template::parse_in(file_name, text, Dialect::Alertmanager)?;
        self.defs.extend(parsed.defines);
        // Go keeps the file's own template unless it is only whitespace and defines.
        let blank = parsed.nodes.iter().all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
        if !blank || !self.defs.contains_key(file_name) {
            self.defs.insert(
                file_name.to_owned(),
                Arc::new(Def { file: file_name.to_owned(), nodes: parsed.nodes }),
            );
        }
        Ok(())
    }

    /// Whether a template of that name is defined.
    pub fn has(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// Parses a text (a receiver field) in Alertmanager's dialect and checks that every template it
    /// calls is defined, in the text itself or in this set.
    pub fn parse(&self, name: &str, text: &str) -> Result<Template, TemplateError> {
        let template = Template::parse_in(name, text, Dialect::Alertmanager)?;
        self.check_calls(&template)?;
        Ok(template)
    }

    /// Checks that every template the set's own definitions call is defined.
    pub fn check(&self) -> Result<(), TemplateError> {
        for def in self.defs.values() {
            let mut calls = Vec::new();
            collect_calls(&def.nodes, &mut calls);
            for (called, pos) in calls {
                if !self.defs.contains_key(&called) {
                    return Err(TemplateError {
                        name: def.file.clone(),
                        line: pos.line,
                        column: pos.column,
                        message: format!(
                            "template {called:?} is called but not defined: define it in a templates: file"
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    fn check_calls(&self, template: &Template) -> Result<(), TemplateError> {
        for (called, pos) in template.calls() {
            if !self.defs.contains_key(&called) && !template.defines.contains_key(&called) {
                return Err(TemplateError {
                    name: template.name.clone(),
                    line: pos.line,
                    column: pos.column,
                    message: format!(
                        "template {called:?} not defined: define it in a templates: file or use one of Alertmanager's default templates"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Executes `template` with `data` as `.` and `$`. With `html`, the output of each action is escaped
    /// as Go's `html/template` escapes it in that place (HTML text, attribute values, URL attributes),
    /// except `safeHtml` values, and HTML comments in the text are dropped; this follows `html/template`
    /// for the markup notification templates are made of, not for scripts or style sheets.
    pub fn execute(&self, template: &Template, data: &TValue, html: bool) -> Result<String, TemplateError> {
        let mut ev = Eval {
            file: template.name.clone(),
            exec: template.name.clone(),
            dot: Dot::Value(data.clone()),
            vars: vec![("$".into(), data.clone())],
            out: String::new(),
            steps: 0,
            defs: [&template.defines, &self.defs],
            html,
            depth: 0,
            dialect: Dialect::Alertmanager,
        };
        ev.walk(&template.nodes)?;
        Ok(ev.out)
    }
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
    pos: usize,
    vars: Vec<String>,
    dialect: Dialect,
    /// How deep in `if`/`with`/`range` bodies the parser is; `define` is only allowed at the top.
    nesting: usize,
    defines: Defs,
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
                    if self.dialect == Dialect::Alertmanager
                        && ["define", "template", "block"].contains(&kw.as_str()) =>
                {
                    let node = self.parse_named(kw, &toks[1..], action_start)?;
                    nodes.extend(node);
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

    /// `{{ define "name" }}...{{ end }}`, `{{ template "name" [pipeline] }}` or
    /// `{{ block "name" pipeline }}...{{ end }}` (a define and a call).
    fn parse_named(
        &mut self,
        kw: &str,
        toks: &[(Tok, usize)],
        start: usize,
    ) -> Result<Option<Node>, TemplateError> {
        let Some((Tok::Str(name), _)) = toks.first() else {
            return Err(self.error_at(start, format!("{{{{{kw}}}}} needs a quoted template name")));
        };
        let name = name.clone();
        let pos = self.position(start);
        let pipe = match &toks[1..] {
            [] => None,
            rest => Some(self.pipeline(rest, start)?),
        };
        if kw == "template" {
            return Ok(Some(Node::Template { name, pipe, pos }));
        }
        if kw == "define" && (self.nesting > 0 || pipe.is_some()) {
            return Err(self.error_at(
                start,
                "{{define}} takes only a name and must be at the top level of a file, not inside another action".into(),
            ));
        }
        if kw == "block" && pipe.is_none() {
            return Err(self.error_at(start, "{{block}} needs a pipeline after its name".into()));
        }
        // A definition's body sees only `$`, whatever variables surround it.
        let vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let body = self.parse_body(kw, start);
        self.vars = vars;
        let (body, otherwise) = body?;
        if !otherwise.is_empty() {
            return Err(self.error_at(start, format!("{{{{else}}}} is not allowed in {{{{{kw}}}}}")));
        }
        self.defines.insert(name.clone(), Arc::new(Def { file: self.name.to_owned(), nodes: body }));
        Ok((kw == "block").then_some(Node::Template { name, pipe, pos }))
    }

    fn parse_body(&mut self, what: &str, start: usize) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
        self.nesting += 1;
        let result = self.parse_body_inner(what, start);
        self.nesting -= 1;
        result
    }

    fn parse_body_inner(
        &mut self,
        what: &str,
        start: usize,
    ) -> Result<(Vec<Node>, Vec<Node>), TemplateError> {
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
        self.nesting += 1;
        let result = self.parse_if_inner(cond, start);
        self.nesting -= 1;
        result
    }

    fn parse_if_inner(&mut self, cond: &[(Tok, usize)], start: usize) -> Result<Node, TemplateError> {
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
                    // `(x).Field`: a field chain right after the parenthesis applies to its value.
                    match rest.get(j + 1) {
                        Some((Tok::Field(fields), at))
                            if self.dialect == Dialect::Alertmanager && *at == rest[j].1 + 1 =>
                        {
                            cmd.push(Arg::Chain(sub, fields.clone()));
                            i = j + 1;
                        }
                        _ => {
                            cmd.push(Arg::Sub(sub));
                            i = j;
                        }
                    }
                }
                Tok::RParen => return Err(self.error_at(*p, "unexpected right paren".into())),
                Tok::Declare | Tok::Assign | Tok::Comma => {
                    return Err(self.error_at(*p, "unexpected assignment or comma in command".into()));
                }
                Tok::Ident(name) => match name.as_str() {
                    "true" => cmd.push(Arg::Lit(TValue::Bool(true))),
                    "false" => cmd.push(Arg::Lit(TValue::Bool(false))),
                    "nil" => cmd.push(Arg::Lit(TValue::Nil)),
                    n if GO_FUNCS.contains(&n) => cmd.push(Arg::Func(n.to_owned())),
                    n if self.dialect == Dialect::Prometheus && FUNCS.contains(&n) => {
                        cmd.push(Arg::Func(n.to_owned()))
                    }
                    n if self.dialect == Dialect::Alertmanager && AM_FUNCS.contains(&n) => {
                        cmd.push(Arg::Func(n.to_owned()))
                    }
                    // Prometheus's functions that need a store or a server parse (so that rule files
                    // written for Prometheus pass `rules check`) and fail when run.
                    n if self.dialect == Dialect::Prometheus && UNSUPPORTED.contains(&n) => {
                        cmd.push(Arg::Func(n.to_owned()))
                    }
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
    /// The file (or text) the running template came from, for error positions.
    file: String,
    /// The running template's name, for "executing NAME" in errors.
    exec: String,
    dot: Dot<'a>,
    vars: Vec<(String, TValue)>,
    out: String,
    /// Actions run so far; bounds the work of a template (ranges over large maps).
    steps: usize,
    /// Named templates: the text's own, then the set's.
    defs: [&'a Defs; 2],
    /// Escape action output as `html/template` does.
    html: bool,
    /// `{{ template }}` calls in progress, bounded so that a recursive template cannot overflow the stack.
    depth: usize,
    dialect: Dialect,
}

/// The most actions one expansion of an alert template may run.
const MAX_STEPS: usize = 100_000;
/// The most actions one notification template may run: Alertmanager's default email runs about 40 per
/// alert, so this renders groups of well over 100,000 alerts and still stops a runaway template.
const MAX_NOTIFICATION_STEPS: usize = 10_000_000;
/// The deepest `{{ template }}` nesting.
const MAX_DEPTH: usize = 64;

// === impl Eval ===

impl Eval<'_> {
    fn error(&self, pos: Pos, message: String) -> TemplateError {
        TemplateError {
            name: self.file.clone(),
            line: pos.line,
            column: pos.column,
            message: format!("executing {:?}: {message}", self.exec),
        }
    }

    fn walk(&mut self, nodes: &[Node]) -> Result<(), TemplateError> {
        for node in nodes {
            self.steps += 1;
            let limit = match self.dialect {
                Dialect::Prometheus => MAX_STEPS,
                Dialect::Alertmanager => MAX_NOTIFICATION_STEPS,
            };
            if self.steps > limit {
                return Err(self.error(Pos::default(), format!("template ran more than {limit} actions")));
            }
            match node {
                Node::Text(t) => {
                    if self.html && t.contains("<!--") {
                        self.out.push_str(&strip_html_comments(t));
                    } else {
                        self.out.push_str(t);
                    }
                }
                Node::Action(p) => {
                    let v = self.pipeline(p)?;
                    if p.decl.is_none() {
                        if self.html {
                            let escaped = html_escape_in_context(&self.out, &v);
                            self.out.push_str(&escaped);
                        } else if let TValue::Str(s) = &v {
                            self.out.push_str(s);
                        } else {
                            // Straight into the output, without a string of its own.
                            let _ = fmt::Write::write_fmt(&mut self.out, format_args!("{v}"));
                        }
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
                        TValue::Kv(m) => {
                            m.iter().map(|(k, v)| (TValue::Str(k.clone()), TValue::Str(v.clone()))).collect()
                        }
                        TValue::List(_, l) => {
                            l.iter().enumerate().map(|(i, v)| (TValue::Int(i as i64), v.clone())).collect()
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
                Node::Template { name, pipe, pos } => self.call_template(name, pipe.as_ref(), *pos)?,
            }
        }
        Ok(())
    }

    /// `{{ template "name" pipeline }}`: runs the named template with the pipeline's value as `.` and `$`.
    fn call_template(&mut self, name: &str, pipe: Option<&Pipeline>, pos: Pos) -> Result<(), TemplateError> {
        let Some(def) = self.defs.iter().find_map(|d| d.get(name)).cloned() else {
            return Err(self.error(pos, format!("template {name:?} not defined")));
        };
        if self.depth >= MAX_DEPTH {
            return Err(self.error(pos, format!("templates call each other more than {MAX_DEPTH} deep")));
        }
        let data = match pipe {
            Some(p) => self.pipeline(p)?,
            None => TValue::Nil,
        };
        let vars = std::mem::replace(&mut self.vars, vec![("$".into(), data.clone())]);
        let dot = std::mem::replace(&mut self.dot, Dot::Value(data));
        let file = std::mem::replace(&mut self.file, def.file.clone());
        let exec = std::mem::replace(&mut self.exec, name.to_owned());
        self.depth += 1;
        let result = self.walk(&def.nodes);
        self.depth -= 1;
        self.vars = vars;
        self.dot = dot;
        self.file = file;
        self.exec = exec;
        result
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

    fn var(&self, name: &str) -> TValue {
        if let Some((_, v)) = self.vars.iter().rev().find(|(n, _)| n == name) {
            return v.clone();
        }
        match (name, &self.dot) {
            ("$", Dot::Root(m)) => TValue::Map(BTreeMap::new()).clone_root(m),
            ("$", Dot::Value(v)) => v.clone(),
            _ => TValue::Nil,
        }
    }

    fn arg(&mut self, a: &Arg, pos: Pos) -> Result<TValue, TemplateError> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Sub(p) => self.pipeline(p),
            Arg::Chain(p, fields) => {
                let base = self.pipeline(p)?;
                self.fields(base, fields, pos)
            }
            Arg::Var(name, fields) => {
                let base = self.var(name);
                self.fields(base, fields, pos)
            }
            Arg::Dot(fields) => self.dot_fields(fields, pos),
            Arg::Func(name) => self.call(name, Vec::new(), pos),
        }
    }

    fn dot_fields(&self, fields: &[String], pos: Pos) -> Result<TValue, TemplateError> {
        match (&self.dot, fields.split_first()) {
            (Dot::Root(m), Some((first, rest))) => {
                let Some(v) = m.get(first) else {
                    return Err(
                        self.error(pos, format!("can't evaluate field {first} in type *template.tmplData"))
                    );
                };
                self.fields(v.clone(), rest, pos)
            }
            (Dot::Root(_), None) => Ok(TValue::Str("{Labels, ExternalLabels, ExternalURL, Value}".into())),
            (Dot::Value(v), _) => self.fields(v.clone(), fields, pos),
        }
    }

    fn fields(&self, mut v: TValue, fields: &[String], pos: Pos) -> Result<TValue, TemplateError> {
        for f in fields {
            v = self.field(v, f, Vec::new(), pos)?;
        }
        Ok(v)
    }

    /// Field `f` of `v`, or the result of its method `f` called with `args`.
    fn field(&self, v: TValue, f: &str, args: Vec<TValue>, pos: Pos) -> Result<TValue, TemplateError> {
        let no_args = |v: TValue| -> Result<TValue, TemplateError> {
            if args.is_empty() {
                Ok(v)
            } else {
                Err(self.error(pos, format!("{f} has arguments but cannot be invoked as function")))
            }
        };
        let want = |n: usize| -> Result<(), TemplateError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(self.error(pos, format!("wrong number of args for {f}: want {n} got {}", args.len())))
            }
        };
        let err = |m: String| self.error(pos, format!("error calling {f}: {m}"));
        let cant =
            |v: &TValue| self.error(pos, format!("can't evaluate field {f} in type {}", v.type_name()));
        match v {
            // A missing key of a map[string]string is the zero value, as in Go.
            TValue::Map(m) => no_args(TValue::Str(m.get(f).cloned().unwrap_or_default())),
            TValue::Nil => no_args(TValue::Nil),
            TValue::Kv(ref m) => match f {
                "SortedPairs" => {
                    want(0)?;
                    Ok(pairs_value(m))
                }
                "Names" => {
                    want(0)?;
                    Ok(TValue::strings(sorted_pairs(m).into_iter().map(|(k, _)| k.clone())))
                }
                "Values" => {
                    want(0)?;
                    Ok(TValue::strings(sorted_pairs(m).into_iter().map(|(_, v)| v.clone())))
                }
                "String" => {
                    want(0)?;
                    Ok(TValue::Str(v.to_string()))
                }
                "Remove" => {
                    want(1)?;
                    let keys = args[0].as_strings().map_err(err)?;
                    let mut kept = (**m).clone();
                    for k in &keys {
                        kept.remove(k);
                    }
                    Ok(TValue::Kv(Arc::new(kept)))
                }
                _ if self.dialect == Dialect::Alertmanager => {
                    no_args(TValue::Str(m.get(f).cloned().unwrap_or_default()))
                }
                _ => Err(cant(&v)),
            },
            TValue::List(kind, ref items) => match (kind, f) {
                (ListKind::Pairs, "Names" | "Values") => {
                    want(0)?;
                    let index = usize::from(f == "Values");
                    Ok(TValue::strings(items.iter().filter_map(|p| match p {
                        TValue::Struct(s) => s.fields.get(index).map(|(_, v)| v.to_string()),
                        _ => None,
                    })))
                }
                (ListKind::Pairs, "String") => {
                    want(0)?;
                    Ok(TValue::Str(v.to_string()))
                }
                (ListKind::Alerts, "Firing" | "Resolved") => {
                    want(0)?;
                    let status = if f == "Firing" { "firing" } else { "resolved" };
                    let kept = items
                        .iter()
                        .filter(|a| match a {
                            TValue::Struct(s) => s
                                .fields
                                .iter()
                                .any(|(n, v)| *n == "Status" && matches!(v, TValue::Str(v) if v == status)),
                            _ => false,
                        })
                        .cloned()
                        .collect();
                    Ok(TValue::List(ListKind::Plain, Arc::new(kept)))
                }
                _ => Err(cant(&v)),
            },
            TValue::Struct(ref s) => match s.fields.iter().find(|(n, _)| *n == f) {
                Some((_, field)) => no_args(field.clone()),
                None => Err(cant(&v)),
            },
            TValue::Time(t) => match f {
                "Format" => {
                    want(1)?;
                    let layout = args[0].as_str().map_err(err)?;
                    Ok(TValue::Str(super::template_time::format(t, layout)))
                }
                "Unix" => {
                    want(0)?;
                    Ok(TValue::Int(super::template_time::unix(t)))
                }
                "UTC" | "Local" => {
                    want(0)?;
                    Ok(TValue::Time(t))
                }
                "IsZero" => {
                    want(0)?;
                    Ok(TValue::Bool(t.is_none()))
                }
                "String" => {
                    want(0)?;
                    Ok(TValue::Str(v.to_string()))
                }
                _ => Err(cant(&v)),
            },
            other => Err(cant(&other)),
        }
    }

    fn command(&mut self, cmd: &[Arg], piped: Option<TValue>, pos: Pos) -> Result<TValue, TemplateError> {
        let Some((first, rest)) = cmd.split_first() else {
            return Ok(TValue::Nil);
        };
        let mut args = Vec::with_capacity(rest.len() + 1);
        match first {
            Arg::Func(name) => {
                for a in rest {
                    args.push(self.arg(a, pos)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                self.call(name, args, pos)
            }
            // A method given arguments: `.CommonLabels.Remove .GroupLabels.Names`, `.StartsAt.Format "..."`.
            Arg::Dot(fields) | Arg::Var(_, fields) | Arg::Chain(_, fields)
                if self.dialect == Dialect::Alertmanager
                    && !fields.is_empty()
                    && (!rest.is_empty() || piped.is_some()) =>
            {
                for a in rest {
                    args.push(self.arg(a, pos)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                let (method, path) = fields.split_last().expect("fields is not empty");
                let receiver = match first {
                    Arg::Var(name, _) => {
                        let base = self.var(name);
                        self.fields(base, path, pos)?
                    }
                    Arg::Chain(p, _) => {
                        let base = self.pipeline(p)?;
                        self.fields(base, path, pos)?
                    }
                    _ => self.dot_fields(path, pos)?,
                };
                self.field(receiver, method, args, pos)
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
            "safeHtml" if self.dialect == Dialect::Alertmanager => {
                want(1)?;
                TValue::Html(args[0].as_str().map_err(err)?.to_owned())
            }
            "trimSpace" | "safeUrl" => {
                want(1)?;
                let s = args[0].as_str().map_err(err)?;
                // `safeUrl` marks a URL as trusted by html/template's scheme filter; here it stays a string,
                // so in an HTML attribute a scheme other than http(s) or mailto is still filtered out.
                TValue::Str(if name == "trimSpace" { s.trim() } else { s }.to_owned())
            }
            "urlUnescape" => {
                want(1)?;
                TValue::Str(query_unescape(args[0].as_str().map_err(err)?).map_err(err)?)
            }
            "join" => {
                want(2)?;
                let sep = args[0].as_str().map_err(err)?;
                TValue::Str(args[1].as_strings().map_err(err)?.join(sep))
            }
            "stringSlice" => {
                let mut items = Vec::with_capacity(args.len());
                for a in &args {
                    items.push(a.as_str().map_err(err)?.to_owned());
                }
                TValue::strings(items)
            }
            "date" => {
                want(2)?;
                let layout = args[0].as_str().map_err(err)?;
                let TValue::Time(t) = args[1] else {
                    return Err(err(format!(
                        "wrong type for value; expected time.Time; got {}",
                        args[1].type_name()
                    )));
                };
                TValue::Str(super::template_time::format(t, layout))
            }
            "title" if self.dialect == Dialect::Alertmanager => {
                want(1)?;
                TValue::Str(title_case(args[0].as_str().map_err(err)?))
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
                    TValue::Str(s) | TValue::Html(s) => TValue::Int(s.len() as i64),
                    TValue::Map(m) => TValue::Int(m.len() as i64),
                    TValue::Kv(m) => TValue::Int(m.len() as i64),
                    TValue::List(_, l) => TValue::Int(l.len() as i64),
                    other => return Err(err(format!("len of type {}", other.type_name()))),
                }
            }
            "index" => {
                want(2)?;
                match &args[0] {
                    TValue::Map(m) => TValue::Str(m.get(&str_arg(&args[1])).cloned().unwrap_or_default()),
                    TValue::Kv(m) => TValue::Str(m.get(&str_arg(&args[1])).cloned().unwrap_or_default()),
                    TValue::List(_, l) => match &args[1] {
                        TValue::Int(i) if *i >= 0 && (*i as usize) < l.len() => l[*i as usize].clone(),
                        TValue::Int(i) => {
                            return Err(err(format!("error calling index: index out of range: {i}")));
                        }
                        other => {
                            return Err(err(format!(
                                "cannot index slice/array with type {}",
                                other.type_name()
                            )));
                        }
                    },
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
        // `template.HTML` is a string kind, which Go compares as a string.
        (TValue::Str(x) | TValue::Html(x), TValue::Str(y) | TValue::Html(y)) => Ok(x.cmp(y)),
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

/// Alertmanager's `title` (`cases.Title`): each word's first letter upper-cased, the rest lower-cased.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if !in_word && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        in_word = c.is_alphanumeric() || c == '\'' || c == '_';
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(|| format!("invalid URL escape {:?}", &s[i..]))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("invalid URL escape \"%{hex}\""))?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// `SortedPairs` as a value: a `Pairs` list of `Pair{Name, Value}` structs.
fn pairs_value(kv: &BTreeMap<String, String>) -> TValue {
    let pairs = sorted_pairs(kv)
        .into_iter()
        .map(|(k, v)| {
            TValue::Struct(Arc::new(Struct {
                type_name: "template.Pair",
                fields: vec![("Name", TValue::Str(k.clone())), ("Value", TValue::Str(v.clone()))],
            }))
        })
        .collect();
    TValue::List(ListKind::Pairs, Arc::new(pairs))
}

/// HTML comments, which `html/template` drops from a template's text.
fn strip_html_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        match rest[start + 4..].find("-->") {
            Some(end) => rest = &rest[start + 4 + end + 3..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Escapes `v` for where it lands after `out` in an HTML document, as `html/template` does: in a URL
/// attribute (`href`, `src`, ...) a URL with another scheme than http(s)/mailto becomes `#ZgotmplZ` and
/// the rest is percent-encoded where URLs need it; everywhere, `& < > " ' +` and NUL are escaped.
/// `safeHtml` values pass unchanged in text.
fn html_escape_in_context(out: &str, v: &TValue) -> String {
    // Only the end of the output decides the context; a tag is never this long, and looking no further
    // keeps long outputs linear.
    let mut start = out.len().saturating_sub(4096);
    while !out.is_char_boundary(start) {
        start += 1;
    }
    let out = &out[start..];
    let in_tag = match (out.rfind('<'), out.rfind('>')) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    };
    let url_attr = in_tag && {
        let tag = &out[out.rfind('<').unwrap_or(0)..];
        let mut quote: Option<char> = None;
        let mut attr = String::new();
        let mut name = String::new();
        for c in tag.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => {
                    quote = Some(c);
                    attr = std::mem::take(&mut name);
                }
                None if c.is_alphanumeric() || c == '-' || c == '_' || c == ':' => name.push(c),
                None if c == '=' => {}
                None => name.clear(),
            }
        }
        quote.is_some()
            && matches!(attr.to_ascii_lowercase().as_str(), "href" | "src" | "action" | "cite" | "background")
    };
    let text = match v {
        TValue::Html(s) if !in_tag => return s.clone(),
        other => other.to_string(),
    };
    let text = if url_attr {
        let scheme = text.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        let safe = match scheme {
            Some(s) if !s.contains(['/', '?', '#']) => matches!(s.as_str(), "http" | "https" | "mailto"),
            _ => true,
        };
        if !safe {
            return "#ZgotmplZ".into();
        }
        let mut normalized = String::with_capacity(text.len());
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~!#$&*+,/:;=?@[]%()'".contains(&b) {
                normalized.push(char::from(b));
            } else {
                normalized.push_str(&format!("%{b:02x}"));
            }
        }
        normalized
    } else {
        text
    };
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&#34;"),
            '\'' => escaped.push_str("&#39;"),
            '+' => escaped.push_str("&#43;"),
            '\0' => escaped.push('\u{FFFD}'),
            c => escaped.push(c),
        }
    }
    escaped
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
            ('v', a) => a.to_string(),
            // Strings, and values with a `String` method or a composite form (`KV`, slices, times).
            ('s', a) if !matches!(a, TValue::Int(_) | TValue::Float(_) | TValue::Bool(_) | TValue::Nil) => {
                a.to_string()
            }
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
