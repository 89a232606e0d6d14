//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups and DeleteGroups, translated to and from the coordinator.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};

use super::{kstr, ClientInfo};
use crate::broker::Broker;
use crate::groups::group::{JoinRequest, Joined, Synced};
use crate::groups::member::{JoinOutcome, SyncOutcome};
use crate::groups::{errors, validate_group_id};

/// Authorized-operations value meaning "not requested".
const OPS_NOT_REQUESTED: i32 = i32::MIN;
/// FindCoordinator key type of group ids.
const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator key type of transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// FindCoordinator: this broker coordinates every group and every transactional id.
pub fn find_coordinator(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let answer = |key: &str| -> (i16, Option<String>) {
        match request.key_type {
            KEY_TYPE_GROUP => match validate_group_id(key) {
                Ok(()) => (errors::NONE, None),
                Err(code) => (code, Some(format!("group id {key:?} is empty or too long"))),
            },
            KEY_TYPE_TRANSACTION if key.is_empty() => (
                crate::txn::errors::INVALID_REQUEST,
                Some("the transactional id is empty".into()),
            ),
            KEY_TYPE_TRANSACTION => (errors::NONE, None),
            other => (
                crate::txn::errors::INVALID_REQUEST,
                Some(format!("unknown coordinator key type {other}")),
            ),
        }
    };
    let mut response = FindCoordinatorResponse::default();
    let node = BrokerId(broker.config.node_id);
    if version >= 4 {
        for key in &request.coordinator_keys {
            let (code, message) = answer(key.as_str());
            let mut c = Coordinator::default();
            c.key = key.clone();
            c.error_code = code;
            c.error_message = message.map(kstr);
            if code == errors::NONE {
                c.node_id = node;
                c.host = kstr(broker.advertised_host.clone());
                c.port = broker.advertised_port;
            } else {
                c.node_id = BrokerId(-1);
                c.port = -1;
            }
            response.coordinators.push(c);
        }
        return response;
    }
    let (code, message) = answer(request.key.as_str());
    response.error_code = code;
    if version >= 1 {
        response.error_message = message.map(kstr);
    }
    if code == errors::NONE {
        response.node_id = node;
        response.host = kstr(broker.advertised_host.clone());
        response.port = broker.advertised_port;
    } else {
        response.node_id = BrokerId(-1);
        response.port = -1;
    }
    response
}

fn join_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = outcome.error_code;
    r.generation_id = outcome.generation;
    if version >= 7 {
        r.protocol_type = outcome.protocol_type.map(kstr);
        r.protocol_name = outcome.protocol_name.map(kstr);
    } else {
        r.protocol_name = Some(kstr(outcome.protocol_name.unwrap_or_default()));
    }
    if version >= 9 {
        r.skip_assignment = outcome.skip_assignment;
    }
    r.leader = kstr(outcome.leader);
    r.member_id = kstr(outcome.member_id);
    r.members = outcome
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = kstr(id);
            if version >= 5 {
                m.group_instance_id = instance.map(kstr);
            }
            m.metadata = metadata;
            m
        })
        .collect();
    r
}

/// JoinGroup: waits (asynchronously) until the rebalance completes.
pub async fn join_group(
    broker: &Broker,
    client: &ClientInfo,
    request: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client.client_id.clone(),
        client_host: format!("/{}", client.host),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let outcome = match broker.groups.join(request.group_id.as_str(), join) {
        Joined::Now(outcome) => outcome,
        Joined::Later(rx) => rx.await.unwrap_or(JoinOutcome {
            error_code: errors::UNKNOWN_MEMBER_ID,
            generation: -1,
            member_id: request.member_id.to_string(),
            ..JoinOutcome::default()
        }),
    };
    join_response(outcome, version)
}

/// SyncGroup: the leader's assignment is distributed; followers wait for it.
pub async fn sync_group(
    broker: &Broker,
    request: SyncGroupRequest,
    version: i16,
) -> SyncGroupResponse {
    let assignments = request
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let synced = broker.groups.sync(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|s| s.as_str()),
        request.generation_id,
        (
            request.protocol_type.as_ref().map(|s| s.as_str()),
            request.protocol_name.as_ref().map(|s| s.as_str()),
        ),
        assignments,
    );
    let outcome = match synced {
        Synced::Now(o) => o,
        Synced::Later(rx) => rx.await.unwrap_or(SyncOutcome {
            error_code: errors::REBALANCE_IN_PROGRESS,
            ..SyncOutcome::default()
        }),
    };
    let mut r = SyncGroupResponse::default();
    r.error_code = outcome.error_code;
    if version >= 5 {
        r.protocol_type = outcome.protocol_type.map(kstr);
        r.protocol_name = outcome.protocol_name.map(kstr);
    }
    r.assignment = outcome.assignment;
    r
}

/// Heartbeat.
pub fn heartbeat(broker: &Broker, request: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
    let mut r = HeartbeatResponse::default();
    r.error_code = broker.groups.heartbeat(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|s| s.as_str()),
        request.generation_id,
    );
    r
}

/// LeaveGroup: one member (v0-2) or a batch (v3+).
pub fn leave_group(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let mut r = LeaveGroupResponse::default();
    match broker.groups.leave(request.group_id.as_str(), &leaving) {
        Err(code) => r.error_code = code,
        Ok(codes) if version >= 3 => {
            r.members = leaving
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    let mut m = MemberResponse::default();
                    m.member_id = kstr(id);
                    m.group_instance_id = instance.map(kstr);
                    m.error_code = code;
                    m
                })
                .collect();
        }
        Ok(codes) => r.error_code = codes.first().copied().unwrap_or(errors::NONE),
    }
    r
}

/// DescribeGroups: members, assignments and state; an unknown group is reported Dead.
pub fn describe_groups(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    for id in request.groups {
        let mut g = DescribedGroup::default();
        g.group_id = id.clone();
        if version >= 3 {
            g.authorized_operations = OPS_NOT_REQUESTED;
        }
        if let Err(code) = validate_group_id(id.as_str()) {
            g.error_code = code;
        } else if let Some(d) = broker.groups.describe(id.as_str()) {
            g.group_state = kstr(d.state);
            g.protocol_type = kstr(d.protocol_type);
            g.protocol_data = kstr(d.protocol);
            g.members = d
                .members
                .into_iter()
                .map(
                    |(member_id, instance, client_id, host, metadata, assignment)| {
                        let mut m = DescribedGroupMember::default();
                        m.member_id = kstr(member_id);
                        if version >= 4 {
                            m.group_instance_id = instance.map(kstr);
                        }
                        m.client_id = kstr(client_id);
                        m.client_host = kstr(host);
                        m.member_metadata = metadata;
                        m.member_assignment = assignment;
                        m
                    },
                )
                .collect();
        } else {
            g.group_state = kstr("Dead");
        }
        r.groups.push(g);
    }
    r
}

/// ListGroups, with the state (v4+) and type (v5+) filters.
pub fn list_groups(
    broker: &Broker,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let mut r = ListGroupsResponse::default();
    for (id, protocol_type, state) in broker.groups.list() {
        if !states.is_empty() && !states.contains(&state.to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == "classic") {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(kstr(id));
        g.protocol_type = kstr(protocol_type);
        if version >= 4 {
            g.group_state = kstr(state);
        }
        if version >= 5 {
            g.group_type = kstr("classic");
        }
        r.groups.push(g);
    }
    r
}

/// DeleteGroups: refuses groups with members (NON_EMPTY_GROUP).
pub fn delete_groups(
    broker: &Broker,
    request: DeleteGroupsRequest,
    _version: i16,
) -> DeleteGroupsResponse {
    let mut r = DeleteGroupsResponse::default();
    for id in request.groups_names {
        let mut g = DeletableGroupResult::default();
        g.error_code = broker.groups.delete(id.as_str());
        g.group_id = id;
        r.results.push(g);
    }
    r
}
