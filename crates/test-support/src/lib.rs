//! Helpers shared by the workspace's integration tests: a small scripted HTTP server on
//! 127.0.0.1:0, speaking raw HTTP/1.1 so a test can answer with anything (malformed bodies,
//! hangs, dropped connections), a protected API that validates the emulator's tokens
//! ([`downstream`]), executable stand-ins ([`script`]) and JWT helpers.
//!
//! A development dependency of the crates whose tests use it; never published.

pub mod downstream;
pub mod script;

/// A loopback port that refuses connections for as long as this value lives: its socket is
/// bound but not listening. (A port bound and then released may be handed to the next server
/// a concurrent test starts, which would then answer the "refused" request.)
pub struct RefusedPort {
    _socket: tokio::net::TcpSocket,
    /// The address; connecting to it is refused.
    pub addr: SocketAddr,
}

impl RefusedPort {
    /// Binds 127.0.0.1:0 without listening.
    // Binding a socket is an action, not a default value.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind 127.0.0.1:0");
        let addr = socket.local_addr().expect("the bound address");
        Self {
            _socket: socket,
            addr,
        }
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Collects everything a `tracing` subscriber writes (use it as the subscriber's writer).
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// What was written so far, as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status, headers and body.
    Http {
        /// The status code.
        status: u16,
        /// Header names and values, in order.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Bytes written verbatim, then the connection is closed.
    Raw(Vec<u8>),
    /// Close the connection without answering.
    Close,
    /// Never answer (until the server is dropped).
    Hang,
    /// Announce `total` bytes of JSON body and stream them (bounded memory).
    Huge {
        /// The body's length in bytes.
        total: usize,
    },
    /// Wait, then answer.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    /// A JSON body with `status`.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Reply::Http {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
    /// A body of `content_type` with `status`.
    pub fn body(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Reply::Http {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
    /// Adds a header (to an `Http` reply; other replies are left as they are).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Http { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The first query parameter named `name`, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// The server. Replies are taken from the script in order; when it is empty, `fallback`.
pub struct RawServer {
    /// The listening address.
    pub addr: SocketAddr,
    script: Arc<Mutex<VecDeque<Reply>>>,
    fallback: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawServer {
    /// Starts a server on 127.0.0.1:0 that answers with queued replies, then with `fallback`.
    pub async fn start(fallback: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let fallback = Arc::new(Mutex::new(fallback));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, f, r) = (script.clone(), fallback.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, f, r) = (s.clone(), f.clone(), r.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, s, f, r).await;
                });
            }
        });
        Self {
            addr,
            script,
            fallback,
            requests,
            task,
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) {
        self.script.lock().unwrap().push_back(reply);
    }

    /// Replaces the answer given once the queue is empty.
    pub fn set_fallback(&self, reply: Reply) {
        *self.fallback.lock().unwrap() = reply;
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

async fn serve(
    mut stream: TcpStream,
    script: Arc<Mutex<VecDeque<Reply>>>,
    fallback: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    requests.lock().unwrap().push(Recorded {
        method,
        target,
        headers,
        body,
    });
    let reply = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| fallback.lock().unwrap().clone());
    let reply = match reply {
        Reply::Delayed(d, inner) => {
            tokio::time::sleep(d).await;
            *inner
        }
        other => other,
    };
    match reply {
        Reply::Delayed(..) => {}
        Reply::Http {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (n, v) in headers {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Reply::Raw(bytes) => stream.write_all(&bytes).await?,
        Reply::Close => {}
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Huge { total } => {
            let head =
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(b"{\"access_token\":\"").await?;
            let block = vec![b'a'; 16 * 1024];
            let mut sent = 0;
            while sent < total {
                if stream.write_all(&block).await.is_err() {
                    break; // the client stopped reading: that is the point
                }
                sent += block.len();
            }
        }
    }
    let _ = stream.shutdown().await;
    Ok(())
}

/// The claims of a JWT, decoded without verification (tests only).
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A token body in the IMDS shape (all strings) expiring `lifetime` from `now_unix`. Its
/// `resource` is left out (the answer is then not judged against the request's): the tests
/// using it ask for several audiences; the echo check has tests of its own.
pub fn imds_body(token: &str, now_unix: u64, lifetime: u64) -> serde_json::Value {
    serde_json::json!({
        "access_token": token,
        "refresh_token": "",
        "expires_in": lifetime.to_string(),
        "expires_on": (now_unix + lifetime).to_string(),
        "not_before": now_unix.to_string(),
        "token_type": "Bearer"
    })
}

/// Polls `cond` every 5 ms for at most `secs` seconds of real time.
pub async fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 200 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// A managed-identity credential (IMDS) pointed at the emulator, without retries.
pub fn emulator_credential(
    emulator: &entra_mi_emulator::Emulator,
) -> entra_mi::ManagedIdentityCredential {
    entra_mi::ManagedIdentityCredential::builder()
        .environment(entra_mi::Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            emulator.imds_host(),
        )]))
        .retry(entra_mi::RetryOptions::default().max_retries(0))
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}
