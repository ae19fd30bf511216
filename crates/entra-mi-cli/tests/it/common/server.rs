//! A purpose-built HTTP/1.1 server on `127.0.0.1:0` that answers every request with one
//! canned response and records what it was asked (request line, whether an `Authorization`
//! header came), for answers no real service would give and for proving that nothing was
//! sent.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes of a request that are read.
const MAX_REQUEST: usize = 64 * 1024;

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET /path?query HTTP/1.1`.
    pub request_line: String,
    /// True when the request carried an `Authorization` header.
    pub authorization: bool,
}

/// The running server; it stops with the test's runtime.
pub struct Canned {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Canned {
    /// Answers every request with `status`, `content_type` and `body`.
    pub async fn start(status: u16, content_type: &'static str, body: String) -> Canned {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let response = Arc::new(format!(
            "HTTP/1.1 {status} Canned\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                let response = response.clone();
                tokio::spawn(async move {
                    if let Some(seen) = answer(stream, response.as_bytes()).await {
                        log.lock().unwrap().push(seen);
                    }
                });
            }
        });
        Canned { url, seen }
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request (head and declared body, bounded) and writes `response`.
async fn answer(mut stream: TcpStream, response: &[u8]) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut authorization = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("authorization") {
            authorization = true;
        }
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap_or(0).min(MAX_REQUEST);
        }
    }
    let mut body = buf.len() - head_end;
    while body < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body += n;
    }
    let _ = stream.write_all(response).await;
    let _ = stream.shutdown().await;
    Some(Seen {
        request_line,
        authorization,
    })
}
