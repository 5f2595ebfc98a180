//! The `security` tag: one handler per operationId.

use actix_web::{get, web};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use super::{
    common::SecuredFailures,
    error::{respond, Respond},
    types::{responses, ErrorResponse, SecurityEventListResponse, SecurityEventWebhook},
    views::security_event,
};
use crate::{
    auth::{Bearer, SessionOf},
    cursor::{CursorKey, InvalidCursor},
    db::{self, models::SecurityEventRow, one_statement::Checked},
    state::AppState,
};

/// The public message of a 400 for a cursor this server did not issue.
pub const INVALID_CURSOR: &str = "Invalid cursor: pass the nextCursor of a previous page unchanged";

/// The query of `listSecurityEvents`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventPageQuery {
    /// How many events a page holds at most.
    #[param(value_type = i32, required = false, minimum = 1, maximum = 100, default = 20)]
    #[serde(default)]
    pub limit: PageLimit,
    /// Where the page starts: the `nextCursor` of the previous page, unchanged.
    #[param(value_type = String, required = false, min_length = 1, max_length = 256, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// `limit`: an integer from 1 to 100 (20 when absent). Anything else fails
/// the query's extraction, which `error::query_error_handler` answers with
/// a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(i64);

impl PageLimit {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 100;
    pub const DEFAULT: i64 = 20;

    pub fn get(self) -> i64 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

impl<'de> Deserialize<'de> for PageLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        // Digits only: no sign, no blank, no exponent, no leading `+`.
        let value = (!raw.is_empty() && raw.len() <= 3 && raw.bytes().all(|b| b.is_ascii_digit()))
            .then(|| raw.parse::<i64>().ok())
            .flatten()
            .filter(|n| (Self::MIN..=Self::MAX).contains(n));
        value.map(Self).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "limit must be an integer from {} to {}",
                Self::MIN,
                Self::MAX
            ))
        })
    }
}

/// List the caller's security events
#[utoipa::path(
    operation_id = "listSecurityEvents",
    params(EventPageQuery),
    responses(
        (status = 200, description = "One page of the caller's security events, newest first.", body = SecurityEventListResponse),
        (status = 400, description = "`limit` is not an integer from 1 to 100, or `cursor` is not a `nextCursor` this server issued for this caller; nothing was read.", body = ErrorResponse),
        (status = 500, description = "The events could not be read.", body = ErrorResponse),
        SecuredFailures,
    )
)]
#[get("/security-events")]
pub async fn list_security_events(
    bearer: Bearer,
    state: web::Data<AppState>,
    query: web::Query<EventPageQuery>,
) -> responses::ListSecurityEvents {
    let EventPageQuery { limit, cursor } = query.into_inner();
    let limit = limit.get();
    let key = state.cursor_key.clone();
    let page = bearer
        .read_checked(&state.db, move |conn, session| {
            caller_event_page(conn, &key, session, cursor.as_deref(), limit)
        })
        .await;
    respond(page)
}

impl Respond<Result<EventPage, InvalidCursor>> for responses::ListSecurityEvents {
    const FAILED: &'static str = "Failed to retrieve security events";

    fn done(page: Result<EventPage, InvalidCursor>) -> Self {
        match page {
            Ok(page) => Self::Ok(page.into()),
            Err(InvalidCursor) => Self::BadRequest(ErrorResponse::new(INVALID_CURSOR)),
        }
    }
}

/// One page of a user's events, newest first, and the cursor of the next
/// page if there is one: `listSecurityEvents` and `listUserSecurityEvents`.
pub struct EventPage {
    rows: Vec<SecurityEventRow>,
    next_cursor: Option<String>,
}

impl From<EventPage> for SecurityEventListResponse {
    fn from(EventPage { rows, next_cursor }: EventPage) -> Self {
        Self {
            success: true,
            events: rows.into_iter().filter_map(security_event).collect(),
            next_cursor,
        }
    }
}

/// The page of `user_id`'s events after `cursor` (checked for that user
/// only: a cursor is bound to its user).
pub(crate) fn event_page(
    conn: &mut db::AnyConnection,
    key: &CursorKey,
    user_id: &str,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Result<EventPage, InvalidCursor>, diesel::result::Error> {
    let Ok(after) = cursor.map(|c| key.open(user_id, c)).transpose() else {
        return Ok(Err(InvalidCursor));
    };
    // One more than the page: whether there is a next page at all.
    let rows = db::events::page(conn, user_id, after.as_ref(), limit + 1)?;
    Ok(Ok(EventPage::of(key, user_id, rows, limit)))
}

/// [`event_page`] of the caller of `session`, its session check in the
/// same query (`None`: the session is not active). A cursor that does not
/// open is refused after the session check alone.
fn caller_event_page(
    conn: &mut db::AnyConnection,
    key: &CursorKey,
    session: &SessionOf,
    cursor: Option<&str>,
    limit: i64,
) -> Result<Checked<Result<EventPage, InvalidCursor>>, diesel::result::Error> {
    let user_id = &session.user_id;
    let Ok(after) = cursor.map(|c| key.open(user_id, c)).transpose() else {
        let caller_device =
            db::sessions::active_device(conn, user_id, &session.session_id, session.now)?;
        return Ok(caller_device.map(|device| (device, Err(InvalidCursor))));
    };
    let page = db::events::page_for_session(
        conn,
        user_id,
        &session.session_id,
        session.now,
        after.as_ref(),
        limit + 1,
    )?;
    Ok(page.map(|(device, rows)| (device, Ok(EventPage::of(key, user_id, rows, limit)))))
}

impl EventPage {
    /// The page of `user_id`'s events whose `rows` were read with one more
    /// than `limit`: whether there is a next page at all.
    fn of(key: &CursorKey, user_id: &str, mut rows: Vec<SecurityEventRow>, limit: i64) -> Self {
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|last| key.seal(user_id, &last.position()))
        } else {
            None
        };
        Self { rows, next_cursor }
    }
}

/// A security event, pushed to the operator's endpoints
///
/// Not a handler: the request this server *sends* (`webhooks::dispatch`),
/// declared here so that the document utoipa assembles has the spec's
/// `webhooks.securityEvent` (`ApiDoc`'s `Webhooks` modifier moves it there)
/// and the contract test compares it like any operation.
#[utoipa::path(
    post,
    path = "securityEvent",
    operation_id = "securityEventWebhook",
    tag = "security",
    security(()),
    params(
        ("webhook-id" = String, Header, description = "The event id."),
        ("webhook-timestamp" = String, Header, pattern = "^[0-9]+$", description = "Unix seconds."),
        ("webhook-signature" = String, Header, pattern = "^v1,[A-Za-z0-9+/]+={0,2}$", description = "`v1,` + base64 HMAC-SHA256."),
    ),
    request_body(content = SecurityEventWebhook, content_type = "application/json"),
    responses(
        (status = 200, description = "Received; any 2xx acknowledges the delivery."),
    )
)]
#[allow(dead_code)]
pub fn security_event_webhook() {}
