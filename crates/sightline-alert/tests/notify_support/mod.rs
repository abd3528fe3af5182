//! Local peers for the receiver tests: an HTTP server that records requests and answers as scripted,
//! and an SMTP sink that captures messages. Hand-written on tokio's TCP so that the tests need no HTTP
//! or SMTP server crate; they speak just enough of each protocol for the clients under test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
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
        Self::start_with(script, false).await
    }

    /// An HTTPS server with a fresh self-signed certificate.
    pub async fn start_tls(script: Vec<Reply>) -> Self {
        Self::start_with(script, true).await
    }

    async fn start_with(script: Vec<Reply>, tls: bool) -> Self {
        let acceptor = self_signed_acceptor();
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
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if !tls {
                        let _ = serve(stream, recorded, notify, script).await;
                    } else if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = serve(stream, recorded, notify, script).await;
                    }
                });
            }
        });
        Self { addr, requests, arrived }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
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

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
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
                reader.get_mut().flush().await?;
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
    /// Whether the message came over TLS (implicit or after STARTTLS).
    pub encrypted: bool,
}

/// How the SMTP sink secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text, no STARTTLS offered.
    None,
    /// Plain text, STARTTLS offered.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// An SMTP server that advertises AUTH PLAIN LOGIN (and STARTTLS when asked to) and captures what it
/// is sent; TLS uses a fresh self-signed certificate. Recipients in `reject` get a permanent 550.
#[derive(Debug, Clone)]
pub struct SmtpSink {
    pub addr: SocketAddr,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start(reject: Vec<String>) -> Self {
        Self::start_with(reject, SmtpTls::None).await
    }

    pub async fn start_with(reject: Vec<String>, tls: SmtpTls) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a local port");
        let addr = listener.local_addr().expect("local address");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let recorded = mails.clone();
        let acceptor = self_signed_acceptor();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (recorded, reject, acceptor) = (recorded.clone(), reject.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let mut mail = Mail::default();
                    let _ = match tls {
                        SmtpTls::Implicit => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                mail.encrypted = true;
                                smtp_session(stream, &mut mail, true, false, &recorded, &reject)
                                    .await
                                    .map(drop)
                            }
                            Err(e) => Err(e),
                        },
                        SmtpTls::None | SmtpTls::StartTls => {
                            let offer = tls == SmtpTls::StartTls;
                            match smtp_session(stream, &mut mail, true, offer, &recorded, &reject).await {
                                Ok(Some(stream)) => match acceptor.accept(stream).await {
                                    Ok(stream) => {
                                        mail.encrypted = true;
                                        smtp_session(stream, &mut mail, false, false, &recorded, &reject)
                                            .await
                                            .map(drop)
                                    }
                                    Err(e) => Err(e),
                                },
                                other => other.map(drop),
                            }
                        }
                    };
                });
            }
        });
        Self { addr, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

/// A TLS acceptor with a self-signed certificate for 127.0.0.1 and localhost.
fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    let key = rcgen::KeyPair::generate().expect("a key");
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate params");
    let cert = params.self_signed(&key).expect("a self-signed certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("a server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Speaks SMTP on `stream` until QUIT; returns the stream when the client asked for STARTTLS.
async fn smtp_session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    mail: &mut Mail,
    greet: bool,
    offer_starttls: bool,
    mails: &Mutex<Vec<Mail>>,
    reject: &[String],
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    // After STARTTLS the client speaks first (EHLO again), so only a new connection is greeted.
    if greet {
        stream.get_mut().write_all(b"220 sink ESMTP ready\r\n").await?;
        stream.get_mut().flush().await?;
    }
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" | "HELO" => {
                mail.ehlo = command[4..].trim().to_owned();
                let starttls = if offer_starttls { "250-STARTTLS\r\n" } else { "" };
                format!("250-sink\r\n{starttls}250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n")
            }
            "STARTTLS" if offer_starttls => {
                stream.get_mut().write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
                return Ok(Some(stream.into_inner()));
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
                        return Ok(None);
                    }
                    if data_line == ".\r\n" {
                        break;
                    }
                    data.push_str(&data_line);
                }
                mail.data = data;
                let encrypted = mail.encrypted;
                mails.lock().expect("lock").push(std::mem::take(mail));
                mail.encrypted = encrypted;
                "250 2.0.0 Ok: queued\r\n".into()
            }
            "RSET" | "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "QUIT" => {
                stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
                stream.get_mut().flush().await?;
                return Ok(None);
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        stream.get_mut().write_all(reply.as_bytes()).await?;
        stream.get_mut().flush().await?;
    }
}
