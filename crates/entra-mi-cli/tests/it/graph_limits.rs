//! End-to-end: the built `entra-mi perms list` against a purpose-built Microsoft Graph on
//! 127.0.0.1 that answers oversized, endless or non-JSON listings. The token comes from the
//! emulator; the command must stop at its limits with a clear message and exit 1, never panic
//! or buffer without bound.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common;

use entra_mi_emulator::{Emulator, Identity};

/// The CLI's limit on one Graph response body (`MAX_BODY` in `src/graph.rs`).
const PAGE_LIMIT: usize = 16 * 1024 * 1024;
/// The CLI's limit on the bodies of one listing, all pages together (`MAX_LISTING`).
const LISTING_LIMIT: usize = 64 * 1024 * 1024;
/// The body is written in pieces of this size, so the server never holds more.
const PIECE: usize = 64 * 1024;
/// The fake Graph serves at most this many connections (one request each).
const MAX_CONNECTIONS: usize = 16;
/// At most this many pages of the paged listing.
const MAX_SERVED_PAGES: usize = 8;
/// Each of its pages is this large: under [`PAGE_LIMIT`], but five of them pass
/// [`LISTING_LIMIT`].
const PAGED_SIZE: usize = 15 * 1024 * 1024;

/// How the fake Graph answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// `PAGE_LIMIT + 1` bytes, chunked (no `Content-Length`).
    OversizedChunked,
    /// `PAGE_LIMIT + 1` bytes with a `Content-Length` saying so.
    OversizedDeclared,
    /// An HTML page with `200 OK`.
    Html,
    /// Valid pages of [`PAGED_SIZE`] bytes, each with an `@odata.nextLink` to the next.
    EndlessPages,
}

/// A one-thread-per-connection HTTP/1.1 server on 127.0.0.1 port 0 that answers every request
/// as `answer` says and records each request line and whether it carried a bearer token.
struct FakeGraph {
    base: String,
    requests: Arc<Mutex<Vec<(String, bool)>>>,
}

impl FakeGraph {
    fn start(answer: Answer) -> FakeGraph {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (origin, log) = (base.clone(), requests.clone());
        std::thread::spawn(move || {
            // Bounded: the test makes a handful of requests; the thread ends with the process.
            for stream in listener.incoming().take(MAX_CONNECTIONS) {
                let Ok(stream) = stream else { continue };
                let (origin, log) = (origin.clone(), log.clone());
                std::thread::spawn(move || serve(stream, answer, &origin, &log));
            }
        });
        FakeGraph { base, requests }
    }

    fn requests(&self) -> Vec<(String, bool)> {
        self.requests.lock().unwrap().clone()
    }
}

/// The request head (at most 16 KiB), or `None` if the client sent none.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
    }
    None
}

/// Writes `len` bytes: `prefix`, then `a` padding, then `suffix`, [`PIECE`] bytes at a time
/// (as HTTP chunks when `chunked`). Stops at the first write error: the client hung up.
fn write_body(
    stream: &mut TcpStream,
    prefix: &[u8],
    suffix: &[u8],
    len: usize,
    chunked: bool,
) -> std::io::Result<()> {
    let pad = len - prefix.len() - suffix.len();
    let piece = vec![b'a'; PIECE];
    let mut send = |bytes: &[u8]| -> std::io::Result<()> {
        if chunked {
            write!(stream, "{:x}\r\n", bytes.len())?;
            stream.write_all(bytes)?;
            stream.write_all(b"\r\n")
        } else {
            stream.write_all(bytes)
        }
    };
    send(prefix)?;
    let mut left = pad;
    while left > 0 {
        let n = left.min(PIECE);
        send(&piece[..n])?;
        left -= n;
    }
    send(suffix)?;
    if chunked {
        stream.write_all(b"0\r\n\r\n")?;
    }
    stream.flush()
}

fn serve(mut stream: TcpStream, answer: Answer, origin: &str, log: &Mutex<Vec<(String, bool)>>) {
    let timeout = Some(Duration::from_secs(30));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let line = head.lines().next().unwrap_or_default().to_owned();
    let bearer = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization: bearer "));
    log.lock().unwrap().push((line.clone(), bearer));
    // Errors below mean the client hung up, which is what the limits are for.
    let _ = match answer {
        Answer::OversizedChunked => stream
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                  Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            )
            .and_then(|()| {
                write_body(
                    &mut stream,
                    b"{\"value\":[{\"id\":\"",
                    b"\"}]}",
                    PAGE_LIMIT + 1,
                    true,
                )
            }),
        Answer::OversizedDeclared => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            PAGE_LIMIT + 1
        )
        .and_then(|()| {
            write_body(
                &mut stream,
                b"{\"value\":[{\"id\":\"",
                b"\"}]}",
                PAGE_LIMIT + 1,
                false,
            )
        }),
        Answer::Html => {
            let body = "<html><body><h1>502 Bad Gateway</h1></body></html>";
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
        }
        Answer::EndlessPages => {
            // `GET /v1.0/servicePrincipals?...&$skiptoken=N`; the first page has none.
            let page: usize = line
                .split("skiptoken=")
                .nth(1)
                .and_then(|rest| rest.split([' ', '&']).next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            if page > MAX_SERVED_PAGES {
                return;
            }
            let prefix = format!(r#"{{"value":[{{"id":"sp-{page}","displayName":"x","pad":""#);
            let suffix = format!(
                r#""}}],"@odata.nextLink":"{origin}/v1.0/servicePrincipals?$skiptoken={}"}}"#,
                page + 1
            );
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {PAGED_SIZE}\r\nConnection: close\r\n\r\n"
            )
            .and_then(|()| {
                write_body(
                    &mut stream,
                    prefix.as_bytes(),
                    suffix.as_bytes(),
                    PAGED_SIZE,
                    false,
                )
            })
        }
    };
}

struct Out {
    code: i32,
    stderr: String,
}

/// `entra-mi perms list --identity orders-api` with the emulator's system-assigned identity as
/// the administrator and `graph` as Microsoft Graph.
async fn perms_list(emu: &Emulator, graph: &FakeGraph) -> Out {
    let env = vec![
        ("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host()),
        ("ENTRA_MI_GRAPH_URL", graph.base.clone()),
    ];
    tokio::task::spawn_blocking(move || {
        let mut cmd = common::entra_mi(&env);
        // Only the emulator and the fake Graph, both on 127.0.0.1, are to be contacted.
        for v in ["http_proxy", "https_proxy", "all_proxy", "ALL_PROXY"] {
            cmd.env_remove(v);
        }
        let out = cmd
            .args(["perms", "list", "--identity", "orders-api"])
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

async fn emulator() -> Emulator {
    Emulator::builder()
        .system_assigned(Some(Identity::system_assigned()))
        .identity(Identity::user_assigned("orders-api"))
        .start()
        .await
        .unwrap()
}

/// A clean failure: exit 1, `expected` in the message, no panic, the query (which holds the
/// name looked up) left out, and the request made with the emulator's token.
fn assert_refused(out: &Out, graph: &FakeGraph, expected: &[&str]) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for e in expected {
        assert!(out.stderr.contains(e), "missing {e:?} in: {}", out.stderr);
    }
    assert!(
        out.stderr
            .contains(&format!("{}/v1.0/servicePrincipals?…", graph.base)),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("orders-api"), "{}", out.stderr);
    let requests = graph.requests();
    assert!(!requests.is_empty());
    for (line, bearer) in &requests {
        assert!(line.starts_with("GET /v1.0/servicePrincipals?"), "{line}");
        assert!(bearer, "no bearer token on {line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_page_over_the_limit_is_refused_with_the_limit_named() {
    let emu = emulator().await;
    let graph = FakeGraph::start(Answer::OversizedChunked);
    let out = perms_list(&emu, &graph).await;
    assert_refused(
        &out,
        &graph,
        &["HTTP 200 answer from", "larger than the 16 MiB limit"],
    );
    assert!(!out.stderr.contains("Content-Length"), "{}", out.stderr);
    assert_eq!(graph.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declared_content_length_over_the_limit_is_refused_up_front() {
    let emu = emulator().await;
    let graph = FakeGraph::start(Answer::OversizedDeclared);
    let out = perms_list(&emu, &graph).await;
    assert_refused(
        &out,
        &graph,
        &[
            "larger than the 16 MiB limit",
            &format!("(Content-Length: {})", PAGE_LIMIT + 1),
        ],
    );
    assert_eq!(graph.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_adding_up_past_the_listing_limit_are_refused() {
    let emu = emulator().await;
    let graph = FakeGraph::start(Answer::EndlessPages);
    let out = perms_list(&emu, &graph).await;
    // Four pages fit in 64 MiB; the fifth does not.
    let page = LISTING_LIMIT / PAGED_SIZE + 1;
    assert_refused(
        &out,
        &graph,
        &[
            "passed the 64 MiB limit on a whole listing",
            &format!("at page {page}"),
        ],
    );
    assert_eq!(graph.requests().len(), page);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_html_page_is_refused_saying_where() {
    let emu = emulator().await;
    let graph = FakeGraph::start(Answer::Html);
    let out = perms_list(&emu, &graph).await;
    assert_refused(
        &out,
        &graph,
        &["(Content-Type: text/html) is not JSON", "line 1 column 1"],
    );
    assert_eq!(graph.requests().len(), 1);
}
