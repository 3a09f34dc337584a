//! Choosing the target: resolve `HOST:PORT` and refuse anything but loopback unless
//! the user passed `--allow-remote`.
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
}
