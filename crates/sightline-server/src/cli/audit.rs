//! `sightline audit search|export|import|verify`: the audit API from the command line.

use std::io::{BufRead, Write};
use std::process::ExitCode;

/// Exit code when the server cannot be reached.
const UNREACHABLE: u8 = 3;

#[derive(Debug, clap::Args)]
pub(super) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
    /// The server's base URL.
    #[arg(long, global = true, value_name = "URL", default_value = "http://127.0.0.1:9750")]
    server: String,
    /// An API token (for import, and for reads when `audit.protect_reads` is on).
    #[arg(long, global = true, env = "SIGHTLINE_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Search, newest first: `sightline audit search 'actor:alice action:auth.* since:1h'`.
    Search {
        /// The query (see the README's audit section): filters like `actor:alice` and free text.
        query: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Count matching events by a field (actor, actor_type, action, target_type, outcome, severity,
        /// component) instead of listing them.
        #[arg(long, value_name = "FIELD")]
        count_by: Option<String>,
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write events as JSON Lines to standard output (all of them in chain order, or those matching a query).
    Export {
        /// Only events matching this query.
        query: Option<String>,
    },
    /// Send JSON Lines events (a file, or `-` for standard input) to the server, durably, in batches.
    Import {
        /// The file.
        file: String,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
    /// Check the hash chain. Exit code: 0 intact, 1 a problem found, 3 unreachable.
    Verify {
        /// Print the server's JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(args: &AuditArgs) -> ExitCode {
    let client = match super::ApiClient::new(&args.server, args.token.clone()) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.command {
        AuditCommand::Search { query, limit, count_by, json } => {
            search(&client, query.as_deref(), *limit, count_by.as_deref(), *json)
        }
        AuditCommand::Export { query } => export(&client, query.as_deref()),
        AuditCommand::Import { file, batch } => import(&client, file, *batch),
        AuditCommand::Verify { json } => verify(&client, *json),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

fn search(
    client: &super::ApiClient,
    query: Option<&str>,
    limit: usize,
    count_by: Option<&str>,
    json: bool,
) -> Result<u8, (u8, String)> {
    let mut params = vec![("limit", limit.to_string())];
    if let Some(query) = query {
        params.push(("q", query.to_owned()));
    }
    if let Some(field) = count_by {
        params.push(("count_by", field.to_owned()));
    }
    let body = client.json(client.request(reqwest::Method::GET, "/api/v1/audit/events").query(&params))?;
    if json {
        println!("{body}");
        return Ok(0);
    }
    if count_by.is_some() {
        for row in body["data"]["counts"].as_array().into_iter().flatten() {
            println!("{:>10}  {}", row["count"], row["value"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let events = body["data"]["events"].as_array().cloned().unwrap_or_default();
    if events.is_empty() {
        println!("no events match");
        return Ok(0);
    }
    println!("{:<27}  {:<16}  {:<20}  {:<8}  MESSAGE", "TIME", "ACTOR", "ACTION", "OUTCOME");
    for event in &events {
        let mut message = event["message"].as_str().unwrap_or_default().replace('\n', " ");
        if message.chars().count() > 70 {
            message = message.chars().take(67).collect::<String>() + "...";
        }
        println!(
            "{:<27}  {:<16}  {:<20}  {:<8}  {}",
            event["timestamp"].as_str().unwrap_or("?"),
            event["actor"]["id"].as_str().unwrap_or("?"),
            event["action"].as_str().unwrap_or("?"),
            event["outcome"].as_str().unwrap_or("?"),
            message
        );
    }
    if let Some(cursor) = body["data"]["next_cursor"].as_str() {
        println!("(more: add --limit, or use the API with cursor={cursor})");
    }
    Ok(0)
}

fn export(client: &super::ApiClient, query: Option<&str>) -> Result<u8, (u8, String)> {
    let mut request = client.request(reqwest::Method::GET, "/api/v1/audit/export");
    if let Some(query) = query {
        request = request.query(&[("q", query)]);
    }
    client.runtime.block_on(async {
        let mut response =
            request.send().await.map_err(|e| (UNREACHABLE, format!("cannot reach {}: {e}", client.base)))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err((1, format!("HTTP {status}: {text}")));
        }
        let mut stdout = std::io::stdout().lock();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| (1, format!("the export broke off: {e}")))?
        {
            stdout.write_all(&chunk).map_err(|e| (1, format!("cannot write: {e}")))?;
        }
        Ok(0)
    })
}

fn import(client: &super::ApiClient, file: &str, batch: usize) -> Result<u8, (u8, String)> {
    let reader: Box<dyn BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let opened = std::fs::File::open(file).map_err(|e| (1, format!("cannot open {file}: {e}")))?;
        Box::new(std::io::BufReader::new(opened))
    };
    let mut lines = Vec::new();
    let mut sent = 0usize;
    let mut first_line = 1usize;
    let send = |lines: &mut Vec<String>, first_line: usize| -> Result<usize, (u8, String)> {
        let body = lines.join("\n");
        let request = client
            .request(reqwest::Method::POST, "/api/v1/audit/events")
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        let answer = client.json(request).map_err(|(code, message)| {
            (
                code,
                format!("{message} (in the batch starting at line {first_line}; earlier batches are stored)"),
            )
        })?;
        let n = answer["data"]["count"].as_u64().unwrap_or(0) as usize;
        lines.clear();
        Ok(n)
    };
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| (1, format!("cannot read {file}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        if lines.is_empty() {
            first_line = number + 1;
        }
        lines.push(line);
        if lines.len() >= batch.max(1) {
            sent += send(&mut lines, first_line)?;
        }
    }
    if !lines.is_empty() {
        sent += send(&mut lines, first_line)?;
    }
    println!("imported {sent} events");
    Ok(0)
}

fn verify(client: &super::ApiClient, json: bool) -> Result<u8, (u8, String)> {
    let body = client.json(client.request(reqwest::Method::GET, "/api/v1/audit/verify"))?;
    let data = &body["data"];
    let ok = data["ok"].as_bool().unwrap_or(false);
    if json {
        println!("{body}");
    } else if ok {
        println!(
            "ok: {} events verified (from seq {} to {})",
            data["checked"], data["from_seq"], data["head_seq"]
        );
    } else {
        let problem = &data["problem"];
        println!(
            "TAMPERED: {} at seq {} (event {}): {}; {} events checked",
            problem["kind"].as_str().unwrap_or("?"),
            problem["seq"],
            problem["id"].as_str().unwrap_or("-"),
            problem["detail"].as_str().unwrap_or(""),
            data["checked"]
        );
    }
    Ok(if ok { 0 } else { 1 })
}
