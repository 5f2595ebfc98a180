//! Round trip through the client progenitor generated from the OpenAPI 3.0
//! edition: getCurrentSession, listDevices, getDevice, untrustDevice on a
//! device other than the token's own, sessionHeartbeat, and two pages of
//! listSecurityEvents, then a sign-in through createSession with the service
//! key, whose token lists its user's one device, checking the typed
//! results. Exits non-zero on the
//! first failed check, naming the operation.
//!
//! Environment:
//!   API_BASE_URL   e.g. http://127.0.0.1:8080 (required)
//!   API_TOKEN      a bearer token (required); its own device is never untrusted
//!   OWN_DEVICE_ID  the token's own device id (required)
//!   SERVICE_KEY    a service key (required): the sign-in through createSession
//!   TARGET_TOKEN   optional: a token of a session on the device to untrust,
//!                  which must be refused (401) afterwards

mod generated {
    #![allow(clippy::all, unused_imports, dead_code)]
    include!(concat!(env!("OUT_DIR"), "/codegen.rs"));
}

use std::{num::NonZeroU32, process::ExitCode};

use generated::{types, Client, Error};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} must be set"))
}

fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("check failed: {}", message()))
    }
}

/// The operation's name with what went wrong, the body of a documented error included.
fn failed(operation: &str, error: Error<types::ErrorResponse>) -> String {
    match error {
        Error::ErrorResponse(r) => format!(
            "{operation} answered {}: {}",
            r.status(),
            r.into_inner().error
        ),
        other => format!("{operation} failed: {other}"),
    }
}

fn client(base_url: &str, token: &str) -> Result<Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|e| format!("API_TOKEN is not a header value: {e}"))?;
    headers.insert(reqwest::header::AUTHORIZATION, value);
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Client::new_with_client(base_url, http))
}

async fn round_trip() -> Result<(), String> {
    let base_url = env("API_BASE_URL")?;
    let own_device_id = env("OWN_DEVICE_ID")?;
    let api = client(&base_url, &env("API_TOKEN")?)?;

    let current = api
        .get_current_session(None)
        .await
        .map_err(|e| failed("getCurrentSession", e))?
        .into_inner();
    check(current.session.is_current, || {
        "getCurrentSession: session.isCurrent".into()
    })?;
    check(current.device.id == own_device_id, || {
        format!(
            "getCurrentSession: device {} is the own device",
            current.device.id
        )
    })?;
    println!(
        "getCurrentSession: session {} on \"{}\"",
        current.session.id, current.device.device_name
    );

    let devices = api
        .list_devices(None)
        .await
        .map_err(|e| failed("listDevices", e))?
        .into_inner()
        .devices;
    check(devices.len() >= 2, || {
        format!("listDevices: at least two devices (got {})", devices.len())
    })?;
    let marked: Vec<&types::Device> = devices.iter().filter(|d| d.is_current).collect();
    check(marked.len() == 1 && marked[0].id == own_device_id, || {
        "listDevices: exactly the own device has isCurrent".into()
    })?;
    let target = devices
        .iter()
        .find(|d| d.id != own_device_id && d.is_trusted)
        .ok_or("listDevices: a trusted device other than the token's own")?;
    check(target.trust_expires_at.is_some(), || {
        "listDevices: a trusted device has trustExpiresAt".into()
    })?;
    println!(
        "listDevices: {} devices; untrusting \"{}\" ({})",
        devices.len(),
        target.device_name,
        target.id
    );

    let target_id: types::GetDeviceId = target.id.parse().map_err(|e| format!("device id: {e}"))?;
    let details = api
        .get_device(&target_id, None)
        .await
        .map_err(|e| failed("getDevice", e))?
        .into_inner()
        .device;
    check(
        details.id == target.id && !details.sessions.is_empty(),
        || "getDevice: the target with its active sessions".into(),
    )?;
    println!(
        "getDevice: \"{}\", {} active session(s), trust level {:?}",
        details.device_name,
        details.sessions.len(),
        details.trust_level
    );

    let untrust_id: types::UntrustDeviceId =
        target.id.parse().map_err(|e| format!("device id: {e}"))?;
    let untrusted = api
        .untrust_device(&untrust_id, None)
        .await
        .map_err(|e| failed("untrustDevice", e))?
        .into_inner();
    check(
        untrusted.success && untrusted.message == "Device untrusted successfully",
        || format!("untrustDevice: {untrusted:?}"),
    )?;
    let after = api
        .get_device(&target_id, None)
        .await
        .map_err(|e| failed("getDevice", e))?
        .into_inner()
        .device;
    check(
        !after.is_trusted && after.trust_expires_at.is_none() && after.sessions.is_empty(),
        || {
            format!(
                "getDevice after untrust: not trusted, no trustExpiresAt, no session ({after:?})"
            )
        },
    )?;
    println!("untrustDevice: {}", untrusted.message);
    if let Ok(token) = env("TARGET_TOKEN") {
        match client(&base_url, &token)?.get_current_session(None).await {
            Err(Error::ErrorResponse(r)) if r.status() == 401 => {
                println!(
                    "the untrusted device's token is refused: 401 {}",
                    r.into_inner().error
                )
            }
            other => {
                return Err(format!(
                    "the untrusted device's token must get 401, got {other:?}"
                ))
            }
        }
    }

    let own_session: types::SessionHeartbeatId = current
        .session
        .id
        .parse()
        .map_err(|e| format!("session id: {e}"))?;
    let beat = api
        .session_heartbeat(&own_session, None)
        .await
        .map_err(|e| failed("sessionHeartbeat", e))?
        .into_inner();
    check(beat.new_expiry >= current.session.expires_at, || {
        format!(
            "sessionHeartbeat: newExpiry {} moves forward",
            beat.new_expiry
        )
    })?;
    println!("sessionHeartbeat: new expiry {}", beat.new_expiry);

    let limit = NonZeroU32::new(2);
    let first = api
        .list_security_events(None, limit, None)
        .await
        .map_err(|e| failed("listSecurityEvents", e))?
        .into_inner();
    check(first.events.len() == 2, || {
        format!(
            "listSecurityEvents: a full first page ({})",
            first.events.len()
        )
    })?;
    check(
        first.events[0].type_ == types::SecurityEventType::DeviceUntrusted,
        || {
            format!(
                "listSecurityEvents: the newest event is the untrust ({:?})",
                first.events[0].type_
            )
        },
    )?;
    let cursor: types::ListSecurityEventsCursor = first
        .next_cursor
        .as_deref()
        .ok_or("listSecurityEvents: a first page of 2 out of 3 or more events has nextCursor")?
        .parse()
        .map_err(|e| format!("nextCursor: {e}"))?;
    let second = api
        .list_security_events(Some(&cursor), limit, None)
        .await
        .map_err(|e| failed("listSecurityEvents", e))?
        .into_inner();
    check(!second.events.is_empty(), || {
        "listSecurityEvents: a second page".into()
    })?;
    check(
        second
            .events
            .iter()
            .all(|e| first.events.iter().all(|f| f.id != e.id)),
        || "listSecurityEvents: no event on both pages".into(),
    )?;
    println!(
        "listSecurityEvents: {} + {} events on two pages",
        first.events.len(),
        second.events.len()
    );

    // The sign-in service: createSession with the service key; the token it
    // returns lists its user's one device.
    let platform = client(&base_url, &env("SERVICE_KEY")?)?;
    let user = format!("progenitor-sign-in-{}", std::process::id());
    let request: types::CreateSessionRequest = serde_json::from_value(serde_json::json!({
        "userId": user,
        "device": {"fingerprint": "fp-progenitor", "deviceName": "Progenitor laptop"}
    }))
    .map_err(|e| format!("CreateSessionRequest: {e}"))?;
    let created = platform
        .create_session(None, &request)
        .await
        .map_err(|e| failed("createSession", e))?
        .into_inner();
    check(created.new_device, || "createSession: a new device".into())?;
    let mine = client(&base_url, &created.token)?
        .list_devices(None)
        .await
        .map_err(|e| failed("listDevices with the new token", e))?
        .into_inner();
    check(mine.devices.len() == 1 && mine.devices[0].is_current, || {
        "listDevices with the new token: its one device, current".into()
    })?;
    println!("createSession: {user} signed in; its token lists its device");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match round_trip().await {
        Ok(()) => {
            println!("rust (progenitor): round trip passed");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("rust (progenitor): {message}");
            ExitCode::FAILURE
        }
    }
}
