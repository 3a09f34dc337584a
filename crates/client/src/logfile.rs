//! `client.log` with a size cap: when a write would take the file past its limit,
//! the file moves to `client.log.1` (older ones to `.2`, ... up to the number
//! kept, the oldest dropped) and a fresh `client.log` starts. A client left
//! running for months in a busy channel so uses a bounded amount of disk, and the
//! file keeps the name the user knows (rotation by date would rename it).
//!
//! The writer runs on tracing-appender's background thread, so rotating never
//! holds up the UI; a failure to rotate keeps writing to the file it has.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The default cap on `client.log`: 10 MiB, with two older files kept.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Older files kept by default (`client.log.1`, `client.log.2`).
pub const DEFAULT_KEEP: usize = 2;

/// A log file that rotates itself at a size cap. See the module documentation.
#[derive(Debug)]
pub struct CappedFile {
    path: PathBuf,
    file: File,
    written: u64,
    max_bytes: u64,
    keep: usize,
}

impl CappedFile {
    /// Opens `path` for appending (creating it), to be rotated past `max_bytes`
    /// keeping `keep` older files.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let written = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            written,
            max_bytes: max_bytes.max(1),
            keep,
        })
    }

    /// `client.log.N`
    fn older(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
        } else {
            let _ = fs::remove_file(self.older(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.older(n);
                if from.exists() {
                    fs::rename(&from, self.older(n + 1))?;
                }
            }
            fs::rename(&self.path, self.older(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.written = 0;
        Ok(())
    }
}

impl Write for CappedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            // Keep logging even if the rename fails (a read-only directory, say).
            let _ = self.rotate();
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_rotates_at_its_cap_and_keeps_a_few_old_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("client.log");
        let mut log = CappedFile::open(&path, 100, 2).expect("open");
        // tracing-appender hands over whole lines, one write each.
        for i in 0..10 {
            log.write_all(format!("{i:040}\n").as_bytes())
                .expect("write");
        }
        log.flush().expect("flush");
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) <= 100, "{}", size(&path));
        assert!(size(&dir.path().join("client.log.1")) > 0);
        assert!(size(&dir.path().join("client.log.2")) > 0);
        assert!(!dir.path().join("client.log.3").exists());
        // The newest line is in client.log, the ones before it in .1.
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("{:040}\n{:040}\n", 8, 9));

        // Reopened, it counts what is already there.
        drop(log);
        let log = CappedFile::open(&path, 100, 2).expect("reopen");
        assert_eq!(log.written, size(&path));
    }
}
