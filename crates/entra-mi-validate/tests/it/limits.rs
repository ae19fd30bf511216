//! Bodies without a declared length are capped while they stream in, and a body that stops
//! half-way counts against the request timeout: a purpose-built authority on loopback that
//! answers its documents normally and its key set as the case says.

use std::net::SocketAddr;
use std::time::Duration;

use entra_mi_validate::{Check, MAX_DOCUMENT_BYTES, TokenValidator};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const TENANT: &str = "4e7a1f2c-5b3d-4c8e-9a61-0d2f3b4c5e6f";

#[derive(Clone, Copy)]
enum Keys {
    /// `Transfer-Encoding: chunked`, over the cap in 64 KiB chunks, no `Content-Length`.
    ChunkedOversized,
    /// The headers and half the body, then nothing (the connection stays open).
    Stalls,
}

/// Serves at most `max_connections` connections, then stops.
async fn authority(keys: Keys, max_connections: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..max_connections {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(serve(stream, addr, keys));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream, addr: SocketAddr, keys: Keys) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
    let document = |body: serde_json::Value| {
        let body = body.to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let answer = if path == format!("/{TENANT}/v2.0/.well-known/openid-configuration") {
        document(json!({
            "issuer": format!("http://{addr}/{TENANT}/v2.0"),
            "jwks_uri": format!("http://{addr}/keys"),
        }))
    } else if path == format!("/{TENANT}/.well-known/openid-configuration") {
        document(json!({ "issuer": format!("https://sts.windows.net/{TENANT}/") }))
    } else if path == "/keys" {
        match keys {
            Keys::ChunkedOversized => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b' '; 64 * 1024];
                // Twice the cap at most: the client stops reading long before.
                for _ in 0..(2 * MAX_DOCUMENT_BYTES / chunk.len()) {
                    let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
                    frame.extend_from_slice(&chunk);
                    frame.extend_from_slice(b"\r\n");
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
                return;
            }
            Keys::Stalls => {
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"keys\": [";
                let _ = stream.write_all(answer.as_bytes()).await;
                // Hold the connection open, bounded, without answering the rest.
                tokio::time::sleep(Duration::from_secs(20)).await;
                return;
            }
        }
    } else {
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
    };
    let _ = stream.write_all(answer.as_bytes()).await;
}

fn validator(addr: SocketAddr, timeout: Duration) -> TokenValidator {
    TokenValidator::builder()
        .authority(format!("http://{addr}"))
        .audience("api://orders")
        .tenant(TENANT)
        .request_timeout(timeout)
        .build()
        .unwrap()
}

/// A well-formed RS256 token naming a key (its signature is never reached).
fn token() -> String {
    let b64 = |v: serde_json::Value| {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "kid": "k1"})),
        b64(json!({"aud": "api://orders", "tid": TENANT, "exp": 4_102_444_800_i64}))
    )
}

#[tokio::test]
async fn a_key_set_streamed_without_a_length_is_capped() {
    let addr = authority(Keys::ChunkedOversized, 8).await;
    let v = validator(addr, Duration::from_secs(10));
    let e = v.validate(&token()).await.unwrap_err();
    assert_eq!(e.check(), Check::Discovery, "{e}");
    assert!(
        e.detail()
            .contains(&format!("the body is over {MAX_DOCUMENT_BYTES} bytes")),
        "{e}"
    );
}

#[tokio::test]
async fn a_key_set_that_stops_half_way_times_out() {
    let addr = authority(Keys::Stalls, 8).await;
    let v = validator(addr, Duration::from_millis(300));
    let e = v.validate(&token()).await.unwrap_err();
    assert_eq!(e.check(), Check::Discovery, "{e}");
    assert!(
        e.detail().contains("no complete answer within 0.3 s"),
        "{e}"
    );
    assert!(e.detail().contains("/keys"), "{e}");
}
