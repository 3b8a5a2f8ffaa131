//! In-process and loopback simulators of the two systems prmsync talks to:
//! a Salesforce org (REST API subset) and a PRM (the v1 contract in docs/prm-api.yaml).
//! Tests, benchmarks and `prmsync sandbox serve` all use them.

pub mod prm;
pub mod salesforce;
pub mod sandbox;
