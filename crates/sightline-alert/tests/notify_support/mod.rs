//! Local peers for the receiver tests: an HTTP server that records requests and answers as scripted,
//! and an SMTP sink that captures messages. Hand-written on tokio's TCP so that the tests need no HTTP
//! or SMTP server crate; they speak just enough of each protocol for the clients under test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }
}

/// How the server answers a request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// An HTTP/1.1 server on a free local port. It answers requests with the scripted replies in order,
/// then with 200 once the script is used up.
#[derive(Debug, Clone)]
pub struct HttpServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    arrived: Arc<Notify>,
}

impl HttpServer {
    pub async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let script = Arc::new(Mutex::new(script.into_iter()));
        let (recorded, notify) = (requests.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (recorded, notify, script) = (recorded.clone(), notify.clone(), script.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, recorded, notify, script).await;
                });
            }
        });
        Self { addr, requests, arrived }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// Waits until `n` requests have arrived (or `timeout` passes) and returns all of them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let requests = self.requests();
            if requests.len() >= n || tokio::time::Instant::now() >= deadline {
                return requests;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

async fn serve(
    stream: TcpStream,
    recorded: Arc<Mutex<Vec<Request>>>,
    arrived: Arc<Notify>,
    script: Arc<Mutex<std::vec::IntoIter<Reply>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        recorded.lock().expect("lock").push(Request { method, path, headers, body });
        arrived.notify_waiters();
        let reply = script.lock().expect("lock").next().unwrap_or(Reply::Status(200));
        match reply {
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(120)).await;
                return Ok(());
            }
            Reply::Status(status) => {
                let body = if status == 200 { "ok" } else { "scripted failure" };
                let response = format!(
                    "HTTP/1.1 {status} Scripted\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                reader.get_mut().write_all(response.as_bytes()).await?;
            }
        }
    }
}

/// One message the SMTP sink accepted.
#[derive(Clone, Debug, Default)]
pub struct Mail {
    pub ehlo: String,
    /// The `AUTH` command line, if any.
    pub auth: Option<String>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

/// An SMTP server that advertises AUTH PLAIN LOGIN (no STARTTLS) and captures what it is sent.
/// Recipients in `reject` get a permanent 550.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start(reject: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let recorded = mails.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (recorded, reject) = (recorded.clone(), reject.clone());
                tokio::spawn(async move {
                    let _ = smtp_session(stream, recorded, reject).await;
                });
            }
        });
        Self { addr, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

async fn smtp_session(
    stream: TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
    reject: Vec<String>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(b"220 sink ESMTP ready\r\n").await?;
    let mut mail = Mail::default();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" | "HELO" => {
                mail.ehlo = command[4..].trim().to_owned();
                "250-sink\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n".into()
            }
            "AUTH" => {
                mail.auth = Some(command.clone());
                "235 2.7.0 Authentication successful\r\n".into()
            }
            "MAIL" => {
                mail.mail_from = command.clone();
                "250 2.1.0 Ok\r\n".into()
            }
            "RCPT" => {
                if reject.iter().any(|r| command.contains(r.as_str())) {
                    "550 5.1.1 No such user\r\n".into()
                } else {
                    mail.rcpt_to.push(command.clone());
                    "250 2.1.5 Ok\r\n".into()
                }
            }
            "DATA" => {
                stream.get_mut().write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mut data = String::new();
                loop {
                    let mut data_line = String::new();
                    if stream.read_line(&mut data_line).await? == 0 {
                        return Ok(());
                    }
                    if data_line == ".\r\n" {
                        break;
                    }
                    data.push_str(&data_line);
                }
                mail.data = data;
                mails.lock().expect("lock").push(std::mem::take(&mut mail));
                "250 2.0.0 Ok: queued\r\n".into()
            }
            "RSET" | "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        stream.get_mut().write_all(reply.as_bytes()).await?;
    }
}
