//! Notification templates, as Alertmanager renders receiver fields: Go templates executed with
//! Alertmanager's data (`.Receiver`, `.Status`, `.Alerts`, `.GroupLabels`, `.CommonLabels`,
//! `.CommonAnnotations`, `.ExternalURL`) against its default named templates (`slack.default.title`,
//! `email.default.html`, ...), Sightline's few replacements of them, and the files of the configuration's
//! `templates:` globs.
//!
//! The language is [`crate::rules::template`]'s, in its Alertmanager dialect.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::model::{AlertStatus, Notification};
use crate::rules::template::{Dialect, ListKind, Struct, TValue, Template, TemplateError, TemplateSet};

/// The files Alertmanager parses before any of `templates:`, then Sightline's.
const BUILTIN: [(&str, &str); 3] = [
    ("default.tmpl", include_str!("templates/default.tmpl")),
    ("email.tmpl", include_str!("templates/email.tmpl")),
    ("sightline.tmpl", include_str!("templates/sightline.tmpl")),
];

/// Why the templates of `templates:` could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateLoadError {
    #[error("{pattern:?} is not a valid glob: {message}; fix the pattern")]
    Glob { pattern: String, message: String },
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    /// A file does not parse, or calls a template nobody defines; the error names the file and line.
    #[error("{0}")]
    Template(#[from] TemplateError),
}

/// The named templates receivers render their fields with: Alertmanager's defaults, Sightline's, and the
/// files of `templates:`. Cheap to clone.
#[derive(Clone)]
pub struct Templates {
    inner: Arc<Inner>,
}

struct Inner {
    set: TemplateSet,
    /// The globs the files came from and each file's path and text (what equality compares).
    globs: Vec<String>,
    files: Vec<(PathBuf, String)>,
}

// === impl Templates ===

impl Templates {
    /// Alertmanager's default templates and Sightline's, without any file of `templates:`.
    pub fn builtin() -> Self {
        static BUILTIN_SET: OnceLock<Templates> = OnceLock::new();
        BUILTIN_SET
            .get_or_init(|| {
                let mut set = TemplateSet::default();
                for (name, text) in BUILTIN {
                    set.add_file(name, text).expect("the built-in templates parse (tested)");
                }
                Templates { inner: Arc::new(Inner { set, globs: Vec::new(), files: Vec::new() }) }
            })
            .clone()
    }

    /// The built-in templates plus the files the `globs` match, in the globs' order (each glob's files
    /// sorted), read now; later definitions replace earlier ones of the same name. Relative globs are
    /// relative to the working directory. A glob that matches nothing adds nothing, as in Alertmanager.
    pub fn load(globs: &[String]) -> Result<Self, TemplateLoadError> {
        let mut files = Vec::new();
        for pattern in globs {
            let paths = glob::glob(pattern)
                .map_err(|e| TemplateLoadError::Glob { pattern: pattern.clone(), message: e.to_string() })?;
            let mut matched = Vec::new();
            for path in paths {
                let path = path.map_err(|e| TemplateLoadError::Read {
                    path: e.path().to_owned(),
                    message: e.error().to_string(),
                })?;
                if path.is_file() {
                    matched.push(path);
                }
            }
            matched.sort();
            for path in matched {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| TemplateLoadError::Read { path: path.clone(), message: e.to_string() })?;
                files.push((path, text));
            }
        }
        Self::from_files(globs.to_vec(), files)
    }

    /// The built-in templates plus `files` (path, text), in order.
    pub fn from_files(globs: Vec<String>, files: Vec<(PathBuf, String)>) -> Result<Self, TemplateLoadError> {
        if files.is_empty() {
            let builtin = Self::builtin();
            return Ok(Self { inner: Arc::new(Inner { set: builtin.inner.set.clone(), globs, files }) });
        }
        let mut set = Self::builtin().inner.set.clone();
        for (path, text) in &files {
            set.add_file(&path.display().to_string(), text)?;
        }
        set.check()?;
        Ok(Self { inner: Arc::new(Inner { set, globs, files }) })
    }

    /// The globs these templates were loaded from.
    pub fn globs(&self) -> &[String] {
        &self.inner.globs
    }

    /// Parses a receiver field's text; `name` names it in errors. Every template it calls must exist.
    pub fn compile(&self, name: &str, text: &str) -> Result<FieldTemplate, TemplateError> {
        let template = self.inner.set.parse(name, text)?;
        let literal = template.is_static().then(|| text.to_owned());
        Ok(FieldTemplate { template: Arc::new(template), literal })
    }

    /// Renders a field for `data` ([`data`] of the notification); `html` escapes as `html/template`.
    pub fn render(&self, field: &FieldTemplate, data: &TValue, html: bool) -> Result<String, TemplateError> {
        if let Some(literal) = &field.literal {
            return Ok(literal.clone());
        }
        self.inner.set.execute(&field.template, data, html)
    }

    /// Renders the named template `name` (as `{{ template "name" . }}` would).
    pub fn render_named(&self, name: &str, data: &TValue, html: bool) -> Result<String, TemplateError> {
        let field = self.compile(name, &format!("{{{{ template {name:?} . }}}}"))?;
        self.render(&field, data, html)
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PartialEq for Templates {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.globs == other.inner.globs && self.inner.files == other.inner.files)
    }
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<_> = self.inner.files.iter().map(|(path, _)| path).collect();
        f.debug_struct("Templates").field("globs", &self.inner.globs).field("files", &files).finish()
    }
}

/// Compiles an optional field: its text, or `default` (a call of a default named template) when unset.
pub(crate) fn compile_or(
    templates: &Templates,
    kind: &str,
    field: &str,
    text: Option<&str>,
    default: &str,
) -> Result<FieldTemplate, crate::model::NotifyError> {
    compile_field(templates, kind, field, text.unwrap_or(default))
}

/// Compiles a field's text; an error names the receiver kind and field.
pub(crate) fn compile_field(
    templates: &Templates,
    kind: &str,
    field: &str,
    text: &str,
) -> Result<FieldTemplate, crate::model::NotifyError> {
    templates.compile(field, text).map_err(|e| {
        crate::model::NotifyError::permanent(format!(
            "{kind} receiver: `{field}` is not a valid template: {e}"
        ))
    })
}

/// Renders a compiled field; an error (which another try would repeat) names the receiver kind.
pub(crate) fn render_field(
    templates: &Templates,
    kind: &str,
    field: &FieldTemplate,
    data: &TValue,
    html: bool,
) -> Result<String, crate::model::NotifyError> {
    templates.render(field, data, html).map_err(|e| {
        crate::model::NotifyError::permanent(format!(
            "{kind} receiver: cannot render a field: {e}; fix the template"
        ))
    })
}

/// A receiver field, parsed.
#[derive(Clone, Debug)]
pub struct FieldTemplate {
    template: Arc<Template>,
    /// The text itself when it has no actions.
    literal: Option<String>,
}

impl FieldTemplate {
    /// The text, when it has no actions (so it renders as itself).
    pub fn literal(&self) -> Option<&str> {
        self.literal.as_deref()
    }
}

/// Parses `text` in Alertmanager's dialect without a set, for checks that need no named templates.
pub fn parse_standalone(name: &str, text: &str) -> Result<(), TemplateError> {
    Template::parse_in(name, text, Dialect::Alertmanager).map(|_| ())
}

/// Alertmanager's template data (`template.Data`) for `notification`. As in Alertmanager, `.Receiver` is
/// the receiver's name with regular-expression metacharacters escaped, and a firing alert's `.EndsAt` is
/// Go's zero time.
pub fn data(notification: &Notification) -> TValue {
    let kv = |set: &BTreeMap<String, String>| TValue::Kv(Arc::new(set.clone()));
    let str = |s: &str| TValue::Str(s.to_owned());
    let alerts = notification
        .alerts
        .iter()
        .map(|(status, alert)| {
            TValue::Struct(Arc::new(Struct {
                type_name: "template.Alert",
                fields: vec![
                    ("Status", str(status.as_str())),
                    ("Labels", kv(&alert.labels)),
                    ("Annotations", kv(&alert.annotations)),
                    ("StartsAt", TValue::Time(Some(alert.starts_at))),
                    (
                        "EndsAt",
                        TValue::Time(if *status == AlertStatus::Resolved { alert.ends_at } else { None }),
                    ),
                    ("GeneratorURL", str(&alert.generator_url)),
                    ("Fingerprint", TValue::Str(alert.fingerprint().to_string())),
                ],
            }))
        })
        .collect();
    TValue::Struct(Arc::new(Struct {
        type_name: "*template.Data",
        fields: vec![
            ("Receiver", TValue::Str(quote_meta(&notification.receiver))),
            ("Status", str(notification.status.as_str())),
            ("Alerts", TValue::List(ListKind::Alerts, Arc::new(alerts))),
            ("GroupLabels", kv(&notification.group_labels)),
            ("CommonLabels", kv(&notification.common_labels)),
            ("CommonAnnotations", kv(&notification.common_annotations)),
            ("ExternalURL", str(&notification.external_url)),
        ],
    }))
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::model::{Alert, LabelSet};

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// Two alerts of a group grouped by `alertname`: one firing, one resolved.
    pub(crate) fn notification() -> Notification {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let alert = |instance: &str, ends: u64| Alert {
            labels: set(&[("alertname", "HighLatency"), ("instance", instance), ("severity", "critical")]),
            annotations: set(&[("summary", &format!("p99 above 1s on {instance}"))]),
            starts_at: at(1_700_000_000),
            ends_at: Some(at(ends)),
            generator_url: "http://sightline:9090/graph?g0.expr=latency".into(),
        };
        Notification {
            receiver: "team-api.pager".into(),
            group_key: "{}:{alertname=\"HighLatency\"}".into(),
            group_labels: set(&[("alertname", "HighLatency")]),
            common_labels: set(&[("alertname", "HighLatency"), ("severity", "critical")]),
            common_annotations: LabelSet::new(),
            status: AlertStatus::Firing,
            alerts: vec![
                (AlertStatus::Firing, alert("a:9090", 1_700_000_600)),
                (AlertStatus::Resolved, alert("b:9090", 1_700_000_300)),
            ],
            truncated_alerts: 0,
            external_url: "http://sightline:9090".into(),
        }
    }

    fn render(text: &str) -> String {
        let templates = Templates::builtin();
        let field = templates.compile("t", text).unwrap_or_else(|e| panic!("{e}"));
        templates.render(&field, &data(&notification()), false).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn alertmanagers_data_and_methods() {
        assert_eq!(
            render("{{ .Receiver }} {{ .Status }} {{ .ExternalURL }}"),
            r"team-api\.pager firing http://sightline:9090"
        );
        assert_eq!(
            render("{{ len .Alerts }} {{ len .Alerts.Firing }} {{ .Alerts.Resolved | len }}"),
            "2 1 1"
        );
        assert_eq!(render("{{ .CommonLabels }}"), "alertname=HighLatency, severity=critical");
        assert_eq!(render("{{ .CommonLabels.SortedPairs.Names | join \",\" }}"), "alertname,severity");
        assert_eq!(render("{{ .CommonLabels.Remove .GroupLabels.Names }}"), "severity=critical");
        assert_eq!(
            render("{{ with .CommonLabels.Remove (stringSlice \"severity\") }}{{ .Values }}{{ end }}"),
            "[HighLatency]"
        );
        assert_eq!(
            render(
                "{{ range .Alerts }}{{ .Labels.instance }}:{{ .Status }}:{{ .StartsAt.Format \"15:04\" }}:{{ .EndsAt.Unix }};{{ end }}"
            ),
            "a:9090:firing:22:13:-62135596800;b:9090:resolved:22:13:1700000300;"
        );
        assert_eq!(
            render("{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}"),
            "alertname=HighLatency severity=critical "
        );
        assert_eq!(
            render("{{ (index .Alerts 1).Fingerprint }}"),
            crate::model::Fingerprint::of(&notification().alerts[1].1.labels).to_string()
        );
        assert_eq!(
            render(
                "{{ title \"hELLO wORLD\" }} {{ trimSpace \"  x \" }} {{ reReplaceAll \"(a+)\" \"<$1>\" \"baac\" }}"
            ),
            "Hello World x b<aa>c"
        );
        assert_eq!(render("{{ if match \"^High\" .CommonLabels.alertname }}yes{{ end }}"), "yes");
        assert_eq!(
            render("{{ define \"mine\" }}[{{ . }}]{{ end }}{{ template \"mine\" .Status }}"),
            "[firing]"
        );
        assert_eq!(
            render("{{ .StartsAt }}"),
            "ERR template: t:1:4: executing \"t\": can't evaluate field StartsAt in type *template.Data"
        );
    }

    #[test]
    fn default_templates_render_as_alertmanagers() {
        let t = Templates::builtin();
        let d = data(&notification());
        assert_eq!(
            t.render_named("__subject", &d, false).as_deref(),
            Ok("[FIRING:1] HighLatency (critical)")
        );
        assert_eq!(
            render("{{ template \"__text_alert_list\" .Alerts.Firing }}"),
            "Labels:\n - alertname = HighLatency\n - instance = a:9090\n - severity = critical\nAnnotations:\n - summary = p99 above 1s on a:9090\nSource: http://sightline:9090/graph?g0.expr=latency\n"
        );
        assert_eq!(t.render_named("slack.default.color", &d, false).as_deref(), Ok("danger"));
        assert_eq!(t.render_named("pagerduty.default.client", &d, false).as_deref(), Ok("Sightline"));
        let html = t.render_named("email.default.html", &d, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(!html.contains("Mailgun"), "html/template drops HTML comments");
        assert!(html.contains("g0.expr=latency"), "{html}");
    }

    #[test]
    fn bad_templates_say_where() {
        let t = Templates::builtin();
        let e = t.compile("title", "{{ .Status").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "template: title:1:1: unclosed action");
        let e = t
            .compile("title", "{{ template \"nosuch\" . }}")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("template \"nosuch\" not defined"), "{e}");
        let e = t.compile("title", "{{ humanize 1 }}").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("function \"humanize\" not defined"), "{e}");
        let e = Templates::from_files(
            vec![],
            vec![("my.tmpl".into(), "\n{{ define \"x\" }}{{ if }}{{ end }}".into())],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.starts_with("template: my.tmpl:2:"), "{e}");
    }
}
