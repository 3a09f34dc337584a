//! HTTP on the IRC port: the WebSocket upgrade, a health check, and a page for
//! people who open the address in a browser.
//!
//! Routes (HTTP/1.1, over plain TCP or TLS):
//! - a WebSocket upgrade on any path: IRC over WebSocket (the IRCv3 `websocket`
//!   extension, [`super::websocket`]); the connection is then handed over like any
//!   IRC connection;
//! - `GET /healthz`: `200 ok` while the process serves at all (liveness), for load
//!   balancers and service managers;
//! - `GET /readyz`: `200` once the store is open and the listeners are up, `503`
//!   before that and once shutdown has begun (readiness);
//! - `GET /metrics`: the Prometheus text exposition ([`crate::metrics`]), only to
//!   peers in `Config::metrics_allow` (loopback by default), `403` to the others;
//! - any other `GET`/`HEAD`: the browser client ([`crate::web`]), or 404;
//! - any other method: 405.
//!
//! Browsers' `Origin` is checked against `--allowed-origins` when that is set (a
//! page elsewhere could otherwise open connections in its visitors' names); with no
//! list every origin is allowed, as IRC itself has no cookies to abuse.
//!
//! Limits: the request head must arrive within the registration timeout and fit in
//! 16 KiB, and a connection that is not upgraded is closed after
//! [`HTTP_CONNECTION_LIFETIME`].

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::opening::Handoff;
use super::websocket::{Framing, WebSocketTransport};
use super::{Opened, Security, Transport};
use crate::config::Config;
use crate::metrics::{self, Status};

/// Longest an HTTP connection that is not upgraded stays open (keep-alive
/// included).
pub(crate) const HTTP_CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Largest request head read.
const MAX_HEAD: usize = 16 * 1024;

/// What the request handler shares with the connection that serves it.
struct Exchange {
    config: Arc<Config>,
    /// The peer's address (for the `/metrics` allow-list).
    ip: IpAddr,
    /// Readiness and metrics.
    status: Arc<dyn Status>,
    /// Taken by the WebSocket upgrade, with the framing its subprotocol chose.
    upgrade: Mutex<Option<(hyper::upgrade::OnUpgrade, Framing)>>,
}

/// Serves HTTP on `io` until the client leaves, the lifetime runs out, or a
/// WebSocket upgrade hands the connection over.
pub(crate) async fn serve<S>(
    io: S,
    ip: IpAddr,
    security: Security,
    config: Arc<Config>,
    status: Arc<dyn Status>,
    handoff: Handoff,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let exchange = Arc::new(Exchange {
        config: Arc::clone(&config),
        ip,
        status,
        upgrade: Mutex::new(None),
    });
    let service = hyper::service::service_fn({
        let exchange = Arc::clone(&exchange);
        move |request| {
            let exchange = Arc::clone(&exchange);
            async move { Ok::<_, Infallible>(respond(request, &exchange).await) }
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.registration_timeout)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    match tokio::time::timeout(HTTP_CONNECTION_LIFETIME, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(peer = %ip, %error, "HTTP connection failed"),
        Err(_) => return,
    }
    let upgrade = exchange
        .upgrade
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let Some((upgrade, framing)) = upgrade else {
        return;
    };
    let upgraded = match upgrade.await {
        Ok(upgraded) => upgraded,
        Err(error) => {
            tracing::debug!(peer = %ip, %error, "WebSocket upgrade failed");
            return;
        }
    };
    let socket = WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Server,
        Some(super::websocket::config()),
    )
    .await;
    let security = Security {
        kind: if security.tls {
            "websocket+tls"
        } else {
            "websocket"
        },
        ..security
    };
    handoff(Opened {
        transport: Transport::WebSocket(Box::new(WebSocketTransport::new(socket, framing))),
        ip,
        security,
        early_input: bytes::BytesMut::new(),
    });
}

async fn respond(mut request: Request<Incoming>, exchange: &Exchange) -> Response<Full<Bytes>> {
    if wants_websocket(&request) {
        return upgrade(&mut request, exchange);
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => plain(StatusCode::OK, "ok\n"),
        (&Method::GET | &Method::HEAD, "/readyz") => {
            if exchange.status.ready() {
                plain(StatusCode::OK, "ready\n")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        (&Method::GET | &Method::HEAD, "/metrics") => scrape(exchange),
        (method @ (&Method::GET | &Method::HEAD), path) => {
            crate::web::respond(&exchange.config.web, method, path, request.headers()).await
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

/// `/metrics`: the exposition for a peer the allow-list names, else 403.
fn scrape(exchange: &Exchange) -> Response<Full<Bytes>> {
    if !exchange.config.metrics_allowed(exchange.ip) {
        tracing::debug!(peer = %exchange.ip, "metrics refused: not in --metrics-allow");
        return plain(StatusCode::FORBIDDEN, "forbidden\n");
    }
    let mut response = Response::new(Full::new(Bytes::from(exchange.status.metrics_text())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn wants_websocket(request: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        request.headers().get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    request.method() == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

/// Answers a WebSocket upgrade (RFC 6455 section 4.2.2) and arranges for the
/// connection to be taken over once the answer is sent.
fn upgrade(request: &mut Request<Incoming>, exchange: &Exchange) -> Response<Full<Bytes>> {
    let headers = request.headers();
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version != "13")
    {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
    };
    let allowed = &exchange.config.allowed_origins;
    if let Some(origin) = headers.get(header::ORIGIN)
        && !allowed.is_empty()
        && !allowed
            .iter()
            .any(|o| origin.to_str().is_ok_and(|v| v.eq_ignore_ascii_case(o)))
    {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let (framing, protocol) = Framing::choose(&offered.join(","));
    let accept = derive_accept_key(key.as_bytes());
    *exchange
        .upgrade
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some((hyper::upgrade::on(request), framing));
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
