//! Embeds the browser client (`web/`) in the server binary, ready to serve.
//!
//! For every file under `web/` this writes, into `OUT_DIR/web/`, the bytes to
//! serve and their gzip compression (best level, done once here instead of per
//! request), and generates `OUT_DIR/web_assets.rs`: a table of paths, content
//! types, entity tags and both bodies, plus `ASSET_VERSION`, a hash of all the
//! files. `index.html` has every `"/static/` rewritten to
//! `"/static/<ASSET_VERSION>/`, so that the assets it names can be cached as
//! immutable: a new build changes the names. No Node.js or bundler is involved;
//! the files are served as they are written.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[path = "src/web/content_type.rs"]
mod content_type;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let source = manifest.join("web");
    println!("cargo:rerun-if-changed={}", source.display());

    let mut files = Vec::new();
    collect(&source, &source, &mut files);
    files.sort();

    let mut version_hash = Sha256::new();
    let mut contents = Vec::with_capacity(files.len());
    for relative in &files {
        let bytes = std::fs::read(source.join(relative))
            .unwrap_or_else(|error| panic!("cannot read web/{relative}: {error}"));
        version_hash.update(relative.as_bytes());
        version_hash.update((bytes.len() as u64).to_le_bytes());
        version_hash.update(&bytes);
        contents.push(bytes);
    }
    let version = hex(&version_hash.finalize()[..6]);

    let target = out.join("web");
    let mut table = String::new();
    writeln!(
        table,
        "/// Hash of every embedded file: the `<version>` in `/static/<version>/...`."
    )
    .expect("writing to a String");
    writeln!(
        table,
        "pub(crate) const ASSET_VERSION: &str = \"{version}\";"
    )
    .expect("writing to a String");
    writeln!(table, "/// The embedded files, sorted by path.").expect("writing to a String");
    writeln!(table, "pub(crate) static EMBEDDED: &[EmbeddedFile] = &[")
        .expect("writing to a String");
    for (relative, bytes) in files.iter().zip(contents) {
        let body = if relative == "index.html" {
            let page = String::from_utf8(bytes).expect("web/index.html is UTF-8");
            with_module_preloads(&page, &files)
                .replace("\"/static/", &format!("\"/static/{version}/"))
                .into_bytes()
        } else {
            bytes
        };
        let plain_path = target.join(relative);
        let gzip_path = target.join(format!("{relative}.gz"));
        std::fs::create_dir_all(plain_path.parent().expect("inside OUT_DIR"))
            .expect("OUT_DIR is writable");
        std::fs::write(&plain_path, &body).expect("OUT_DIR is writable");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&body).expect("in memory");
        std::fs::write(&gzip_path, encoder.finish().expect("in memory"))
            .expect("OUT_DIR is writable");
        let etag = hex(&Sha256::digest(&body)[..8]);
        writeln!(
            table,
            "    EmbeddedFile {{ path: {relative:?}, content_type: {:?}, etag: \"\\\"{etag}\\\"\", \
             body: include_bytes!({:?}), gzip: include_bytes!({:?}) }},",
            content_type::for_path(relative),
            plain_path.display().to_string(),
            gzip_path.display().to_string(),
        )
        .expect("writing to a String");
    }
    writeln!(table, "];").expect("writing to a String");
    std::fs::write(out.join("web_assets.rs"), table).expect("OUT_DIR is writable");
}

/// `page` with a `<link rel="modulepreload">` before `</head>` for every module
/// under `static/` that the page does not load itself, so that the browser fetches
/// them all at once instead of discovering them one import level at a time.
fn with_module_preloads(page: &str, files: &[String]) -> String {
    let preloads: String = files
        .iter()
        .filter(|file| file.starts_with("static/") && file.ends_with(".js"))
        .filter(|file| !page.contains(&format!("\"/{file}\"")))
        .map(|file| format!("  <link rel=\"modulepreload\" href=\"/{file}\">\n"))
        .collect();
    match page.find("</head>") {
        Some(at) => format!("{}{preloads}{}", &page[..at], &page[at..]),
        None => page.to_owned(),
    }
}

/// Every regular file under `dir`, as a `/`-separated path relative to `root`;
/// dot files (editor droppings, `.gitkeep`) are left out.
fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("readable web/ directory");
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.is_file() {
            let relative = path.strip_prefix(root).expect("under root");
            let parts: Vec<String> = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy().into_owned())
                .collect();
            files.push(parts.join("/"));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}
