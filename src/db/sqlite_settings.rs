//! What every SQLite connection of this process is opened with, beyond the
//! PRAGMAs of `DatabaseUrl::connect`: settings SQLite takes only through
//! its C API, which Diesel does not expose.

use diesel::{sqlite::SqliteConnection, Connection};
use libsqlite3_sys as ffi;

/// Opens a SQLite connection with the settings every one of ours needs
/// before its first statement (see [`plan_without_bound_values`]).
pub(super) fn establish(
    path: &std::path::Path,
) -> Result<SqliteConnection, diesel::ConnectionError> {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        configure_sqlite_library();
        // SAFETY: registers a function with the signature SQLite calls
        // auto-extensions with; it only calls sqlite3_db_config on the
        // handle it is given.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(plan_without_bound_values)) };
        if rc != ffi::SQLITE_OK {
            log::warn!("could not register the SQLite connection settings (code {rc})");
        }
    });
    SqliteConnection::establish(&path.to_string_lossy())
}

/// Library-wide settings, which SQLite takes only before its first
/// connection; later (a test process that opened one already) they are
/// refused and the defaults stay, which are correct, only slower.
///
/// - Multi-thread mode: a connection is never used by two threads at once
///   (r2d2 lends each to one thread, a worker's reader is its own), so the
///   per-connection mutex taken on every column read is not needed.
/// - No memory statistics: they take a global mutex on every allocation,
///   shared by the workers and the writer.
fn configure_sqlite_library() {
    // SAFETY: sqlite3_config with these options takes no argument
    // (MULTITHREAD) and one int (MEMSTATUS); it is called before any
    // connection of ours is opened.
    let codes = unsafe {
        [
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MULTITHREAD),
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int),
        ]
    };
    if codes.iter().any(|&rc| rc != ffi::SQLITE_OK) {
        log::debug!(
            "SQLite was initialized already; its default threading and memory settings stay"
        );
    }
}

/// Run by SQLite for every connection this process opens: turns on the query
/// planner stability guarantee (QPSG), so that plans never depend on a
/// bound value.
///
/// Without it, the bundled SQLite (3.53) reads the bound value of `LIMIT ?`
/// (which Diesel renders for every `.first()`) and of a few other terms while
/// planning, so the next binding of that parameter expires the cached
/// statement and every execution parses and plans it again: the largest
/// cost of `GET /sessions/current` and of the session check of every
/// request (measured: docs/performance.md). Our queries are written for
/// their indexes (partial ones with literal conditions), so no plan here
/// needs a bound value.
unsafe extern "C" fn plan_without_bound_values(
    db: *mut ffi::sqlite3,
    _error: *mut *mut std::ffi::c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> std::ffi::c_int {
    // SAFETY: `db` is the connection SQLite is opening; ENABLE_QPSG takes an
    // int and an optional int pointer for the previous setting.
    unsafe {
        ffi::sqlite3_db_config(
            db,
            ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::{c_int, CString};

    use super::*;

    /// How often SQLite parsed and planned `SELECT … LIMIT ?` again over
    /// three runs with three different limits, on a connection opened after
    /// ours (the connection settings reach every connection of the process).
    fn reprepares_of_a_bound_limit(path: &std::path::Path) -> c_int {
        let file = CString::new(path.to_string_lossy().as_bytes()).unwrap();
        let sql = CString::new("SELECT 1 FROM sqlite_master LIMIT ?").unwrap();
        // SAFETY: a connection and a statement of this function only, each
        // checked when made and released before returning.
        unsafe {
            let mut db = std::ptr::null_mut();
            let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
            assert_eq!(
                ffi::sqlite3_open_v2(file.as_ptr(), &mut db, flags, std::ptr::null()),
                ffi::SQLITE_OK
            );
            let mut statement = std::ptr::null_mut();
            let prepared = ffi::sqlite3_prepare_v3(
                db,
                sql.as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut statement,
                std::ptr::null_mut(),
            );
            assert_eq!(prepared, ffi::SQLITE_OK);
            for limit in 1..=3 {
                ffi::sqlite3_bind_int(statement, 1, limit);
                while ffi::sqlite3_step(statement) == ffi::SQLITE_ROW {}
                ffi::sqlite3_reset(statement);
            }
            let reprepares =
                ffi::sqlite3_stmt_status(statement, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            ffi::sqlite3_finalize(statement);
            ffi::sqlite3_close(db);
            reprepares
        }
    }

    #[test]
    fn a_bound_limit_does_not_make_sqlite_prepare_a_statement_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.db");
        drop(establish(&path).unwrap());
        assert_eq!(reprepares_of_a_bound_limit(&path), 0);
    }
}
