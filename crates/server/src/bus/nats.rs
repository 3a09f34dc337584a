//! This node's connection to the cluster's NATS server: subjects, connecting, and
//! the cluster-wide nick claims (JetStream KV). Below the handlers, which claim
//! nicks through it; the link (`crate::cluster`) publishes and subscribes with it.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use palaver_proto::CaseKey;

use super::{Answer, Question};
use crate::config::ClusterConfig;

/// Longest wait for another node's answer to a [`Question`]: a WHOIS waits
/// this long at worst, then answers without what the question would have added.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The name of the JetStream KV bucket holding nick claims (one per subject
/// prefix, so clusters sharing a NATS server keep apart).
fn bucket_name(prefix: &str) -> String {
    format!("{}_nicks", prefix.replace(['.', '*', '>'], "_"))
}

/// The KV key of a folded nick: KV keys allow only `[-/_=.a-zA-Z0-9]`, and nicks
/// have `[]\^{}|` too, so the bytes go hex-encoded.
fn nick_key(key: &CaseKey) -> String {
    use std::fmt::Write;
    key.as_str().bytes().fold(
        String::with_capacity(2 * key.as_str().len()),
        |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        },
    )
}

/// Why a nick could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimRefused {
    /// A user of some node holds it.
    Taken,
    /// The bus could not be asked (NATS down): nothing is claimed meanwhile.
    Unavailable,
}

/// This node's connection to the cluster: what handlers and the link share.
#[derive(Debug, Clone)]
pub(crate) struct Bus {
    pub(crate) client: async_nats::Client,
    nicks: kv::Store,
    /// This node's name.
    pub(crate) node: Box<str>,
    /// This incarnation of it (start time, milliseconds).
    pub(crate) boot: u64,
    /// Subject prefix: `<prefix>.all` (broadcast) and `<prefix>.node.<name>`.
    pub(crate) prefix: Box<str>,
    /// Longest wait for a KV answer before a claim counts as unavailable.
    timeout: Duration,
}

impl Bus {
    /// Connects to the NATS server of `config` and opens (or creates) the nick
    /// bucket. Waits for the first connection: a node that cannot reach the bus
    /// at start-up says so instead of serving as an island.
    pub(crate) async fn connect(config: &ClusterConfig) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let client = async_nats::ConnectOptions::new()
            .name(format!("palaver {}", config.node_name))
            .connection_timeout(Duration::from_secs(5))
            .connect(config.url.as_str())
            .await
            .with_context(|| format!("cannot connect to the cluster bus at {}", config.url))?;
        let jetstream = async_nats::jetstream::new(client.clone());
        let bucket = bucket_name(&config.prefix);
        let nicks = match jetstream.get_key_value(&bucket).await {
            Ok(store) => store,
            Err(_) => {
                // The stream a KV bucket is, made by hand: async-nats's
                // `create_key_value` asks for settings that nats-server 2.9
                // (Debian 12's) does not answer in the form it expects. With
                // another node racing to create it, the second create fails and
                // the open below finds the first one's.
                let created = jetstream
                    .create_stream(async_nats::jetstream::stream::Config {
                        name: format!("KV_{bucket}"),
                        description: Some("palaver: which node's user holds each nick".to_owned()),
                        subjects: vec![format!("$KV.{bucket}.>")],
                        max_messages_per_subject: 1,
                        discard: async_nats::jetstream::stream::DiscardPolicy::New,
                        allow_rollup: true,
                        deny_delete: true,
                        allow_direct: true,
                        ..Default::default()
                    })
                    .await;
                if let Err(error) = created {
                    tracing::debug!(%error, "nick bucket not created here");
                }
                jetstream.get_key_value(&bucket).await.with_context(|| {
                    format!(
                        "cannot open the nick bucket {bucket} on {} (is JetStream enabled: nats-server -js?)",
                        config.url
                    )
                })?
            }
        };
        let boot = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(Self {
            client,
            nicks,
            node: config.node_name.as_str().into(),
            boot,
            prefix: config.prefix.as_str().into(),
            timeout: Duration::from_secs(3),
        })
    }

    /// The broadcast subject every node listens on.
    pub(crate) fn all_subject(&self) -> String {
        format!("{}.all", self.prefix)
    }

    /// The subject node `node` listens on for what is addressed to it.
    pub(crate) fn node_subject(&self, node: &str) -> String {
        format!("{}.node.{node}", self.prefix)
    }

    /// The subject node `node` answers [`Question`]s on.
    pub(crate) fn ask_subject(&self, node: &str) -> String {
        format!("{}.ask.{node}", self.prefix)
    }

    /// Asks node `node` `question` and waits for the answer, for at most
    /// [`ASK_TIMEOUT`]: `None` if it did not come (the node is gone, busy, or the
    /// bus is down), and the asker does without.
    pub(crate) async fn ask(&self, node: &str, question: &Question) -> Option<Answer> {
        let payload = postcard::to_allocvec(question).ok()?;
        let request = self
            .client
            .request(self.ask_subject(node), Bytes::from(payload));
        match tokio::time::timeout(ASK_TIMEOUT, request).await {
            Ok(Ok(reply)) => postcard::from_bytes(&reply.payload).ok(),
            Ok(Err(error)) => {
                tracing::debug!(%error, node, "a question to another node was not answered");
                None
            }
            Err(_) => None,
        }
    }

    /// What a claim by this node's client `id` stores: who holds the nick.
    fn owner(&self, id: u64) -> Bytes {
        Bytes::from(self.holder(id))
    }

    /// This node's client `id` as a claim names it: `node/boot/id`.
    pub(crate) fn holder(&self, id: u64) -> String {
        format!("{}/{}/{id}", self.node, self.boot)
    }

    /// Claims nick `key` for this node's client `id`, atomically across the
    /// cluster. Claiming a nick this very client already holds succeeds.
    pub(crate) async fn claim_nick(&self, key: &CaseKey, id: u64) -> Result<(), ClaimRefused> {
        let kv_key = nick_key(key);
        let owner = self.owner(id);
        let created = tokio::time::timeout(self.timeout, self.nicks.create(&kv_key, owner.clone()))
            .await
            .map_err(|_| ClaimRefused::Unavailable)?;
        match created {
            Ok(_) => Ok(()),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                match tokio::time::timeout(self.timeout, self.nicks.get(&kv_key)).await {
                    Ok(Ok(Some(value))) if value == owner => Ok(()),
                    Ok(Ok(_)) => Err(ClaimRefused::Taken),
                    _ => Err(ClaimRefused::Unavailable),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot claim a nick on the cluster bus");
                Err(ClaimRefused::Unavailable)
            }
        }
    }

    /// Releases nick `key` if `holder` (a node name, and optionally its boot and
    /// client id as `node/boot/id`) still holds it: a claim taken over by someone
    /// else since is left alone.
    pub(crate) async fn release_nick(&self, key: &CaseKey, holder: &str) {
        let kv_key = nick_key(key);
        let entry = match self.nicks.entry(&kv_key).await {
            Ok(Some(entry)) => entry,
            Ok(None) => return,
            Err(error) => {
                tracing::debug!(%error, "cannot read a nick claim to release it");
                return;
            }
        };
        if entry.operation != kv::Operation::Put || !held_by(&entry.value, holder) {
            return;
        }
        if let Err(error) = self
            .nicks
            .delete_expect_revision(&kv_key, Some(entry.revision))
            .await
        {
            tracing::debug!(%error, "nick claim changed while being released");
        }
    }

    /// Releases every claim of this node left by an earlier incarnation (a crash,
    /// a restart faster than the other nodes' timeout): at start-up, before
    /// serving. Reads the whole bucket once.
    pub(crate) async fn release_stale_claims(&self) -> anyhow::Result<usize> {
        let mine = format!("{}/", self.node);
        let current = format!("{}/{}/", self.node, self.boot);
        self.release_where(|_, value| value.starts_with(&mine) && !value.starts_with(&current))
            .await
    }

    /// Reads the whole bucket once and releases every claim `stale(key, value)`
    /// picks (unless it changed meanwhile); returns how many went.
    async fn release_where(&self, stale: impl Fn(&str, &str) -> bool) -> anyhow::Result<usize> {
        use futures_util::StreamExt as _;
        let mut keys = self.nicks.keys().await?;
        let mut released = 0;
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { continue };
            let Ok(Some(entry)) = self.nicks.entry(&key).await else {
                continue;
            };
            if stale(&key, &String::from_utf8_lossy(&entry.value)) {
                let deleted = self
                    .nicks
                    .delete_expect_revision(&key, Some(entry.revision))
                    .await;
                released += usize::from(deleted.is_ok());
            }
        }
        Ok(released)
    }
}

impl Bus {
    /// After this node was cut off from the bus: makes the nick claims match its
    /// users again. Each user's nick is claimed afresh (the other nodes may have
    /// declared this node lost and freed them); claims of this incarnation that no
    /// user holds any more (their release was lost with the bus) are released.
    /// Returns the users whose nick someone else took meanwhile.
    pub(crate) async fn reconcile_claims(&self, held: &[(CaseKey, u64)]) -> Vec<u64> {
        let mut lost = Vec::new();
        for (key, id) in held {
            if self.claim_nick(key, *id).await == Err(ClaimRefused::Taken) {
                lost.push(*id);
            }
        }
        let current: std::collections::HashSet<String> = held
            .iter()
            .map(|(key, id)| format!("{}={}", nick_key(key), self.holder(*id)))
            .collect();
        let mine = format!("{}/{}/", self.node, self.boot);
        let released = self
            .release_where(|key, value| {
                value.starts_with(&mine) && !current.contains(&format!("{key}={value}"))
            })
            .await;
        if let Err(error) = released {
            tracing::debug!(error = format!("{error:#}"), "cannot read the nick claims");
        }
        lost
    }
}

/// Whether a claim's stored owner (`node/boot/id`) is `holder`, or within it
/// when `holder` ends with `/` (`node/boot/`: a whole incarnation).
fn held_by(value: &[u8], holder: &str) -> bool {
    if holder.ends_with('/') {
        value.starts_with(holder.as_bytes())
    } else {
        value == holder.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_keys_are_valid_kv_keys() {
        let key = CaseKey::new(palaver_proto::CaseMapping::Rfc1459, "[Bob]^|{}");
        let encoded = nick_key(&key);
        assert!(encoded.bytes().all(|b| b.is_ascii_hexdigit()), "{encoded}");
        assert_eq!(encoded.len(), 2 * "[bob]~\\{}".len());
    }

    #[test]
    fn claims_belong_to_an_incarnation() {
        assert!(held_by(b"a/17/5", "a/17/"));
        assert!(!held_by(b"a/18/5", "a/17/"));
        assert!(!held_by(b"ab/17/5", "a/17/"));
        assert!(held_by(b"a/17/5", "a/17/5"));
        assert!(!held_by(b"a/17/55", "a/17/5"));
    }
}
