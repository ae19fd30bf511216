//! The accept loop: hyper HTTP/1.1 connections driving the axum router, with a per-connection
//! handle that lets a handler drop its connection without answering, and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower_service::Service as _;

/// How long a shutdown waits for in-flight requests (delayed ones) before cutting them off.
const GRACE: Duration = Duration::from_secs(2);

/// Inserted into every request's extensions: lets a handler close its connection.
#[derive(Clone)]
pub(crate) struct ConnCtl {
    kill: Arc<Notify>,
}

impl ConnCtl {
    /// Drops the connection this request arrived on, without a response, and never returns.
    pub(crate) async fn hang_up<T>(&self) -> T {
        self.kill.notify_one();
        std::future::pending().await
    }
}

/// Resolves once shutdown was asked for (or the emulator handle is gone).
pub(crate) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // An error means every sender is gone: the `Emulator` was dropped. Shut down too.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Serves `router` on `listener` until shutdown.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_conn(stream, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = shutdown_requested(&mut shutdown) => break,
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        conns.abort_all();
    }
}

pub(crate) async fn serve_conn<S>(stream: S, router: Router, mut shutdown: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let ctl = ConnCtl { kill: kill.clone() };
    let svc = hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
        req.extensions_mut().insert(ctl.clone());
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            // Dropping the connection future closes the socket without a response.
            () = kill.notified() => break,
            () = shutdown_requested(&mut shutdown), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
