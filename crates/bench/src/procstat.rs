//! What a local server costs: CPU time and resident memory from `/proc/<pid>`
//! (Linux only). The files are parsed here rather than through a crate: two
//! numbers from `stat`, one line of `status`.
//!
//! CPU times in `/proc/<pid>/stat` are in clock ticks of `USER_HZ`, which the kernel
//! fixes at 100 on every mainstream architecture; we assume 100 (the crate forbids the
//! `unsafe` a `sysconf(_SC_CLK_TCK)` call would need), so CPU figures have a 10 ms
//! granularity: measure phases of seconds, not milliseconds.
//!
//! A clustered server is several processes (its nodes and the message bus they
//! share), so a cost per delivery or per connection must add them all up:
//! [`Samples`] reads several pids at one moment, sums them, and keeps each one's
//! share so a report can tell which process paid.

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

/// Readings of several processes taken one after the other (microseconds apart),
/// in the order of their pids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Samples {
    /// Each process and its reading.
    pub each: Vec<(u32, ProcSample)>,
}

/// What one process of several spent between two [`Samples`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PidShare {
    /// The process.
    pub pid: u32,
    /// Its CPU time (user + system) in between, microseconds (10 ms ticks).
    pub cpu_us: u64,
    /// Its part of the summed CPU time, 0 to 1 (0 when nothing was spent).
    pub cpu_share: f64,
    /// Its VmRSS at the first reading.
    pub rss_before_bytes: u64,
    /// Its VmRSS at the second reading.
    pub rss_after_bytes: u64,
}

impl Samples {
    /// Reads every pid; fails on the first that cannot be read.
    pub fn read(pids: &[u32]) -> Result<Self, (u32, io::Error)> {
        let each = pids
            .iter()
            .map(|&pid| sample(pid).map(|s| (pid, s)).map_err(|e| (pid, e)))
            .collect::<Result<_, _>>()?;
        Ok(Self { each })
    }

    /// The processes' counters added up.
    pub fn total(&self) -> ProcSample {
        self.each.iter().fold(
            ProcSample {
                cpu_ticks: 0,
                rss_bytes: 0,
            },
            |sum, (_, s)| ProcSample {
                cpu_ticks: sum.cpu_ticks + s.cpu_ticks,
                rss_bytes: sum.rss_bytes + s.rss_bytes,
            },
        )
    }

    /// CPU microseconds all the processes spent between `self` (earlier) and `later`.
    pub fn cpu_micros_until(&self, later: &Samples) -> u64 {
        self.shares_until(later).iter().map(|s| s.cpu_us).sum()
    }

    /// Each process's CPU time and memory between `self` (earlier) and `later`; a
    /// pid missing from `later` is left out.
    pub fn shares_until(&self, later: &Samples) -> Vec<PidShare> {
        let mut shares: Vec<PidShare> = self
            .each
            .iter()
            .filter_map(|(pid, before)| {
                let (_, after) = later.each.iter().find(|(p, _)| p == pid)?;
                Some(PidShare {
                    pid: *pid,
                    cpu_us: before.cpu_micros_until(after),
                    cpu_share: 0.0,
                    rss_before_bytes: before.rss_bytes,
                    rss_after_bytes: after.rss_bytes,
                })
            })
            .collect();
        let total: u64 = shares.iter().map(|s| s.cpu_us).sum();
        if total > 0 {
            for share in &mut shares {
                share.cpu_share = share.cpu_us as f64 / total as f64;
            }
        }
        shares
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
    fn several_processes_add_up_with_shares() {
        let at = |cpu_ticks, rss_bytes| ProcSample {
            cpu_ticks,
            rss_bytes,
        };
        let before = Samples {
            each: vec![(10, at(100, 1000)), (20, at(50, 500)), (30, at(7, 70))],
        };
        let after = Samples {
            each: vec![(10, at(130, 1100)), (20, at(60, 600)), (30, at(7, 80))],
        };
        assert_eq!(after.total(), at(197, 1780));
        assert_eq!(before.cpu_micros_until(&after), 400_000);
        let shares = before.shares_until(&after);
        assert_eq!(shares.len(), 3);
        assert_eq!(shares[0].cpu_us, 300_000);
        assert!((shares[0].cpu_share - 0.75).abs() < 1e-9);
        assert!((shares[1].cpu_share - 0.25).abs() < 1e-9);
        assert_eq!(shares[2].cpu_share, 0.0);
        assert_eq!(
            (shares[2].rss_before_bytes, shares[2].rss_after_bytes),
            (70, 80)
        );
    }

    #[test]
    fn reads_this_process() {
        let sample = sample(std::process::id()).expect("own /proc entry");
        assert!(sample.rss_bytes > 0);
    }
}
