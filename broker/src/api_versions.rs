//! The APIs sluice implements and the version ranges it serves: exactly what ApiVersions
//! advertises and what the dispatcher accepts. An API is listed only once its handler
//! implements the semantics of every listed version.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

/// `(api, min version, max version)` of every implemented API.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The range served for `api`, if implemented.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, min, max)| (*min, *max))
}

/// True when `version` of `api` is served.
pub fn is_supported(api: ApiKey, version: i16) -> bool {
    supported_range(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

/// The ApiVersions response; `error_code` is 35 (UNSUPPORTED_VERSION) when the client asked
/// for a version we do not serve, in which case it is encoded as v0.
pub fn response(_request: &ApiVersionsRequest, error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::{ProduceRequest, RequestHeader, RequestKind};
    use kafka_protocol::protocol::Encodable;

    use crate::dispatch::Reply;

    use super::*;

    #[test]
    fn advertised_ranges_are_within_what_the_codec_supports() {
        for (key, min, max) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(*min >= codec.min && *max <= codec.max, "{key:?}");
        }
    }

    /// A default request of every advertised API; add an API here when adding it to
    /// SUPPORTED.
    fn default_request(api: ApiKey) -> RequestKind {
        match api {
            ApiKey::Produce => {
                let mut r = ProduceRequest::default();
                r.acks = -1;
                RequestKind::Produce(r)
            }
            ApiKey::Fetch => RequestKind::Fetch(Default::default()),
            ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
            ApiKey::Metadata => RequestKind::Metadata(Default::default()),
            ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
            ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
            ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
            ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(Default::default()),
            ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
            ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(Default::default()),
            ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
            ApiKey::IncrementalAlterConfigs => {
                RequestKind::IncrementalAlterConfigs(Default::default())
            }
            ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
            ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
            ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
            ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
            ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
            ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
            ApiKey::OffsetDelete => RequestKind::OffsetDelete(Default::default()),
            ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
            ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(Default::default()),
            ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(Default::default()),
            ApiKey::EndTxn => RequestKind::EndTxn(Default::default()),
            ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(Default::default()),
            ApiKey::DescribeTransactions => RequestKind::DescribeTransactions(Default::default()),
            ApiKey::ListTransactions => RequestKind::ListTransactions(Default::default()),
            ApiKey::DescribeProducers => RequestKind::DescribeProducers(Default::default()),
            other => panic!("{other:?} is advertised but has no default request in this test"),
        }
    }

    /// A request frame (header and body, no length prefix) of `api` at `version`.
    fn frame(api: ApiKey, version: i16) -> Bytes {
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = 7;
        header.client_id = Some(crate::handlers::kstr("routing-test"));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("header encodes");
        default_request(api)
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version} request does not encode: {e}"));
        buf.freeze()
    }

    #[tokio::test]
    async fn every_advertised_api_is_answered_at_every_version() {
        let (_dir, broker) = crate::handlers::test_support::test_broker();
        for (key, min, max) in SUPPORTED {
            for version in *min..=*max {
                let reply = crate::dispatch::dispatch(&broker, frame(*key, version), None).await;
                if let Reply::Silent | Reply::Close(_) = reply {
                    panic!("{key:?} v{version} was answered with {reply:?}");
                }
            }
        }
    }
}
