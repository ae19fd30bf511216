//! The TLS listeners (Service Fabric's, and the Key Vault's when one is configured): a
//! self-signed certificate generated at start (`rcgen`) for the given names, served with
//! `tokio-rustls`. Service Fabric clients pin its SHA-1 thumbprint; Key Vault clients trust
//! the certificate itself (its PEM).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::EmulatorError;
use crate::server::{serve_conn, shutdown_requested};

/// A bound TLS listener, its certificate's thumbprint and its URL.
pub(crate) struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    /// The bound address (`127.0.0.1:<port>`).
    pub(crate) addr: std::net::SocketAddr,
    /// `https://127.0.0.1:<port>`.
    pub(crate) base_url: String,
    /// SHA-1 of the certificate, uppercase hex.
    pub(crate) thumbprint: String,
    /// The certificate, PEM.
    pub(crate) cert_pem: String,
}

/// Binds `127.0.0.1:0` with a new self-signed certificate for `names` (DNS names or IP
/// addresses).
pub(crate) async fn bind(names: &[&str]) -> Result<TlsListener, EmulatorError> {
    let tls_err = |e: String| EmulatorError::KeyGeneration(format!("TLS certificate: {e}"));
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| tls_err(e.to_string()))?;
    let cert_pem = certified.cert.pem();
    let cert_der = certified.cert.der().clone();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        cert_der.as_ref(),
    );
    let thumbprint: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls_err(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(vec![cert_der], key_der)
    .map_err(|e| tls_err(e.to_string()))?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(EmulatorError::Bind)?;
    let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
    Ok(TlsListener {
        listener,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        addr,
        base_url: format!("https://{addr}"),
        thumbprint,
        cert_pem,
    })
}

/// Serves `router` over TLS until shutdown. A failed handshake (a client that rejects the
/// certificate) just ends that connection.
pub(crate) async fn serve(tls: TlsListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = tls.listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let acceptor = tls.acceptor.clone();
                    let router = router.clone();
                    let shutdown = shutdown.clone();
                    conns.spawn(async move {
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                        {
                            serve_conn(stream, router, shutdown).await;
                        }
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = shutdown_requested(&mut shutdown) => break,
        }
    }
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
    }
}
