//! flashback-devices: the Device/Session Management API of the Flashback
//! platform, served from `openapi/openapi.yaml`.
//!
//! spec → generated types (`api::types`) → handlers (`api::devices`,
//! `api::sessions`, `api::health`) → data access (`db::devices`,
//! `db::sessions`) → database (`db`). Authentication lives in `auth`.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod docs;
pub mod middleware;
pub mod provisioning;
pub mod startup;
pub mod state;
pub mod telemetry;
