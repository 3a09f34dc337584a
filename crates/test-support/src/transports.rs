//! Clients over the server's other transports: TLS (with or without a client
//! certificate), WebSocket (over plain HTTP or TLS) and plain HTTP requests.
//!
//! The TLS client here takes any server certificate and reports its fingerprint:
//! tests check what the server presents, they do not judge it (chat-client's own
//! trust-on-first-use is tested against the real binary).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use futures_util::{SinkExt as _, StreamExt as _};
use palaver_tls::AnyServerCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::{TIMEOUT, TestClient};

/// Any byte stream a test connects (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client certificate and its key, made for a test.
#[derive(Debug)]
pub struct ClientIdentity {
    cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    /// Its SHA-256 fingerprint as the server shows it (lowercase hex).
    pub certfp: String,
}

impl ClientIdentity {
    /// A fresh self-signed client certificate.
    pub fn generate(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("client key");
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .expect("client certificate parameters")
            .self_signed(&key)
            .expect("client certificate");
        let cert = cert.der().clone();
        Self {
            certfp: palaver_tls::certfp(&cert),
            cert,
            key_der: key.serialize_der(),
        }
    }
}

/// A TLS connection to the server, and the SHA-256 fingerprint (uppercase, colon
/// separated, as the server prints it) of the certificate it presented.
pub async fn connect_tls(
    addr: SocketAddr,
    identity: Option<&ClientIdentity>,
    alpn: &[&str],
) -> (tokio_rustls::client::TlsStream<TcpStream>, String) {
    let seen = Arc::new(Mutex::new(None));
    let provider = palaver_tls::ring_provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert::recording(
            provider,
            Arc::clone(&seen),
        )));
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                vec![identity.cert.clone()],
                PrivateKeyDer::try_from(identity.key_der.clone()).expect("client key"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").expect("server name");
    let stream = tokio::time::timeout(TIMEOUT, connector.connect(name, tcp))
        .await
        .expect("TLS handshake in time")
        .expect("TLS handshake");
    let fingerprint = seen
        .lock()
        .expect("fingerprint")
        .clone()
        .expect("the server presented a certificate");
    (stream, fingerprint)
}

impl TestClient {
    /// Connects over TLS (with `identity` as client certificate, if given).
    pub async fn connect_tls(addr: SocketAddr, identity: Option<&ClientIdentity>) -> Self {
        let (stream, _) = connect_tls(addr, identity, &[]).await;
        Self::from_io(stream)
    }
}

/// A WebSocket client connection, as the library sees it (frames and all).
pub type WebSocket = WebSocketStream<Box<dyn Io>>;

/// Opens a WebSocket to the server (over TLS if `tls`), offering `protocols` in
/// that order; returns it with the subprotocol the server chose.
pub async fn connect_websocket(
    addr: SocketAddr,
    protocols: &[&str],
    tls: bool,
) -> (WebSocket, Option<String>) {
    let scheme = if tls { "wss" } else { "ws" };
    let mut request = format!("{scheme}://localhost:{}/", addr.port())
        .into_client_request()
        .expect("request");
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(&protocols.join(", ")).expect("header"),
        );
    }
    let io: Box<dyn Io> = if tls {
        Box::new(connect_tls(addr, None, &["http/1.1"]).await.0)
    } else {
        Box::new(TcpStream::connect(addr).await.expect("connect"))
    };
    let (socket, response) =
        tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, io))
            .await
            .expect("WebSocket handshake in time")
            .expect("WebSocket handshake");
    let protocol = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (socket, protocol)
}

impl TestClient {
    /// A scripted client over `socket`: each line it sends goes as one message
    /// (binary if `binary`, else text), and each message received reads as a line.
    pub fn from_websocket(socket: WebSocket, binary: bool) -> Self {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(pump(socket, theirs, binary));
        Self::from_io(ours)
    }
}

/// Moves lines between the test's end of a pipe and the WebSocket until either
/// side closes.
async fn pump(socket: WebSocket, pipe: tokio::io::DuplexStream, binary: bool) {
    let (mut sink, mut stream) = socket.split();
    let (mut from_test, mut to_test) = tokio::io::split(pipe);
    let up = async move {
        let mut buf = BytesMut::new();
        loop {
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(end + 1);
                let line = line.strip_suffix(b"\n").unwrap_or(&line);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let message = if binary {
                    Message::Binary(bytes::Bytes::copy_from_slice(line))
                } else {
                    Message::Text(String::from_utf8_lossy(line).into_owned().into())
                };
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            match from_test.read_buf(&mut buf).await {
                Ok(1..) => {}
                _ => {
                    let _ = sink.close().await;
                    return;
                }
            }
        }
    };
    let down = async move {
        while let Some(Ok(message)) = stream.next().await {
            let payload = match message {
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if to_test.write_all(&payload).await.is_err()
                || to_test.write_all(b"\r\n").await.is_err()
            {
                return;
            }
        }
        let _ = to_test.shutdown().await;
    };
    tokio::join!(up, down);
}

/// One plain HTTP/1.1 request (`Connection: close`) over `io`; returns the status
/// code, the head and the body.
pub async fn http_request(
    mut io: impl Io,
    request_line: &str,
    headers: &[&str],
) -> (u16, String, String) {
    let mut request = format!("{request_line}\r\nHost: localhost\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    io.write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, io.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read the response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
    (status, head.to_owned(), body.to_owned())
}
