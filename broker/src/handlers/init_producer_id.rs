//! InitProducerId. For idempotent (non-transactional) producers: a new producer id with
//! epoch 0, or, when the producer names its id and epoch (v3+, KIP-360), the same id with
//! the next epoch. For transactional producers the transaction coordinator decides (a new
//! id, or the id's next epoch, fencing older producers).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;

use super::INVALID_REQUEST;
use crate::broker::Broker;
use crate::topics::{TopicError, TopicRegistry};
use crate::txn::{errors, ProducerRef};

/// Producer ids reserved in `cluster-metadata.json` at a time, so the file is written once
/// per this many InitProducerId calls rather than on each. Ids of a block not handed out
/// before a restart are skipped, never reused.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Hands out producer ids unique across restarts, from blocks reserved in the registry.
#[derive(Debug, Default)]
pub struct ProducerIds {
    /// `(next id, end of the reserved block)`; empty until the first call.
    block: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// A new producer id; reserves (and persists) a new block when the current one is used up.
    pub fn allocate(&self, registry: &TopicRegistry) -> Result<i64, TopicError> {
        let mut block = self.block.lock();
        if block.0 >= block.1 {
            let first = registry.reserve_producer_ids(PRODUCER_ID_BLOCK)?;
            *block = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}

/// Answers InitProducerId. The v6 fields (ongoing transaction) keep their defaults, which
/// the codec requires for the versions that lack them.
pub fn handle(
    broker: &Broker,
    request: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let (requested_id, requested_epoch) = if version >= 3 {
        (request.producer_id.0, request.producer_epoch)
    } else {
        (-1, -1)
    };
    if (requested_id < 0) != (requested_epoch < 0) {
        response.error_code = INVALID_REQUEST;
        return response;
    }
    if let Some(transactional_id) = request.transactional_id.as_deref() {
        let expected = (requested_id >= 0).then_some(ProducerRef {
            id: requested_id,
            epoch: requested_epoch,
        });
        let fenced = if version >= 4 {
            errors::PRODUCER_FENCED
        } else {
            errors::INVALID_PRODUCER_EPOCH
        };
        let allocate = || {
            broker.producer_ids.allocate(&broker.topics).map_err(|e| {
                tracing::error!(error = %e, "cannot reserve producer ids");
                ResponseError::CoordinatorNotAvailable.code()
            })
        };
        match broker.transactions.init_producer(
            transactional_id.as_str(),
            request.transaction_timeout_ms,
            expected,
            fenced,
            &allocate,
            broker,
        ) {
            Ok(producer) => {
                response.producer_id = ProducerId(producer.id);
                response.producer_epoch = producer.epoch;
            }
            Err(code) => response.error_code = code,
        }
        return response;
    }
    // KIP-360: a producer that already has an id asks for the next epoch; when the epoch
    // is exhausted it gets a new id.
    if let Some(epoch) = (requested_id >= 0)
        .then(|| requested_epoch.checked_add(1))
        .flatten()
    {
        response.producer_id = ProducerId(requested_id);
        response.producer_epoch = epoch;
        return response;
    }
    match broker.producer_ids.allocate(&broker.topics) {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve producer ids");
            response.error_code = ResponseError::CoordinatorNotAvailable.code();
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, ResponseKind, TransactionalId};

    use super::*;
    use crate::handlers::kstr;
    use crate::handlers::test_support::{assert_encodes, test_broker, versions};

    fn plain() -> InitProducerIdRequest {
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = None;
        r
    }

    #[test]
    fn ids_are_new_unique_and_survive_restarts() {
        let (dir, broker) = test_broker();
        let mut seen = std::collections::HashSet::new();
        for version in versions(ApiKey::InitProducerId) {
            let r = handle(&broker, plain(), version);
            assert_eq!(r.error_code, 0);
            assert_eq!(r.producer_epoch, 0);
            assert!(r.producer_id.0 >= 0);
            assert!(seen.insert(r.producer_id.0), "{:?} reused", r.producer_id);
            assert_encodes(&ResponseKind::InitProducerId(r), version);
        }
        drop(broker);
        let config = crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let broker = Broker::open(config).unwrap();
        let r = handle(&broker, plain(), 4);
        assert!(
            !seen.contains(&r.producer_id.0),
            "{:?} reused",
            r.producer_id
        );
    }

    #[test]
    fn epoch_bump_keeps_the_id_until_the_epoch_is_exhausted() {
        let (_dir, broker) = test_broker();
        let first = handle(&broker, plain(), 4);
        let mut bump = plain();
        bump.producer_id = first.producer_id;
        bump.producer_epoch = 0;
        let r = handle(&broker, bump.clone(), 4);
        assert_eq!(
            (r.error_code, r.producer_id, r.producer_epoch),
            (0, first.producer_id, 1)
        );
        // v2 has no id/epoch fields: always a new id.
        let r = handle(&broker, bump.clone(), 2);
        assert_ne!(r.producer_id, first.producer_id);
        bump.producer_epoch = i16::MAX;
        let r = handle(&broker, bump.clone(), 5);
        assert_eq!(r.error_code, 0);
        assert_ne!(r.producer_id, first.producer_id);
        assert_eq!(r.producer_epoch, 0);
        bump.producer_epoch = -1;
        assert_eq!(handle(&broker, bump, 5).error_code, INVALID_REQUEST);
    }

    #[test]
    fn transactional_ids_get_their_next_epoch_and_fence_older_producers() {
        let (_dir, broker) = test_broker();
        let init = |version: i16, expected: Option<(i64, i16)>, timeout: i32| {
            let mut r = plain();
            r.transactional_id = Some(TransactionalId(kstr("tx")));
            r.transaction_timeout_ms = timeout;
            if let Some((id, epoch)) = expected {
                r.producer_id = ProducerId(id);
                r.producer_epoch = epoch;
            }
            let response = handle(&broker, r, version);
            assert_encodes(&ResponseKind::InitProducerId(response.clone()), version);
            response
        };
        let first = init(4, None, 60_000);
        assert_eq!((first.error_code, first.producer_epoch), (0, 0));
        let again = init(1, None, 60_000);
        assert_eq!(
            (again.error_code, again.producer_id, again.producer_epoch),
            (0, first.producer_id, 1)
        );
        // KIP-360: a producer naming a stale epoch is fenced (PRODUCER_FENCED from v4).
        let stale = Some((first.producer_id.0, 0));
        assert_eq!(init(4, stale, 60_000).error_code, errors::PRODUCER_FENCED);
        assert_eq!(
            init(3, stale, 60_000).error_code,
            errors::INVALID_PRODUCER_EPOCH
        );
        let current = Some((first.producer_id.0, 1));
        assert_eq!(init(5, current, 60_000).producer_epoch, 2);
        assert_eq!(
            init(4, None, 900_001).error_code,
            errors::INVALID_TRANSACTION_TIMEOUT
        );
        assert_eq!(
            init(4, None, 0).error_code,
            errors::INVALID_TRANSACTION_TIMEOUT
        );
        let mut empty = plain();
        empty.transactional_id = Some(TransactionalId(kstr("")));
        assert_eq!(handle(&broker, empty, 4).error_code, INVALID_REQUEST);
    }
}
