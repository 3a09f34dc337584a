//! The browser client, served on the IRC port: what a browser gets for `GET /`.
//!
//! By default that is palaver's own client, embedded in the binary by the build
//! script (`web/` beside this crate's `Cargo.toml`; see `build.rs`): gzip-compressed
//! once at build time, `index.html` revalidated on every load (`no-cache` with an
//! entity tag) and everything it names under `/static/<version>/` cached for a year
//! as immutable, since a new build changes `<version>`. The page is held to a strict
//! Content-Security-Policy: scripts, styles and connections from this origin only,
//! no inline code, so a message that smuggled markup into the page could not run.
//!
//! `--web-dir DIR` serves another client (gamja, Kiwi IRC, a build of our own)
//! from a directory instead, read at each request: files as they are, a `FILE.gz`
//! beside one served in its place to browsers that accept gzip, and no CSP (the
//! operator's client may need inline code; it is theirs to secure). `--no-web`
//! serves no page at all; WebSocket and `/healthz` stay.

pub(crate) mod content_type;

use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// One file of the embedded client, as the build script prepared it.
pub(crate) struct EmbeddedFile {
    /// Path below `web/`, `/`-separated (`index.html`, `static/app.js`).
    path: &'static str,
    content_type: &'static str,
    /// Quoted, as it goes in the `ETag` header.
    etag: &'static str,
    body: &'static [u8],
    gzip: &'static [u8],
}

/// Which web client the port serves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WebClient {
    /// palaver's own client, embedded in the binary.
    #[default]
    Embedded,
    /// Files from this directory (`--web-dir`).
    Directory(PathBuf),
    /// No page (`--no-web`).
    Off,
}

/// The policy the embedded client runs under. `connect-src 'self'` covers the
/// WebSocket to this same host and port (`ws:`/`wss:` match `'self'` in CSP 3).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
     manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Largest file `--web-dir` serves; a client's bundle is a few hundred KiB.
const MAX_DIRECTORY_FILE: u64 = 16 * 1024 * 1024;

/// The answer to a GET or HEAD for `path` (already known not to be `/healthz`).
pub(crate) async fn respond(
    web: &WebClient,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    let response = match web {
        WebClient::Embedded => embedded(path, headers),
        WebClient::Directory(root) => from_directory(root, path, headers).await,
        WebClient::Off => None,
    };
    let mut response = response.unwrap_or_else(not_found);
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response_headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if *method == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

fn embedded(path: &str, headers: &HeaderMap) -> Option<Response<Full<Bytes>>> {
    let (name, immutable) = match path {
        "/" | "/index.html" => ("index.html", false),
        _ => {
            let rest = path.strip_prefix("/static/")?;
            match rest.split_once('/') {
                // The hashed name of this build: cached for good.
                Some((version, name)) if version == ASSET_VERSION => (name, true),
                // Another build's hashed name: not ours to answer for.
                Some((version, _)) if is_version(version) => return None,
                // The plain name (a bookmark, an external reference): revalidated.
                _ => (path.strip_prefix('/')?, false),
            }
        }
    };
    let lookup = if immutable {
        format!("static/{name}")
    } else {
        name.to_owned()
    };
    let file = EMBEDDED
        .binary_search_by(|file| file.path.cmp(&lookup))
        .ok()
        .map(|index| &EMBEDDED[index])?;
    let cache_control = if immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = if matches(headers, file.etag) {
        empty(StatusCode::NOT_MODIFIED)
    } else if accepts_gzip(headers) {
        let mut response = Response::new(Full::new(Bytes::from_static(file.gzip)));
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        Response::new(Full::new(Bytes::from_static(file.body)))
    };
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    response_headers.insert(header::ETAG, HeaderValue::from_static(file.etag));
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if file.content_type.starts_with("text/html") {
        response_headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        response_headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    Some(response)
}

/// Whether a path segment looks like an asset version (the build script's hex).
fn is_version(segment: &str) -> bool {
    segment.len() == ASSET_VERSION.len() && segment.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn from_directory(
    root: &Path,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response<Full<Bytes>>> {
    let mut file = root.join(safe_relative_path(path)?);
    let want_gzip = accepts_gzip(headers);
    let if_none_match = headers.clone();
    // File reads block; they run on tokio's blocking pool, off the connection
    // threads.
    tokio::task::spawn_blocking(move || {
        if file.is_dir() {
            file.push("index.html");
        }
        let metadata = std::fs::metadata(&file).ok()?;
        if !metadata.is_file() || metadata.len() > MAX_DIRECTORY_FILE {
            return None;
        }
        let modified = metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_nanos());
        let etag = format!("\"{:x}-{:x}\"", metadata.len(), modified);
        let mut response = if matches(&if_none_match, &etag) {
            empty(StatusCode::NOT_MODIFIED)
        } else {
            let mut gzipped = file.clone().into_os_string();
            gzipped.push(".gz");
            match want_gzip.then(|| std::fs::read(&gzipped).ok()).flatten() {
                Some(body) => {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        header::CONTENT_ENCODING,
                        HeaderValue::from_static("gzip"),
                    );
                    response
                }
                None => match std::fs::read(&file) {
                    Ok(body) => Response::new(Full::new(Bytes::from(body))),
                    Err(error) => {
                        tracing::warn!(file = %file.display(), %error, "cannot read a --web-dir file");
                        return None;
                    }
                },
            }
        };
        let response_headers = response.headers_mut();
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type::for_path(&file.to_string_lossy())),
        );
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            response_headers.insert(header::ETAG, etag);
        }
        response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response_headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        Some(response)
    })
    .await
    .ok()
    .flatten()
}

/// The request path as a path below the web directory, or `None` when it could
/// leave it (`..`, an absolute or Windows-style component) or names a dot file.
/// Percent-encoded paths are refused rather than decoded: a client's own files
/// have plain names.
fn safe_relative_path(path: &str) -> Option<PathBuf> {
    let trimmed = path.strip_prefix('/')?;
    if trimmed.contains(['%', '\\', '\0']) {
        return None;
    }
    let relative = Path::new(trimmed);
    let mut clean = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(part) if !part.to_string_lossy().starts_with('.') => {
                clean.push(part);
            }
            _ => return None,
        }
    }
    Some(clean)
}

/// `If-None-Match` names this entity tag (or `*`).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn not_found() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_web_directory_are_refused() {
        assert_eq!(
            safe_relative_path("/static/app.js"),
            Some(PathBuf::from("static/app.js"))
        );
        assert_eq!(safe_relative_path("/"), Some(PathBuf::new()));
        for bad in [
            "/../etc/passwd",
            "/static/../../x",
            "/.git/config",
            "/static/%2e%2e/x",
            "/a\\b",
            "relative",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_embedded_client_has_an_index_naming_its_hashed_assets() {
        let index = EMBEDDED
            .iter()
            .find(|file| file.path == "index.html")
            .expect("web/index.html is embedded");
        let text = std::str::from_utf8(index.body).expect("UTF-8");
        assert!(
            text.contains(&format!("\"/static/{ASSET_VERSION}/")),
            "{text}"
        );
        assert!(EMBEDDED.windows(2).all(|pair| pair[0].path < pair[1].path));
    }

    /// The budget the client is built to: what a phone downloads on first visit.
    #[test]
    fn the_embedded_client_stays_within_100_kb_compressed() {
        let total: usize = EMBEDDED.iter().map(|file| file.gzip.len()).sum();
        assert!(total <= 100_000, "{total} bytes of gzip");
    }
}
