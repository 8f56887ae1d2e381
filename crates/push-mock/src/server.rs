//! The listener: accepts TCP on 127.0.0.1, does the TLS handshake
//! (ALPN `h2` / `http/1.1`) and serves each connection with hyper's
//! auto (HTTP/1.1 or HTTP/2) server. Stopping the accept task drops its
//! `JoinSet`, which aborts every open connection too.

use crate::app::App;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// Concurrent HTTP/2 streams allowed per connection (Apple allows 1000).
const MAX_STREAMS: u32 = 1000;

/// Binds `addr` with `SO_REUSEADDR` (so a restart can take the same port
/// back at once). Must run inside a tokio runtime.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Spawns the accept loop on the current runtime.
pub(crate) fn spawn(listener: TcpListener, acceptor: TlsAcceptor, app: Arc<App>) -> AbortHandle {
    tokio::spawn(accept_loop(listener, acceptor, app)).abort_handle()
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, app: Arc<App>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    connections.spawn(connection(tcp, acceptor.clone(), Arc::clone(&app)));
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(tcp: TcpStream, acceptor: TlsAcceptor, app: Arc<App>) {
    let _ = tcp.set_nodelay(true);
    let tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        Err(_) => {
            app.lock().tls_failures += 1;
            return;
        }
    };
    let client_cert = tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.serve(request, client_cert).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http2().max_concurrent_streams(MAX_STREAMS);
    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
}
