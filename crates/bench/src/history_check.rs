//! `fanout --verify-history`: after a run, one more client reads every channel's
//! history back with `CHATHISTORY` (IRCv3 `draft/chathistory`) and checks that each
//! message the senders sent is there exactly once: the end-to-end check of a
//! server's durability promise under load.
//!
//! The checker joins each channel in turn (history is for members), pages backwards from
//! `LATEST` with `BEFORE msgid=<oldest>` until a page comes back empty, and ends each
//! request with a PING: a server answers a client's commands in order, so the PONG
//! marks the end of the reply whether or not it is framed as a batch.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::conn::{self, Conn};

/// Messages asked for per request (servers announce their own maximum in
/// `CHATHISTORY=`; a lower one only means more pages).
const PAGE: usize = 1000;

/// What the history check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryCheck {
    /// Messages of this run found in history.
    pub found: u64,
    /// Messages sent (and delivered) but not in history.
    pub missing: u64,
    /// Messages found more than once.
    pub duplicates: u64,
    /// Seconds the check took.
    pub seconds: f64,
}

/// One channel to check: its name and, per sender of the channel (by global sender
/// index), how many messages it sent (sequence numbers `0..sent`).
pub(crate) struct Expected {
    pub(crate) channel: String,
    pub(crate) senders: Vec<(usize, u64)>,
}

/// Reads back every channel's history; see the module doc.
pub(crate) async fn verify(
    target: SocketAddr,
    nick: &str,
    channels: &[Expected],
    limit: Duration,
) -> Result<HistoryCheck, String> {
    let started = std::time::Instant::now();
    let registered = conn::register(target, nick, limit)
        .await
        .map_err(|e| format!("history check: {e}"))?;
    let mut conn = registered.conn;
    // msgids, to page by.
    conn.send(&conn::line("CAP", &["REQ"], Some("message-tags")))
        .await
        .map_err(|e| format!("history check: {e}"))?;
    let mut check = HistoryCheck::default();
    for expected in channels {
        conn.send(&conn::line("JOIN", &[&expected.channel], None))
            .await
            .map_err(|e| format!("history check: {e}"))?;
        let mut seen: HashSet<(usize, u64)> = HashSet::new();
        let mut request = format!("CHATHISTORY LATEST {} * {PAGE}", expected.channel);
        loop {
            let page = ask(&mut conn, &request).await?;
            let Some(oldest) = page.first().map(|(msgid, _)| msgid.clone()) else {
                break;
            };
            for (_, payload) in page {
                if let Some(key) = payload
                    && !seen.insert(key)
                {
                    check.duplicates += 1;
                }
            }
            request = format!(
                "CHATHISTORY BEFORE {} msgid={oldest} {PAGE}",
                expected.channel
            );
        }
        // One channel at a time: servers bound the channels a client may be in.
        conn.send(&conn::line("PART", &[&expected.channel], None))
            .await
            .map_err(|e| format!("history check: {e}"))?;
        for &(sender, sent) in &expected.senders {
            for seq in 0..sent {
                if seen.contains(&(sender, seq)) {
                    check.found += 1;
                } else {
                    check.missing += 1;
                }
            }
        }
    }
    check.seconds = started.elapsed().as_secs_f64();
    Ok(check)
}

/// Sends `request` and a PING; returns `(msgid, (sender, seq))` of every PRIVMSG
/// before the PONG (the payload `None` if the text is not one of ours).
async fn ask(
    conn: &mut Conn,
    request: &str,
) -> Result<Vec<(String, Option<(usize, u64)>)>, String> {
    let mut out = request.as_bytes().to_vec();
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&conn::line("PING", &[], Some("history-check")));
    conn.send(&out)
        .await
        .map_err(|e| format!("history check: {e}"))?;
    let mut page = Vec::new();
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(30), conn.next_line())
            .await
            .map_err(|_| "history check: no reply within 30 s".to_owned())?
            .map_err(|e| format!("history check: {e}"))?
            .ok_or_else(|| "history check: the server closed the connection".to_owned())?;
        let Some(msg) = conn::parse(&reply) else {
            continue;
        };
        match msg.command() {
            "PONG" if msg.params().last() == Some(&"history-check") => return Ok(page),
            "PING" => conn
                .send(&conn::pong(&msg))
                .await
                .map_err(|e| format!("history check: {e}"))?,
            "FAIL" => {
                return Err(format!(
                    "history check: the server refused {request:?}: {}",
                    msg.params().join(" ")
                ));
            }
            "PRIVMSG" => {
                let msgid = msg.tag("msgid").map(|v| v.into_owned()).unwrap_or_default();
                let payload = msg.params().last().and_then(|text| {
                    let mut words = text.splitn(3, ' ');
                    let sender = words.next()?.parse().ok()?;
                    let seq = words.next()?.parse().ok()?;
                    Some((sender, seq))
                });
                page.push((msgid, payload));
            }
            _ => {}
        }
    }
}
