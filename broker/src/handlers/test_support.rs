//! Helpers for handler unit tests: a broker on a temporary data directory, and a check that
//! a response encodes at every version an API advertises.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseKind};

use crate::broker::{Broker, NewTopic};
use crate::config::BrokerConfig;

/// A broker on a fresh temporary directory (dropped with the returned guard).
pub fn test_broker() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    };
    let broker = Broker::open(config).expect("broker opens");
    (dir, broker)
}

/// Creates topic `name` with `partitions` partitions and no explicit configs.
pub fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    broker
        .create_topic(NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor: 1,
            configs: Default::default(),
        })
        .expect("topic created");
}

/// The versions `api_versions` advertises for `api`.
pub fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = crate::api_versions::supported_range(api).expect("advertised");
    min..=max
}

/// Panics unless `response` (built for `version`) encodes at `version`: the codec refuses a
/// field the version does not have, which would close the client's connection.
pub fn assert_encodes(response: &ResponseKind, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = response.encode(&mut buf, version) {
        panic!("v{version} response does not encode: {e}\n{response:?}");
    }
}
