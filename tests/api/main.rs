//! Tests through the real server: HTTP on a random port, real databases.

mod conformance;
mod helpers;

mod auth;
mod cli;
mod devices;
mod routing;
mod sessions;
