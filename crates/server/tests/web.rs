//! The browser client on the IRC port: the embedded files with their caching and
//! security headers, `--web-dir` serving another client, and `--no-web`.
//! (What the client does in a browser is tested in `crates/server/web-tests/`.)

use palaver_server::{Config, WebClient};
use palaver_test_support::transports::http_request;
use palaver_test_support::{TestServer, test_config};
use tokio::net::TcpStream;

/// `GET`s `path` with extra headers: status, lower-cased head, body.
async fn get(server: &TestServer, request_line: &str, headers: &[&str]) -> (u16, String, String) {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (status, head, body) = http_request(tcp, request_line, headers).await;
    (status, head.to_ascii_lowercase(), body)
}

/// The value of header `name` (lower case) in a lower-cased head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

async fn server_with(web: WebClient) -> TestServer {
    TestServer::with_config(Config {
        web,
        ..test_config()
    })
    .await
}

#[tokio::test]
async fn the_embedded_client_is_served_with_a_strict_policy_and_immutable_assets() {
    let server = TestServer::start().await;
    let (status, head, index) = get(&server, "GET / HTTP/1.1", &[]).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    let policy = header(&head, "content-security-policy").expect("a CSP");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));

    // Every asset the page names is under this build's hashed path, cached for good.
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page loads a script");
    let version = script
        .strip_prefix("/static/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(version, _)| version)
        .expect("a hashed asset path");
    assert!(
        version.len() >= 8 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{script}"
    );
    let (status, head, body) = get(&server, &format!("GET {script} HTTP/1.1"), &[]).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header(&head, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&head, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(
        body.contains("import") || body.contains("function"),
        "{body}"
    );

    // Compressed for browsers that accept it; revalidation answers 304; HEAD has no body.
    let (_, head, _) = get(
        &server,
        &format!("GET {script} HTTP/1.1"),
        &["Accept-Encoding: gzip, deflate, br"],
    )
    .await;
    assert_eq!(header(&head, "content-encoding"), Some("gzip"), "{head}");
    let etag = header(&head, "etag").expect("an entity tag").to_owned();
    let (status, _, body) = get(
        &server,
        &format!("GET {script} HTTP/1.1"),
        &[&format!("If-None-Match: {etag}")],
    )
    .await;
    assert_eq!((status, body.as_str()), (304, ""));
    let (status, head, body) = get(&server, "HEAD / HTTP/1.1", &[]).await;
    assert_eq!((status, body.as_str()), (200, ""), "{head}");

    // Another build's hashed name, or a file that is not there: 404.
    let (status, _, _) = get(&server, "GET /static/0123456789ab/app.js HTTP/1.1", &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&server, "GET /static/nothing.js HTTP/1.1", &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&server, "POST / HTTP/1.1", &["Content-Length: 0"]).await;
    assert_eq!(status, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn web_dir_serves_another_client_and_nothing_outside_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("client");
    std::fs::create_dir_all(root.join("assets")).expect("mkdir");
    std::fs::write(root.join("index.html"), "<!doctype html><p>another client").expect("write");
    std::fs::write(root.join("assets/app.js"), "console.log('plain')").expect("write");
    std::fs::write(root.join("assets/app.js.gz"), "precompressed bytes").expect("write");
    std::fs::write(root.join(".env"), "SECRET=1").expect("write");
    std::fs::write(dir.path().join("outside.txt"), "outside").expect("write");
    let server = server_with(WebClient::Directory(root)).await;

    let (status, head, body) = get(&server, "GET / HTTP/1.1", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "<!doctype html><p>another client")
    );
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let (status, head, body) = get(&server, "GET /assets/app.js HTTP/1.1", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "console.log('plain')"),
        "{head}"
    );
    let etag = header(&head, "etag").expect("an entity tag").to_owned();
    let (status, head, body) = get(
        &server,
        "GET /assets/app.js HTTP/1.1",
        &["Accept-Encoding: gzip"],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "precompressed bytes"));
    assert_eq!(header(&head, "content-encoding"), Some("gzip"));
    let (status, _, _) = get(
        &server,
        "GET /assets/app.js HTTP/1.1",
        &[&format!("If-None-Match: {etag}")],
    )
    .await;
    assert_eq!(status, 304);

    for escape in [
        "/../outside.txt",
        "/assets/../../outside.txt",
        "/.env",
        "/%2e%2e/outside.txt",
    ] {
        let (status, _, body) = get(&server, &format!("GET {escape} HTTP/1.1"), &[]).await;
        assert_eq!(status, 404, "{escape}: {body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn no_web_serves_no_page_but_keeps_the_health_check() {
    let server = server_with(WebClient::Off).await;
    let (status, _, _) = get(&server, "GET / HTTP/1.1", &[]).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(&server, "GET /healthz HTTP/1.1", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    server.shutdown().await;
}
