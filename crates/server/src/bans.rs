//! Server bans as the server applies them: K-lines (`user@host` masks, checked at
//! registration) and D-lines (an IP address or CIDR block, checked when a connection
//! is accepted), with their parsing and normalisation.
//!
//! The list lives in memory ([`ServerBans`], behind its own mutex shared by the
//! world and the listener, so the accept loop never takes the world lock) and in the
//! store (`palaver_store::ServerBan`), which the `KLINE`/`DLINE` handlers write
//! before they change the list. Masks are normalised before they are stored, so the
//! store compares them byte for byte: a K-line's mask is lowercased (ASCII), a
//! D-line's is the canonical text of its network (`192.0.2.0/24`, or a bare address
//! for a single one). An expired ban stops applying at once (every match looks at
//! the clock) and is dropped from memory and from the store at the next change.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use palaver_proto::CaseMapping;
use palaver_store::{ServerBan, ServerBanKind, Timestamp};

/// Longest K-line or D-line mask accepted: bans are operator input kept forever,
/// so they are bounded like everything else.
pub(crate) const MAX_MASK_LEN: usize = 128;

/// Longest ban duration accepted (a year); longer is what a permanent ban is for.
const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// The casemapping masks are matched with (the server's).
const MAPPING: CaseMapping = CaseMapping::Rfc1459;

/// The K-lines and D-lines in force.
#[derive(Debug, Default)]
pub(crate) struct ServerBans {
    klines: Vec<ServerBan>,
    /// D-lines with their parsed network, so a match is arithmetic.
    dlines: Vec<(IpNet, ServerBan)>,
}

impl ServerBans {
    /// Replaces the list with `bans` (from the store at start-up). A D-line whose
    /// mask does not parse (written by hand?) is skipped with a warning.
    pub(crate) fn load(&mut self, bans: Vec<ServerBan>) {
        self.klines.clear();
        self.dlines.clear();
        for ban in bans {
            self.insert(ban);
        }
    }

    /// Adds `ban`, replacing one of the same kind and mask; expired bans are
    /// forgotten on the way.
    pub(crate) fn insert(&mut self, ban: ServerBan) {
        self.forget_expired(Timestamp::now());
        self.remove(ban.kind, &ban.mask);
        match ban.kind {
            ServerBanKind::KLine => self.klines.push(ban),
            ServerBanKind::DLine => match parse_dline(&ban.mask) {
                Ok(net) => self.dlines.push((net, ban)),
                Err(problem) => {
                    tracing::warn!(mask = %ban.mask, problem, "ignoring a stored D-line");
                }
            },
        }
    }

    /// Removes the ban of `kind` on the normalised `mask`; whether there was one.
    pub(crate) fn remove(&mut self, kind: ServerBanKind, mask: &str) -> bool {
        let before = self.len();
        match kind {
            ServerBanKind::KLine => self.klines.retain(|ban| ban.mask != mask),
            ServerBanKind::DLine => self.dlines.retain(|(_, ban)| ban.mask != mask),
        }
        self.len() != before
    }

    /// Whether a ban of `kind` on the normalised `mask` is in force.
    pub(crate) fn contains(&self, kind: ServerBanKind, mask: &str) -> bool {
        let now = Timestamp::now();
        self.list(kind, now).any(|ban| ban.mask == mask)
    }

    /// How many bans are held (expired ones not yet forgotten included).
    pub(crate) fn len(&self) -> usize {
        self.klines.len() + self.dlines.len()
    }

    /// Drops the bans that expired by `now`.
    pub(crate) fn forget_expired(&mut self, now: Timestamp) {
        self.klines.retain(|ban| !ban.is_expired(now));
        self.dlines.retain(|(_, ban)| !ban.is_expired(now));
    }

    /// The bans of `kind` still in force at `now`, in the order they were set.
    pub(crate) fn list(
        &self,
        kind: ServerBanKind,
        now: Timestamp,
    ) -> Box<dyn Iterator<Item = &ServerBan> + '_> {
        match kind {
            ServerBanKind::KLine => {
                Box::new(self.klines.iter().filter(move |b| !b.is_expired(now)))
            }
            ServerBanKind::DLine => Box::new(
                self.dlines
                    .iter()
                    .map(|(_, ban)| ban)
                    .filter(move |b| !b.is_expired(now)),
            ),
        }
    }

    /// The D-line in force at `now` that covers `ip`, if any.
    pub(crate) fn dline_for(&self, ip: IpAddr, now: Timestamp) -> Option<&ServerBan> {
        let ip = ip.to_canonical();
        self.dlines
            .iter()
            .find(|(net, ban)| net.contains(&ip) && !ban.is_expired(now))
            .map(|(_, ban)| ban)
    }

    /// The K-line in force at `now` that matches a client with username `user`,
    /// shown host `host` and address `ip`, if any.
    pub(crate) fn kline_for(
        &self,
        user: &str,
        host: &str,
        ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Option<&ServerBan> {
        self.klines
            .iter()
            .find(|ban| !ban.is_expired(now) && kline_matches(&ban.mask, user, host, ip))
    }
}

/// Whether the K-line mask `user@host` matches a client. The host part is a
/// wildcard mask matched against both the shown host and the address, or a CIDR
/// block containing the address.
pub(crate) fn kline_matches(mask: &str, user: &str, host: &str, ip: Option<IpAddr>) -> bool {
    let Some((user_mask, host_mask)) = mask.rsplit_once('@') else {
        return false;
    };
    if !palaver_proto::mask::matches(MAPPING, user_mask, user) {
        return false;
    }
    if let (Ok(net), Some(ip)) = (host_mask.parse::<IpNet>(), ip) {
        return net.contains(&ip.to_canonical());
    }
    palaver_proto::mask::matches(MAPPING, host_mask, host)
        || ip.is_some_and(|ip| {
            palaver_proto::mask::matches(MAPPING, host_mask, &ip.to_canonical().to_string())
        })
}

/// A K-line mask as typed, normalised (`user@host`, ASCII lowercase), or why not.
pub(crate) fn normalize_kline(text: &str) -> Result<String, &'static str> {
    if text.len() > MAX_MASK_LEN {
        return Err("The mask is too long");
    }
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '!' || c == ',')
    {
        return Err("A K-line mask is user@host, without spaces, '!' or ','");
    }
    let Some((user, host)) = text.rsplit_once('@') else {
        return Err("A K-line mask is user@host (e.g. *@192.0.2.7 or ~bot@*)");
    };
    if user.is_empty() || host.is_empty() || user.contains('@') {
        return Err("A K-line mask is user@host (e.g. *@192.0.2.7 or ~bot@*)");
    }
    if user.chars().all(|c| c == '*' || c == '?') && host.chars().all(|c| c == '*' || c == '?') {
        return Err("That mask would match everyone");
    }
    Ok(text.to_ascii_lowercase())
}

/// A D-line target as typed (an address or a CIDR block), normalised to the
/// canonical text of its network, or why not.
pub(crate) fn normalize_dline(text: &str) -> Result<String, &'static str> {
    if text.len() > MAX_MASK_LEN {
        return Err("The mask is too long");
    }
    let net = parse_dline(text)?;
    Ok(if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    })
}

/// Parses a D-line target: an address (a network of one) or a CIDR block, whose
/// host bits are cleared; blocks wider than a /8 (IPv4) or a /16 (IPv6) are refused
/// as surely a mistake.
pub(crate) fn parse_dline(text: &str) -> Result<IpNet, &'static str> {
    let net = match text.parse::<IpAddr>() {
        Ok(ip) => IpNet::from(ip.to_canonical()),
        Err(_) => text
            .parse::<IpNet>()
            .map_err(|_| "A D-line is an IP address or a CIDR block (e.g. 192.0.2.0/24)")?
            .trunc(),
    };
    let narrowest = match net {
        IpNet::V4(_) => 8,
        IpNet::V6(_) => 16,
    };
    if net.prefix_len() < narrowest {
        return Err("That block is too wide (at most /8 for IPv4, /16 for IPv6)");
    }
    Ok(net)
}

/// A ban duration: a number with `s`, `m`, `h`, `d` or `w`; a bare number is
/// minutes (as on other servers' KLINE). `None` if `text` is not a duration (it is
/// then the mask: the duration is optional).
pub(crate) fn parse_duration(text: &str) -> Option<Result<Duration, &'static str>> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return None;
    }
    let seconds: u64 = match unit {
        "" | "m" => 60,
        "s" => 1,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    let Ok(count) = number.parse::<u64>() else {
        return Some(Err("That duration is too long (at most a year)"));
    };
    Some(match count.checked_mul(seconds).map(Duration::from_secs) {
        Some(duration) if duration.is_zero() => Err("A duration must be more than 0"),
        Some(duration) if duration <= MAX_DURATION => Ok(duration),
        _ => Err("That duration is too long (at most a year)"),
    })
}

/// A duration as operators read it: `7d`, `12h`, `30m`, `45s`, the largest whole unit.
pub(crate) fn describe_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if seconds >= size && seconds.is_multiple_of(size) {
            return format!("{}{unit}", seconds / size);
        }
    }
    format!("{seconds}s")
}

/// What the kind is called in messages.
pub(crate) fn kind_name(kind: ServerBanKind) -> &'static str {
    match kind {
        ServerBanKind::KLine => "K-line",
        ServerBanKind::DLine => "D-line",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(kind: ServerBanKind, mask: &str, expires_at: Option<i64>) -> ServerBan {
        ServerBan {
            kind,
            mask: mask.to_owned(),
            reason: "r".to_owned(),
            set_by: "o".to_owned(),
            set_at: Timestamp(0),
            expires_at: expires_at.map(Timestamp),
        }
    }

    #[test]
    fn durations_default_to_minutes() {
        assert_eq!(parse_duration("30"), Some(Ok(Duration::from_secs(1800))));
        assert_eq!(parse_duration("30m"), Some(Ok(Duration::from_secs(1800))));
        assert_eq!(parse_duration("12h"), Some(Ok(Duration::from_secs(43_200))));
        assert_eq!(parse_duration("7d"), Some(Ok(Duration::from_secs(604_800))));
        assert_eq!(parse_duration("2s"), Some(Ok(Duration::from_secs(2))));
        assert!(matches!(parse_duration("0"), Some(Err(_))));
        assert!(matches!(parse_duration("400d"), Some(Err(_))));
        assert!(matches!(
            parse_duration("99999999999999999999"),
            Some(Err(_))
        ));
        assert_eq!(parse_duration("*@host"), None);
        assert_eq!(parse_duration("10.0.0.1"), None);
        assert_eq!(parse_duration("12x"), None);
        assert_eq!(describe_duration(Duration::from_secs(1800)), "30m");
        assert_eq!(describe_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn masks_are_normalised() {
        assert_eq!(
            normalize_kline("~Evil@Bad.Example"),
            Ok("~evil@bad.example".to_owned())
        );
        assert!(normalize_kline("*@*").is_err());
        assert!(normalize_kline("nick!user@host").is_err());
        assert!(normalize_kline("nohost").is_err());
        assert!(normalize_kline(&"a".repeat(200)).is_err());
        assert_eq!(
            normalize_dline("192.0.2.77/24"),
            Ok("192.0.2.0/24".to_owned())
        );
        assert_eq!(normalize_dline("192.0.2.7"), Ok("192.0.2.7".to_owned()));
        assert_eq!(
            normalize_dline("2001:db8::1/64"),
            Ok("2001:db8::/64".to_owned())
        );
        assert_eq!(
            normalize_dline("::ffff:192.0.2.7"),
            Ok("192.0.2.7".to_owned())
        );
        assert!(normalize_dline("10.0.0.0/4").is_err());
        assert!(normalize_dline("example.org").is_err());
    }

    #[test]
    fn bans_match_and_expire() {
        let mut bans = ServerBans::default();
        bans.load(vec![
            ban(ServerBanKind::KLine, "~evil@*", None),
            ban(ServerBanKind::KLine, "*@10.1.0.0/16", None),
            ban(ServerBanKind::DLine, "192.0.2.0/24", None),
            ban(ServerBanKind::DLine, "198.51.100.7", Some(5_000)),
        ]);
        let ip: IpAddr = "192.0.2.9".parse().expect("an address");
        let now = Timestamp(1_000);
        assert!(bans.kline_for("~EVIL", "h", Some(ip), now).is_some());
        assert!(bans.kline_for("~good", "h", Some(ip), now).is_none());
        let inside: IpAddr = "10.1.2.3".parse().expect("an address");
        assert!(
            bans.kline_for("~good", "10.1.2.3", Some(inside), now)
                .is_some()
        );
        assert!(bans.dline_for(ip, now).is_some());
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().expect("an address");
        assert!(bans.dline_for(mapped, now).is_some());
        let single: IpAddr = "198.51.100.7".parse().expect("an address");
        assert!(bans.dline_for(single, now).is_some());
        assert!(bans.dline_for(single, Timestamp(5_000)).is_none());
        assert_eq!(bans.list(ServerBanKind::DLine, Timestamp(5_000)).count(), 1);
        assert!(bans.remove(ServerBanKind::KLine, "~evil@*"));
        assert!(!bans.remove(ServerBanKind::KLine, "~evil@*"));
        assert!(bans.kline_for("~evil", "h", Some(ip), now).is_none());
    }
}
