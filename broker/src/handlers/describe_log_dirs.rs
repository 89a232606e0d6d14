//! DescribeLogDirs: the one log directory (the data directory), the size of every (or each
//! requested) partition in it and, from v4, the volume's total and usable bytes.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::kstr;
use crate::broker::Broker;

/// Describes the data directory.
pub fn handle(
    broker: &Broker,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    let mut dir = DescribeLogDirsResult::default();
    let path = broker.config.data_dir_absolute();
    dir.log_dir = kstr(path.display().to_string());
    let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for (topic, partition) in wanted_partitions(broker, &request) {
        if let Some(log) = broker.log(&topic, partition) {
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = partition;
            p.partition_size = i64::try_from(log.size_bytes()).unwrap_or(i64::MAX);
            topics.entry(topic).or_default().push(p);
        }
    }
    dir.topics = topics
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            let mut t = DescribeLogDirsTopic::default();
            t.name = TopicName(kstr(name));
            t.partitions = partitions;
            t
        })
        .collect();
    if version >= 4 {
        if let Some((total, usable)) = volume_bytes(&path) {
            dir.total_bytes = total;
            dir.usable_bytes = usable;
        }
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![dir];
    response
}

/// The (topic, partition) pairs asked for; a null topic list means every partition.
fn wanted_partitions(broker: &Broker, request: &DescribeLogDirsRequest) -> Vec<(String, i32)> {
    match &request.topics {
        None => broker
            .topics
            .all()
            .into_iter()
            .flat_map(|m| (0..m.partitions).map(move |p| (m.name.clone(), p)))
            .collect(),
        Some(topics) => topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect(),
    }
}

/// Total and usable (available to unprivileged users) bytes of the volume holding `path`.
#[allow(clippy::unnecessary_cast)] // statvfs field widths differ between platforms
fn volume_bytes(path: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string and `stat` points to writable memory the
    // size of a `statvfs`; the call only writes into it.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled the struct (which was zeroed anyway).
    let stat = unsafe { stat.assume_init() };
    let block = stat.f_frsize as u64;
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(block)).unwrap_or(i64::MAX);
    Some((bytes(stat.f_blocks as u64), bytes(stat.f_bavail as u64)))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::test_support::{assert_encodes, create_topic, test_broker, versions};

    #[test]
    fn lists_partitions_at_every_version() {
        let (_dir, broker) = test_broker();
        create_topic(&broker, "t", 2);
        create_topic(&broker, "u", 1);
        for v in versions(ApiKey::DescribeLogDirs) {
            let mut every = DescribeLogDirsRequest::default();
            every.topics = None;
            let all = handle(&broker, every, v);
            let user_topics = all.results[0]
                .topics
                .iter()
                .filter(|t| !t.name.starts_with("__"))
                .count();
            assert_eq!(user_topics, 2);
            assert!(Path::new(all.results[0].log_dir.as_str()).is_absolute());
            if v >= 4 {
                assert!(all.results[0].total_bytes > 0);
            }
            assert_encodes(&ResponseKind::DescribeLogDirs(all), v);

            let mut request = DescribeLogDirsRequest::default();
            let mut t = DescribableLogDirTopic::default();
            t.topic = TopicName(kstr("t"));
            t.partitions = vec![1, 7];
            request.topics = Some(vec![t]);
            let some = handle(&broker, request, v);
            assert_eq!(some.results[0].topics.len(), 1);
            assert_eq!(some.results[0].topics[0].partitions.len(), 1);
            assert_encodes(&ResponseKind::DescribeLogDirs(some), v);
        }
    }
}
