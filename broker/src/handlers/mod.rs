//! One module per Kafka API (or family); [`handle`] routes a decoded request to it.

use kafka_protocol::messages::{RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub mod create_topics;
pub mod fetch;
pub mod list_offsets;
pub mod metadata;
pub mod produce;

/// Runs the handler of `request`; `None` means no response is sent (acks=0 produce).
/// Only APIs listed in `api_versions::SUPPORTED` reach this point.
pub async fn handle(broker: &Broker, request: RequestKind, version: i16) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(r) => {
            ResponseKind::ApiVersions(crate::api_versions::response(&r, 0))
        }
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, r, version)),
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(broker, r, version).await?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, r, version).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, r, version).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, r, version))
        }
        other => {
            // Unreachable while SUPPORTED and this match agree; a unit test checks they do.
            tracing::error!(api = ?std::mem::discriminant(&other), "no handler for an advertised API");
            return None;
        }
    })
}

/// A Kafka string from a Rust string.
pub fn kstr(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Error code for "topic or partition unknown".
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Error code for "topic id unknown" (KIP-516).
pub const UNKNOWN_TOPIC_ID: i16 = 100;
