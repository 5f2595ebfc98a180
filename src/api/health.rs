//! The `health` tag: probes for orchestrators and metrics for Prometheus,
//! without authentication.

use actix_web::{get, web};

use super::types::{responses, ErrorResponse, HealthResponse};
use crate::{
    state::AppState,
    telemetry::{Metrics, MetricsListener},
};

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

/// Prometheus metrics
#[utoipa::path(
    operation_id = "getMetrics",
    security(()),
    responses(
        (status = 200, description = "The current value of every series.", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "The metrics are not served on this listener: they are on a separate one (`METRICS_BIND_ADDR`), or, by default, not served at all (`METRICS_PUBLIC=true` serves them here).", body = ErrorResponse),
    )
)]
#[get("/metrics")]
pub async fn get_metrics(
    metrics: web::Data<Metrics>,
    listener: web::Data<MetricsListener>,
) -> responses::GetMetrics {
    match **listener {
        MetricsListener::This => responses::GetMetrics::Ok(metrics.render()),
        MetricsListener::NotHere => {
            responses::GetMetrics::NotFound(ErrorResponse::new("Not found"))
        }
    }
}
