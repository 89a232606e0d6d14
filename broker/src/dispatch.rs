//! Turns one request frame into one response frame: parses the header, checks the API and
//! version against what is served, decodes the body, runs the handler and encodes the
//! response with the header version the API expects. A request that cannot be understood
//! closes the connection (as Kafka does); ApiVersions with an unknown version is answered
//! with UNSUPPORTED_VERSION in the v0 layout so the client can retry.

use std::panic::AssertUnwindSafe;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::api_versions;
use crate::broker::Broker;
use crate::fetch_encode::{self, Chunk};
use crate::handlers;

/// What the connection does after a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this frame (length prefix included).
    Send(Bytes),
    /// Send this frame made of chunks, file ranges by sendfile (Fetch).
    Chunks(Vec<Chunk>),
    /// Send nothing (Produce with acks=0).
    Silent,
    /// Close the connection; the reason is logged.
    Close(String),
}

const UNSUPPORTED_VERSION: i16 = 35;

/// Handles one request frame (without its length prefix).
pub async fn dispatch(
    broker: &Broker,
    mut frame: Bytes,
    peer: Option<std::net::SocketAddr>,
) -> Reply {
    if frame.len() < 8 {
        return Reply::Close(format!(
            "request of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let Ok(api) = ApiKey::try_from(raw_key) else {
        return Reply::Close(format!("unknown API key {raw_key}"));
    };
    if !api_versions::is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            let body = api_versions::response(&ApiVersionsRequest::default(), UNSUPPORTED_VERSION);
            return encode(api, 0, correlation_id, &ResponseKind::ApiVersions(body));
        }
        let served = api_versions::supported_range(api)
            .map_or("not implemented".to_string(), |(a, b)| {
                format!("serves v{a}-v{b}")
            });
        return Reply::Close(format!("{api:?} v{version} is not supported ({served})"));
    }
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))?;
        let request = RequestKind::decode(api, &mut frame, version)?;
        Ok::<_, anyhow::Error>((header, request))
    }));
    let (header, request) = match decoded {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(e)) => return Reply::Close(format!("malformed {api:?} v{version} request: {e}")),
        Err(_) => return Reply::Close(format!("malformed {api:?} v{version} request")),
    };
    let client = header
        .client_id
        .as_ref()
        .map_or_else(String::new, |c| c.to_string());
    tracing::trace!(?api, version, correlation_id, client, "request");
    if let RequestKind::Fetch(fetch) = request {
        let response = handlers::fetch::handle(broker, fetch, version).await;
        return Reply::Chunks(fetch_encode::encode(correlation_id, version, &response));
    }
    let client = handlers::ClientInfo {
        client_id: client,
        host: peer.map_or_else(String::new, |p| p.ip().to_string()),
    };
    match handlers::handle(broker, &client, request, version).await {
        Some(response) => encode(api, version, correlation_id, &response),
        None => Reply::Silent,
    }
}

/// Encodes a response frame: length prefix, response header, body.
pub fn encode(api: ApiKey, version: i16, correlation_id: i32, body: &ResponseKind) -> Reply {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    let result = header
        .encode(&mut buf, header_version)
        .and_then(|_| body.encode(&mut buf, version));
    if let Err(e) = result {
        return Reply::Close(format!("cannot encode {api:?} v{version} response: {e}"));
    }
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Reply::Send(buf.freeze())
}
