//! Members of a classic consumer group and the choice of the group's protocol.

use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

/// What a JoinGroup call is eventually answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    /// Error code (0 on success).
    pub error_code: i16,
    /// Generation the member joined.
    pub generation: i32,
    /// Protocol type of the group ("consumer" for consumers).
    pub protocol_type: Option<String>,
    /// Chosen protocol (assignor) name.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// The member's own id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: the leader must not compute an assignment (static leader rejoin).
    pub skip_assignment: bool,
}

/// What a SyncGroup call is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// Error code (0 on success).
    pub error_code: i16,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Protocol name.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// One member of a group.
#[derive(Debug)]
pub struct Member {
    /// Member id the coordinator gave it.
    pub id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Address the member connects from.
    pub client_host: String,
    /// Session timeout it asked for.
    pub session_timeout_ms: i32,
    /// Rebalance timeout it asked for.
    pub rebalance_timeout_ms: i32,
    /// Protocols it supports, in order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation.
    pub assignment: Bytes,
    /// Last heartbeat (or join/sync) seen from it.
    pub last_seen: Instant,
    /// The pending JoinGroup call, while a rebalance waits for members.
    pub join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    /// The pending SyncGroup call, while the leader's assignment is awaited.
    pub sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether it supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    /// Whether it waits in JoinGroup for the rebalance to complete.
    pub fn is_awaiting_join(&self) -> bool {
        self.join_waiter.is_some()
    }
}

/// Picks the group's protocol as Kafka does: among the protocols every member supports,
/// each member votes for the first one in its preference order; the most votes wins, ties
/// going to the earlier candidate in the first member's order.
pub fn select_protocol<'a>(members: impl Iterator<Item = &'a Member> + Clone) -> Option<String> {
    let first = members.clone().next()?;
    let candidates: Vec<&str> = first
        .protocols
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| members.clone().all(|m| m.supports(name)))
        .collect();
    let mut votes = vec![0usize; candidates.len()];
    for m in members {
        if let Some(i) = m
            .protocols
            .iter()
            .find_map(|(name, _)| candidates.iter().position(|c| c == name))
        {
            votes[i] += 1;
        }
    }
    let best = votes.iter().max()?;
    votes
        .iter()
        .position(|v| v == best)
        .map(|i| candidates[i].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(protocols: &[&str]) -> Member {
        Member {
            id: String::new(),
            instance_id: None,
            client_id: String::new(),
            client_host: String::new(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            last_seen: Instant::now(),
            join_waiter: None,
            sync_waiter: None,
        }
    }

    #[test]
    fn the_common_protocol_with_most_first_choices_wins() {
        let a = member(&["cooperative-sticky", "range"]);
        let b = member(&["range", "cooperative-sticky"]);
        let c = member(&["range", "roundrobin", "cooperative-sticky"]);
        let all = [a, b, c];
        assert_eq!(select_protocol(all.iter()).as_deref(), Some("range"));
        let only = [member(&["range"]), member(&["roundrobin"])];
        assert_eq!(select_protocol(only.iter()), None);
    }
}
