//! `sightline query 'EXPR'`: a PromQL query against a running server, printed as a table.

use std::process::ExitCode;

use serde_json::Value;

/// Exit code when the server cannot be reached.
const UNREACHABLE: u8 = 3;

#[derive(Debug, clap::Args)]
pub(super) struct QueryArgs {
    /// The PromQL expression, e.g. `sum by (job) (rate(http_requests_total[5m]))`.
    expr: String,
    /// Evaluation time: Unix seconds or RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    /// The server's base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9750")]
    server: String,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: &QueryArgs) -> ExitCode {
    let base = args.server.trim_end_matches('/');
    let mut url = match reqwest::Url::parse(&format!("{base}/api/v1/query")) {
        Ok(url) => url,
        Err(err) => {
            eprintln!("error: invalid --server {:?}: {err}", args.server);
            return ExitCode::from(UNREACHABLE);
        }
    };
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("query", &args.expr);
        if let Some(time) = &args.time {
            pairs.append_pair("time", time);
        }
    }
    let (status, body) = match super::fetch_json_blocking(url.as_str()) {
        Ok(answer) => answer,
        Err(err) => {
            eprintln!("error: {base}: {err}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    if body["status"] != "success" {
        eprintln!(
            "error: {} (HTTP {status}): {}",
            body["errorType"].as_str().unwrap_or("error"),
            body["error"].as_str().unwrap_or("the server refused the query")
        );
        return ExitCode::FAILURE;
    }
    if args.json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    print!("{}", render(&body["data"]));
    ExitCode::SUCCESS
}

/// A Prometheus `data` object as a table: one row per series (or one row for a scalar or string).
pub(super) fn render(data: &Value) -> String {
    let empty = Vec::new();
    let result = &data["result"];
    let mut rows: Vec<(String, String)> = Vec::new();
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => rows.push(("(scalar)".to_owned(), point(result))),
        Some("vector") => {
            for sample in result.as_array().unwrap_or(&empty) {
                rows.push((series_name(&sample["metric"]), point(&sample["value"])));
            }
        }
        Some("matrix") => {
            for series in result.as_array().unwrap_or(&empty) {
                let points: Vec<String> =
                    series["values"].as_array().unwrap_or(&empty).iter().map(point).collect();
                rows.push((series_name(&series["metric"]), points.join("  ")));
            }
        }
        _ => return format!("{data}\n"),
    }
    if rows.is_empty() {
        return "(no data)\n".to_owned();
    }
    let width = rows.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0).max("SERIES".len());
    let mut out = format!("{:<width$}  VALUE\n", "SERIES");
    for (name, value) in rows {
        out.push_str(&format!("{name:<width$}  {value}\n"));
    }
    out
}

/// `name{a="1", b="2"}`, as Prometheus prints a series.
fn series_name(metric: &Value) -> String {
    let Some(map) = metric.as_object() else { return "{}".to_owned() };
    let name = map.get("__name__").and_then(Value::as_str).unwrap_or("");
    let labels: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or("")))
        .collect();
    if labels.is_empty() && !name.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", labels.join(", "))
    }
}

/// `value @ time` from a `[time, "value"]` pair.
fn point(pair: &Value) -> String {
    let value = pair[1].as_str().unwrap_or("?");
    match pair[0].as_f64() {
        Some(t) => format!("{value} @{t}"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_print_one_row_per_series() {
        let data = json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "node"}, "value": [1700000000, "1"]},
            {"metric": {}, "value": [1700000000.5, "0.25"]},
        ]});
        let text = render(&data);
        assert_eq!(
            text,
            "SERIES          VALUE\nup{job=\"node\"}  1 @1700000000\n{}              0.25 @1700000000.5\n"
        );
        assert_eq!(render(&json!({"resultType": "vector", "result": []})), "(no data)\n");
        assert_eq!(
            render(&json!({"resultType": "scalar", "result": [1, "2"]})),
            "SERIES    VALUE\n(scalar)  2 @1\n"
        );
    }
}
