//! DescribeCluster (KIP-700): the cluster id, the controller and the brokers, which for a
//! single-node sluice is this broker in every role.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;

use super::kstr;
use crate::broker::Broker;

/// Authorized-operations value meaning "not requested".
const OPS_NOT_REQUESTED: i32 = i32::MIN;
/// Endpoint type of brokers (KIP-919); 2 asks for controllers.
const ENDPOINT_BROKERS: i8 = 1;

/// Cluster operations a client may perform, as the bit field Kafka reports when no
/// authorizer is configured (every operation the CLUSTER resource supports): CREATE (5),
/// ALTER (7), DESCRIBE (8), CLUSTER_ACTION (9), DESCRIBE_CONFIGS (10), ALTER_CONFIGS (11),
/// IDEMPOTENT_WRITE (12). sluice has no ACLs yet, so everything is allowed.
const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

/// Describes the cluster.
pub fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    if version >= 1 {
        response.endpoint_type = request.endpoint_type;
        if request.endpoint_type != ENDPOINT_BROKERS {
            response.error_code = ResponseError::MismatchedEndpointType.code();
            response.error_message = Some(kstr(format!(
                "endpoint type {} was asked for, but sluice serves only brokers (1); controllers run inside the broker",
                request.endpoint_type
            )));
            return response;
        }
    }
    response.cluster_id = kstr(broker.topics.cluster_id());
    response.controller_id = BrokerId(broker.config.node_id);
    let mut b = DescribeClusterBroker::default();
    b.broker_id = BrokerId(broker.config.node_id);
    b.host = kstr(broker.advertised_host.clone());
    b.port = broker.advertised_port;
    response.brokers = vec![b];
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        OPS_NOT_REQUESTED
    };
    response
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, ResponseKind};

    use super::*;
    use crate::handlers::test_support::{assert_encodes, test_broker, versions};

    #[test]
    fn describes_this_broker_at_every_version() {
        let (_dir, broker) = test_broker();
        for v in versions(ApiKey::DescribeCluster) {
            for endpoint_type in [1, 2] {
                let mut request = DescribeClusterRequest::default();
                request.include_cluster_authorized_operations = true;
                request.endpoint_type = endpoint_type;
                let response = handle(&broker, request, v);
                if v == 0 || endpoint_type == 1 {
                    assert_eq!(response.error_code, 0);
                    assert_eq!(response.brokers.len(), 1);
                    assert_eq!(response.cluster_id.as_str(), broker.topics.cluster_id());
                } else {
                    assert_eq!(response.error_code, 114);
                }
                assert_encodes(&ResponseKind::DescribeCluster(response), v);
            }
        }
    }
}
