//! What a local server costs: CPU time and resident memory from `/proc/<pid>`
//! (Linux only). The files are parsed here rather than through a crate: two
//! numbers from `stat`, one line of `status`.
//!
//! CPU times in `/proc/<pid>/stat` are in clock ticks of `USER_HZ`, which the kernel
//! fixes at 100 on every mainstream architecture; we assume 100 (the crate forbids the
//! `unsafe` a `sysconf(_SC_CLK_TCK)` call would need), so CPU figures have a 10 ms
//! granularity: measure phases of seconds, not milliseconds.

use std::io;

/// Clock ticks per second of the CPU times in `/proc/<pid>/stat` (assumed, see above).
pub const USER_HZ: u64 = 100;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProcSample {
    /// User plus system CPU time so far, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

impl ProcSample {
    /// CPU microseconds spent between `self` (earlier) and `later`.
    pub fn cpu_micros_until(&self, later: &ProcSample) -> u64 {
        later.cpu_ticks.saturating_sub(self.cpu_ticks) * (1_000_000 / USER_HZ)
    }
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no {what} in /proc/{pid}"),
        )
    };
    Ok(ProcSample {
        cpu_ticks: parse_cpu_ticks(&stat).ok_or_else(|| bad("utime/stime"))?,
        rss_bytes: parse_rss_bytes(&status).ok_or_else(|| bad("VmRSS"))?,
    })
}

/// utime + stime (fields 14 and 15) from the text of `/proc/<pid>/stat`. The command
/// name (field 2) is in parentheses and may hold spaces, so fields are counted from
/// the last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first; utime is field 14, i.e. index 11.
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in bytes from the text of `/proc/<pid>/status`.
pub fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "1234 (chat server) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 37 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(287));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tchat-server\nVmPeak:\t  9000 kB\nVmRSS:\t    4312 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_bytes(status), Some(4312 * 1024));
    }

    #[test]
    fn reads_this_process() {
        let sample = sample(std::process::id()).expect("own /proc entry");
        assert!(sample.rss_bytes > 0);
    }
}
