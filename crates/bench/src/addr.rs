//! Choosing the target: resolve `HOST:PORT` and refuse anything but loopback unless
//! the user passed `--allow-remote`.
//!
//! `--addr` may also name several nodes of one clustered server, comma-separated
//! (`127.0.0.1:16701,127.0.0.1:16702`): [`resolve_all`] checks each of them the same
//! way, and [`spread`] deals clients out over them round-robin, so that every node
//! carries its share and the traffic between clients crosses the cluster's bus.
//!
//! The check happens before any packet is sent. A host name other than `localhost` is
//! refused without `--allow-remote` even before resolving it, since the answer could
//! point anywhere.

use std::net::{IpAddr, SocketAddr};

/// Why a target address was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The text is not `HOST:PORT`.
    #[error("{0:?} is not HOST:PORT (IPv6 as [::1]:PORT)")]
    Syntax(String),
    /// The target is not on this machine.
    #[error(
        "refusing to load {0}: it is not a loopback address (127.0.0.0/8, ::1); pass --allow-remote to benchmark a server you run elsewhere"
    )]
    NotLoopback(String),
    /// Name resolution failed or returned nothing usable.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    /// An address list with no address, or with an empty entry (`a,,b`, `a,`).
    #[error("{0:?}: empty entry in the address list (HOST:PORT,HOST:PORT,...)")]
    EmptyEntry(String),
    /// More addresses than any run can use.
    #[error("{0} addresses: at most {MAX_NODES} nodes")]
    TooMany(usize),
}

/// Most nodes one `--addr` list may name (a sanity bound, far above a test cluster).
pub const MAX_NODES: usize = 64;

/// Splits a comma-separated `--addr` list into its entries (spaces around commas
/// allowed). Refuses an empty list or an empty entry rather than skipping it, since
/// a stray comma usually means a node was forgotten.
pub fn split_list(text: &str) -> Result<Vec<&str>, AddrError> {
    let entries: Vec<&str> = text.split(',').map(str::trim).collect();
    if entries.iter().any(|e| e.is_empty()) {
        return Err(AddrError::EmptyEntry(text.to_owned()));
    }
    if entries.len() > MAX_NODES {
        return Err(AddrError::TooMany(entries.len()));
    }
    Ok(entries)
}

/// Resolves every entry of a comma-separated `--addr` list (see [`resolve`]), in
/// order. The same address may appear twice: two "nodes" that are one server must
/// behave like that one server, which is how the spreading is tested without a
/// cluster.
pub async fn resolve_all(text: &str, allow_remote: bool) -> Result<Vec<SocketAddr>, AddrError> {
    let mut addrs = Vec::new();
    for entry in split_list(text)? {
        addrs.push(resolve(entry, allow_remote).await?);
    }
    Ok(addrs)
}

/// The node client number `index` goes to: round-robin over `nodes`, so that
/// consecutive clients (a channel's members, its senders) land on different nodes.
/// `nodes` must not be empty.
pub fn spread(nodes: &[SocketAddr], index: usize) -> SocketAddr {
    nodes[index % nodes.len()]
}

/// The nodes as one line for a report: `a, b, c`.
pub fn describe(nodes: &[SocketAddr]) -> String {
    nodes
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `ip` is on this machine's loopback interface.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Resolves `text` (`HOST:PORT`) to one socket address, refusing non-loopback
/// targets unless `allow_remote`.
pub async fn resolve(text: &str, allow_remote: bool) -> Result<SocketAddr, AddrError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        if !allow_remote && !is_loopback(addr.ip()) {
            return Err(AddrError::NotLoopback(text.to_owned()));
        }
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(AddrError::Syntax(text.to_owned()));
    };
    if port.parse::<u16>().is_err() || host.is_empty() {
        return Err(AddrError::Syntax(text.to_owned()));
    }
    if !allow_remote && !host.eq_ignore_ascii_case("localhost") {
        return Err(AddrError::NotLoopback(text.to_owned()));
    }
    let found = tokio::net::lookup_host(text)
        .await
        .map_err(|e| AddrError::Resolve(text.to_owned(), e.to_string()))?;
    let mut first_remote = None;
    for addr in found {
        if is_loopback(addr.ip()) || allow_remote {
            return Ok(addr);
        }
        first_remote.get_or_insert(addr);
    }
    Err(match first_remote {
        Some(addr) => AddrError::NotLoopback(format!("{text} ({addr})")),
        None => AddrError::Resolve(text.to_owned(), "no addresses".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_only_by_default() {
        assert!(resolve("127.0.0.1:6667", false).await.is_ok());
        assert!(resolve("127.3.2.1:6667", false).await.is_ok());
        assert!(resolve("[::1]:6667", false).await.is_ok());
        for remote in [
            "10.0.0.1:6667",
            "192.168.1.1:1",
            "8.8.8.8:6667",
            "[2001:db8::1]:6667",
        ] {
            assert!(matches!(
                resolve(remote, false).await,
                Err(AddrError::NotLoopback(_))
            ));
        }
        assert!(matches!(
            resolve("irc.example.com:6667", false).await,
            Err(AddrError::NotLoopback(_))
        ));
        assert!(matches!(
            resolve("nonsense", false).await,
            Err(AddrError::Syntax(_))
        ));
        // Accepted (not contacted) with the explicit opt-in.
        assert!(resolve("10.0.0.1:6667", true).await.is_ok());
    }

    #[test]
    fn address_lists_split_on_commas() {
        assert_eq!(
            split_list("127.0.0.1:1").expect("one address"),
            ["127.0.0.1:1"]
        );
        assert_eq!(
            split_list("127.0.0.1:1, 127.0.0.1:2,[::1]:3").expect("three"),
            ["127.0.0.1:1", "127.0.0.1:2", "[::1]:3"]
        );
        for bad in ["", ",", "127.0.0.1:1,", "127.0.0.1:1,,127.0.0.1:2", " , x"] {
            assert!(
                matches!(split_list(bad), Err(AddrError::EmptyEntry(_))),
                "{bad:?}"
            );
        }
        let many = vec!["127.0.0.1:1"; MAX_NODES + 1].join(",");
        assert!(matches!(split_list(&many), Err(AddrError::TooMany(_))));
    }

    #[tokio::test]
    async fn every_entry_is_checked() {
        let nodes = resolve_all("127.0.0.1:16701,127.0.0.1:16702,127.0.0.1:16701", false)
            .await
            .expect("loopback list");
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[1].port(), 16702);
        // One remote entry refuses the whole list.
        assert!(matches!(
            resolve_all("127.0.0.1:1,10.0.0.1:2", false).await,
            Err(AddrError::NotLoopback(_))
        ));
        assert!(matches!(
            resolve_all("127.0.0.1:1,nonsense", false).await,
            Err(AddrError::Syntax(_))
        ));
    }

    #[test]
    fn clients_are_dealt_round_robin() {
        let nodes: Vec<SocketAddr> = (1..=3)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let ports: Vec<u16> = (0..7).map(|i| spread(&nodes, i).port()).collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3, 1]);
        // One node: everyone goes there, as before lists existed.
        assert!((0..5).all(|i| spread(&nodes[..1], i) == nodes[0]));
        assert_eq!(describe(&nodes[..2]), "127.0.0.1:1, 127.0.0.1:2");
    }
}
