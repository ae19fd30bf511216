//! A credential keeps one pooled HTTP client, so sequential token requests travel
//! over one kept-alive TCP connection instead of opening a socket each (socket and SNAT
//! exhaustion on App Service, Functions and Container Apps).
//!
//! The server here is purpose-built: HTTP/1.1 with keep-alive (it answers every request of a
//! connection, with a `Content-Length`, and never closes first), counting the TCP connections
//! it accepts and the requests it answers. A credential that built a client (hence a pool) per
//! request, or whose answers could not be read to their end, would show one connection per
//! request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entra_mi::credentials::ClientSecretCredential;
use entra_mi::{
    Audience, Environment, ManagedIdentityCredential, RetryOptions, TokenCredential, TokenRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Token requests made per credential.
const CALLS: usize = 5;
/// Requests answered on one connection before the server closes it (bounds every loop).
const MAX_REQUESTS_PER_CONNECTION: usize = 64;
/// Largest request head or body read.
const MAX_REQUEST: usize = 64 * 1024;

/// The keep-alive server.
struct KeepAliveServer {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    /// The request line of every request (`POST /tenant/oauth2/v2.0/token HTTP/1.1`).
    lines: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAliveServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeepAliveServer {
    /// Starts on 127.0.0.1:0, answering every request with `200` and `body` (JSON).
    async fn start(body: serde_json::Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(body.to_string());
        let (c, r, l) = (connections.clone(), requests.clone(), lines.clone());
        let task = tokio::spawn(async move {
            let mut handlers = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (r, l, body) = (r.clone(), l.clone(), body.clone());
                handlers.spawn(async move {
                    let _ = serve(stream, &r, &l, &body).await;
                });
            }
        });
        Self {
            addr,
            connections,
            requests,
            lines,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn request_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Answers the requests of one connection in turn until the client closes it.
async fn serve(
    mut stream: TcpStream,
    requests: &AtomicUsize,
    lines: &Mutex<Vec<String>>,
    body: &str,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        // The head.
        let head_end = loop {
            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            if buf.len() > MAX_REQUEST {
                return Ok(());
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(()); // the client closed the connection
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if len > MAX_REQUEST {
            return Ok(());
        }
        // The body.
        while buf.len() < head_end + len {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..head_end + len);
        let line = head.split("\r\n").next().unwrap_or("").to_owned();
        lines.lock().unwrap().push(line);
        requests.fetch_add(1, Ordering::SeqCst);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await?;
    }
    Ok(())
}

fn graph() -> TokenRequest {
    TokenRequest::new(Audience::microsoft_graph())
}

/// Makes [`CALLS`] sequential token requests with `credential`, then checks they all went to
/// `server`, to a path starting with `path`, over a single connection.
async fn assert_one_connection(
    credential: &dyn TokenCredential,
    server: &KeepAliveServer,
    path: &str,
) {
    for i in 0..CALLS {
        let token = credential
            .get_token(&graph())
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert!(token.secret().starts_with("t."), "call {i}");
        // Token requests are minutes apart in real life: give the pool a moment to take the
        // connection back, as it would have there, so the next call finds it idle.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A connection opened late (in the background) would show up here.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.requests(), CALLS, "{}", credential.name());
    for line in server.request_lines() {
        let target = line.split(' ').nth(1).unwrap_or("");
        assert!(target.starts_with(path), "{line:?} is not for {path}");
    }
    assert_eq!(
        server.connections(),
        1,
        "{}: {CALLS} requests should travel over one kept-alive connection",
        credential.name()
    );
}

/// A managed-identity answer: every value a string, like IMDS.
fn managed_identity_body() -> serde_json::Value {
    serde_json::json!({
        "access_token": "t.managed-identity",
        "expires_in": "3599",
        "token_type": "Bearer"
    })
}

#[tokio::test]
async fn imds_reuses_its_connection() {
    let server = KeepAliveServer::start(managed_identity_body()).await;
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([(
            "AZURE_POD_IDENTITY_AUTHORITY_HOST",
            server.url(),
        )]))
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();
    assert_eq!(
        credential.source_kind(),
        entra_mi::managed_identity::SourceKind::Imds
    );
    assert_one_connection(&credential, &server, "/metadata/identity/oauth2/token?").await;
}

#[tokio::test]
async fn app_service_reuses_its_connection() {
    let server = KeepAliveServer::start(managed_identity_body()).await;
    let credential = ManagedIdentityCredential::builder()
        .environment(Environment::from_vars([
            ("IDENTITY_ENDPOINT", format!("{}/msi/token", server.url())),
            ("IDENTITY_HEADER", "identity-header-value".to_owned()),
        ]))
        .retry(RetryOptions::default().max_retries(0))
        .build()
        .unwrap();
    assert_eq!(
        credential.source_kind(),
        entra_mi::managed_identity::SourceKind::AppService
    );
    assert_one_connection(&credential, &server, "/msi/token?").await;
}

#[tokio::test]
async fn client_secret_reuses_its_connection() {
    let server = KeepAliveServer::start(serde_json::json!({
        "access_token": "t.client-secret",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "token_type": "Bearer"
    }))
    .await;
    let credential = ClientSecretCredential::builder(
        "contoso.onmicrosoft.com",
        "11111111-2222-3333-4444-555555555555",
        "client-secret-value",
    )
    .authority_host(server.url())
    .allow_loopback_http(true)
    .build()
    .unwrap();
    assert_one_connection(
        &credential,
        &server,
        "/contoso.onmicrosoft.com/oauth2/v2.0/token",
    )
    .await;
}

/// The control: the server does tell one connection per request from a reused one. What the
/// credentials would do if they built an HTTP client (hence a pool) per request shows up as
/// [`CALLS`] connections, and what they must do as one.
#[tokio::test]
async fn the_server_counts_a_client_per_request_as_a_connection_per_request() {
    let server = KeepAliveServer::start(managed_identity_body()).await;
    let url = format!("{}/metadata/identity/oauth2/token?x=1", server.url());
    for _ in 0..CALLS {
        let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = fresh.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    assert_eq!((server.requests(), server.connections()), (CALLS, CALLS));

    let server = KeepAliveServer::start(managed_identity_body()).await;
    let url = format!("{}/metadata/identity/oauth2/token?x=1", server.url());
    let shared = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..CALLS {
        let response = shared.get(&url).send().await.unwrap();
        response.bytes().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!((server.requests(), server.connections()), (CALLS, 1));
}
