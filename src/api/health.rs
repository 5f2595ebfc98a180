//! The `health` tag: probes for orchestrators, without authentication.

use actix_web::{get, web};

use super::types::{responses, ErrorResponse, HealthResponse};
use crate::state::AppState;

/// Liveness probe
#[utoipa::path(
    operation_id = "getHealth",
    security(()),
    responses((status = 200, description = "The process is up.", body = HealthResponse))
)]
#[get("/healthz")]
pub async fn get_health() -> responses::GetHealth {
    responses::GetHealth::Ok(HealthResponse {
        success: true,
        status: "ok".into(),
    })
}

/// Readiness probe
#[utoipa::path(
    operation_id = "getReadiness",
    security(()),
    responses(
        (status = 200, description = "The database answers; the server can take traffic.", body = HealthResponse),
        (status = 503, description = "The database does not answer.", body = ErrorResponse),
    )
)]
#[get("/readyz")]
pub async fn get_readiness(state: web::Data<AppState>) -> responses::GetReadiness {
    use diesel::connection::SimpleConnection;
    match state.db.run(|conn| conn.batch_execute("SELECT 1")).await {
        Ok(()) => responses::GetReadiness::Ok(HealthResponse {
            success: true,
            status: "ready".into(),
        }),
        Err(e) => {
            log::warn!("getReadiness: {e}");
            responses::GetReadiness::ServiceUnavailable(ErrorResponse::new("Database unavailable"))
        }
    }
}
