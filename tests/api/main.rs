//! Tests through the real server: HTTP on a random port, real databases.

mod conformance;
mod helpers;

mod auth;
mod cli;
mod client_addr;
mod devices;
mod examples;
mod fuzz;
mod group_commit;
mod hardening;
mod hostile;
mod logs;
mod metrics;
mod platform;
mod prepared_statements;
mod races;
mod request_ids;
mod routing;
mod security_events;
mod sessions;
mod webhooks;
