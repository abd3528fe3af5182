//! `sightline alerts`, `sightline silence add|list|expire` and `sightline ack`: the alerting API from the
//! command line.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::ApiClient;

/// Exit code when the server cannot be reached.
const UNREACHABLE: u8 = 3;

#[derive(Debug, clap::Args)]
pub(super) struct ServerArgs {
    /// The server's base URL.
    #[arg(long, global = true, value_name = "URL", default_value = "http://127.0.0.1:9750")]
    server: String,
    /// An API token (writes need one).
    #[arg(long, global = true, env = "SIGHTLINE_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct AlertsArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the server's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct SilenceArgs {
    #[command(subcommand)]
    command: SilenceCommand,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum SilenceCommand {
    /// Silence alerts matching every matcher: `sightline silence add 'alertname="DiskFull"' 'env=~"prod.*"'`.
    Add {
        /// Matchers in Alertmanager's syntax: name="value", name!="value", name=~"regex", name!~"regex".
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long the silence lasts (Prometheus duration).
        #[arg(long, default_value = "1h")]
        duration: String,
        /// Who creates it.
        #[arg(long, env = "USER")]
        author: String,
        /// Why.
        #[arg(long)]
        comment: String,
    },
    /// List silences (active and pending first).
    List {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Expire a silence now.
    Expire {
        /// The silence's id.
        id: String,
    },
}

#[derive(Debug, clap::Args)]
pub(super) struct AckArgs {
    /// The alert's fingerprint (16 hex digits; `sightline alerts` shows it).
    fingerprint: String,
    /// Who acknowledges it.
    #[arg(long, env = "USER")]
    by: String,
    /// A note for the history.
    #[arg(long, default_value = "")]
    comment: String,
    #[command(flatten)]
    server: ServerArgs,
}

fn client(args: &ServerArgs) -> Result<ApiClient, (u8, String)> {
    ApiClient::new(&args.server, args.token.clone()).map_err(|e| (UNREACHABLE, e))
}

/// A JSON request body (reqwest is built without its `json` feature).
fn json_body(request: reqwest::RequestBuilder, body: &Value) -> reqwest::RequestBuilder {
    request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string())
}

fn finish(result: Result<u8, (u8, String)>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

pub(super) fn alerts(args: &AlertsArgs) -> ExitCode {
    finish((|| {
        let client = client(&args.server)?;
        let body = client.json(client.request(reqwest::Method::GET, "/api/v1/alerts"))?;
        if args.json {
            println!("{body}");
            return Ok(0);
        }
        print!("{}", render_alerts(&body["data"]["alerts"]));
        Ok(0)
    })())
}

/// One row per alert: name, state, since, fingerprint, other labels.
pub(super) fn render_alerts(alerts: &Value) -> String {
    let empty = Vec::new();
    let alerts = alerts.as_array().unwrap_or(&empty);
    if alerts.is_empty() {
        return "(no alerts)\n".to_owned();
    }
    let mut rows = vec![[
        "ALERTNAME".to_owned(),
        "STATE".to_owned(),
        "ACTIVE SINCE".to_owned(),
        "FINGERPRINT".to_owned(),
        "LABELS".to_owned(),
    ]];
    for alert in alerts {
        let labels = alert["labels"].as_object();
        let name = labels.and_then(|l| l.get("alertname")).and_then(Value::as_str).unwrap_or("");
        let rest: Vec<String> = labels
            .map(|l| {
                l.iter()
                    .filter(|(k, _)| k.as_str() != "alertname")
                    .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or("")))
                    .collect()
            })
            .unwrap_or_default();
        let mut state = alert["state"].as_str().unwrap_or("").to_owned();
        if let Some(by) = alert["ackedBy"].as_str() {
            state.push_str(&format!(" (acked by {by})"));
        }
        rows.push([
            name.to_owned(),
            state,
            alert["activeAt"].as_str().unwrap_or("").to_owned(),
            alert["fingerprint"].as_str().unwrap_or("").to_owned(),
            rest.join(", "),
        ]);
    }
    table(&rows)
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| if i + 1 == N { cell.clone() } else { format!("{cell:<w$}", w = widths[i]) })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn silence(args: &SilenceArgs) -> ExitCode {
    finish((|| {
        let client = client(&args.server)?;
        match &args.command {
            SilenceCommand::Add { matchers, duration, author, comment } => {
                let body = json!({
                    "matchers": matchers,
                    "duration": duration,
                    "createdBy": author,
                    "comment": comment,
                });
                let answer = client
                    .json(json_body(client.request(reqwest::Method::POST, "/api/v1/silences"), &body))?;
                println!("{}", answer["data"]["silenceID"].as_str().unwrap_or(""));
                Ok(0)
            }
            SilenceCommand::List { json } => {
                let body = client.json(client.request(reqwest::Method::GET, "/api/v1/silences"))?;
                if *json {
                    println!("{body}");
                    return Ok(0);
                }
                print!("{}", render_silences(&body["data"]));
                Ok(0)
            }
            SilenceCommand::Expire { id } => {
                client.json(client.request(reqwest::Method::DELETE, &format!("/api/v1/silences/{id}")))?;
                println!("expired {id}");
                Ok(0)
            }
        }
    })())
}

/// One row per silence: id, state, ends, matchers, author and comment.
pub(super) fn render_silences(silences: &Value) -> String {
    let empty = Vec::new();
    let silences = silences.as_array().unwrap_or(&empty);
    if silences.is_empty() {
        return "(no silences)\n".to_owned();
    }
    let mut rows = vec![[
        "ID".to_owned(),
        "STATE".to_owned(),
        "ENDS".to_owned(),
        "MATCHERS".to_owned(),
        "BY".to_owned(),
    ]];
    for silence in silences {
        let matchers: Vec<String> = silence["matchers"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|m| {
                let op =
                    match (m["isEqual"].as_bool().unwrap_or(true), m["isRegex"].as_bool().unwrap_or(false)) {
                        (true, false) => "=",
                        (false, false) => "!=",
                        (true, true) => "=~",
                        (false, true) => "!~",
                    };
                format!("{}{op}{:?}", m["name"].as_str().unwrap_or(""), m["value"].as_str().unwrap_or(""))
            })
            .collect();
        rows.push([
            silence["id"].as_str().unwrap_or("").to_owned(),
            silence["status"]["state"].as_str().unwrap_or("").to_owned(),
            silence["endsAt"].as_str().unwrap_or("").to_owned(),
            matchers.join(", "),
            format!(
                "{}: {}",
                silence["createdBy"].as_str().unwrap_or(""),
                silence["comment"].as_str().unwrap_or("")
            ),
        ]);
    }
    table(&rows)
}

pub(super) fn ack(args: &AckArgs) -> ExitCode {
    finish((|| {
        let client = client(&args.server)?;
        let body = json!({ "by": args.by, "comment": args.comment });
        let path = format!("/api/v1/alerts/{}/ack", args.fingerprint);
        client.json(json_body(client.request(reqwest::Method::POST, &path), &body))?;
        println!("acknowledged {} as {}", args.fingerprint, args.by);
        Ok(0)
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_and_silences_print_as_tables() {
        let alerts = json!([{
            "labels": {"alertname": "DiskFull", "severity": "critical"},
            "state": "firing", "activeAt": "2026-11-30T06:00:00Z", "fingerprint": "0123456789abcdef",
            "ackedBy": "ann",
        }]);
        let text = render_alerts(&alerts);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("ALERTNAME  STATE                  ACTIVE SINCE"), "{text}");
        assert_eq!(
            lines[1],
            "DiskFull   firing (acked by ann)  2026-11-30T06:00:00Z  0123456789abcdef  severity=\"critical\""
        );
        assert_eq!(render_alerts(&json!([])), "(no alerts)\n");
        let silences = json!([{
            "id": "abc", "status": {"state": "active"}, "endsAt": "2026-11-30T07:00:00Z",
            "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true},
                         {"name": "env", "value": "prod.*", "isRegex": true, "isEqual": true}],
            "createdBy": "ann", "comment": "maintenance",
        }]);
        let text = render_silences(&silences);
        assert!(text.contains(r#"alertname="DiskFull", env=~"prod.*""#), "{text}");
        assert!(text.contains("ann: maintenance"), "{text}");
    }
}
