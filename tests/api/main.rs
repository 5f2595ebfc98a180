//! Tests through the real server: HTTP on a random port, real databases.

mod conformance;
mod helpers;

mod auth;
mod cli;
mod devices;
mod fuzz;
mod hardening;
mod logs;
mod metrics;
mod races;
mod request_ids;
mod routing;
mod sessions;
