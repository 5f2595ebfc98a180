//! flashback-devices: the Device/Session Management API of the Flashback
//! platform, served from `openapi/openapi.yaml`.
//!
//! spec → generated types (`api::types`) → handlers (`api::devices`,
//! `api::sessions`, `api::security`, `api::health`) → data access
//! (`db::devices`, `db::sessions`, `db::events`) → database (`db`).
//! Authentication lives in `auth`, the client's address in `client_addr`;
//! security events are pushed to other services by `webhooks`. The command
//! line is parsed in `config` (plain data, which the server's modules build
//! their settings from) and run by `cli`.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client_addr;
pub mod config;
pub mod cursor;
pub mod db;
pub mod docs;
pub mod domain;
pub mod middleware;
pub mod provisioning;
pub mod rate_limit;
pub mod retention;
pub mod service_auth;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tokens;
pub mod webhooks;
