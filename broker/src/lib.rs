//! sluice-broker: the Kafka wire-protocol front of sluice, and the `sluice` binary.

#![warn(missing_docs)]

pub mod config;
pub mod server;
