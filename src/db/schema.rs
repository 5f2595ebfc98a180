// @generated automatically by Diesel CLI.

diesel::table! {
    devices (id) {
        id -> Text,
        user_id -> Text,
        fingerprint -> Text,
        device_name -> Text,
        device_type -> Text,
        os -> Text,
        browser -> Text,
        user_agent -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        country -> Nullable<Text>,
        city -> Nullable<Text>,
        is_trusted -> Bool,
        trust_level -> Text,
        trust_expires_at -> Nullable<Timestamp>,
        last_seen -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::table! {
    service_keys (name) {
        name -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        device_id -> Text,
        ip_address -> Nullable<Text>,
        location -> Nullable<Text>,
        login_method -> Text,
        started_at -> Timestamp,
        last_activity -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    security_events (id) {
        id -> Text,
        user_id -> Text,
        event_type -> Text,
        occurred_at -> Timestamp,
        device_id -> Nullable<Text>,
        device_name -> Nullable<Text>,
        session_id -> Nullable<Text>,
        revoked_session_count -> Integer,
        actor_session_id -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        actor_service -> Nullable<Text>,
    }
}

diesel::table! {
    server_keys (purpose) {
        purpose -> Text,
        secret -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (event_id, url) {
        event_id -> Text,
        url -> Text,
        user_id -> Text,
        occurred_at -> Timestamp,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        enqueued_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_endpoints (url) {
        url -> Text,
    }
}

diesel::joinable!(sessions -> devices (device_id));

diesel::allow_tables_to_appear_in_same_query!(
    devices,
    security_events,
    server_keys,
    service_keys,
    sessions,
    webhook_deliveries,
    webhook_endpoints,
);
