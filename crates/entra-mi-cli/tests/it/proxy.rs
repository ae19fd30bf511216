//! Managed-identity endpoints are never reached through an HTTP proxy (IMDS does not support
//! proxies, and a proxy would see the identity header): the built binary, with every proxy
//! variable pointing at a loopback "proxy" that counts connections, still gets its token
//! straight from the emulator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common;

use entra_mi_emulator::{Emulator, Endpoint};
use tokio::io::AsyncWriteExt;

/// A loopback listener that counts connections and answers each with `502`.
async fn counting_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let _ = stream
                .write_all(
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
        }
    });
    (url, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn managed_identity_requests_bypass_every_proxy_variable() {
    let emu = Emulator::builder().start().await.unwrap();
    let (proxy, connections) = counting_proxy().await;
    let mut env: Vec<(&str, String)> = vec![("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.imds_host())];
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
    ] {
        env.push((var, proxy.clone()));
    }
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = common::entra_mi(&env);
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
        cmd.args([
            "token",
            "--resource",
            "https://management.azure.com/",
            "--timeout",
            "10",
        ])
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The default chain's probe, then the token request.
    assert_eq!(emu.requests(Endpoint::Imds), 2, "{stderr}");
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the proxy was used");
}
