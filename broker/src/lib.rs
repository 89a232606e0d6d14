//! sluice-broker: the Kafka wire-protocol front of sluice, and the `sluice` binary.

#![warn(missing_docs)]

pub mod alloc;
pub mod api_versions;
pub mod broker;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod fetch_encode;
pub mod fetch_session;
pub mod frame;
pub mod groups;
pub mod handlers;
pub mod internal_log;
pub mod server;
pub mod sigbus;
pub mod topics;
pub mod txn;
