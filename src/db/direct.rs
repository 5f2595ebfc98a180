//! Statements run on the concrete connection inside [`AnyConnection`].
//!
//! Diesel's `MultiConnection` hands a statement to the backend's connection
//! wrapped in a `SerializedQuery`, whose every walk renders the statement's
//! whole SQL text: once to bind its values and once more to ask whether it
//! may be cached, on every run, although the statement is found in the
//! connection's cache by its type. On the hot paths that rendering cost more
//! than SQLite's own execution of the statement (docs/performance.md,
//! "Where a heartbeat's instructions went"), so they run through these
//! methods instead: the same query, the same statement cache, without the
//! wrapper. The query is written once, against either backend, as before.

use diesel::{
    pg::PgConnection,
    query_dsl::{
        methods::{ExecuteDsl, LimitDsl},
        LoadQuery,
    },
    sqlite::SqliteConnection,
    QueryResult, RunQueryDsl,
};

use super::AnyConnection;

/// `$call` with `$c` bound to the connection inside `$conn`, whichever it is
/// (each arm is typed for its backend).
macro_rules! on_inner {
    ($conn:expr, |$c:ident| $call:expr) => {
        match $conn {
            AnyConnection::Sqlite($c) => $call,
            AnyConnection::Postgresql($c) => $call,
        }
    };
}

/// `execute`, `load`, `get_result` and `first` of [`RunQueryDsl`], run on
/// the connection inside an [`AnyConnection`].
pub trait Direct: Sized {
    fn execute_direct(self, conn: &mut AnyConnection) -> QueryResult<usize>
    where
        Self: ExecuteDsl<SqliteConnection> + ExecuteDsl<PgConnection>,
    {
        on_inner!(conn, |c| ExecuteDsl::execute(self, c))
    }

    fn load_direct<'query, U>(self, conn: &mut AnyConnection) -> QueryResult<Vec<U>>
    where
        Self: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConnection>
            + LoadQuery<'query, SqliteConnection, U>
            + LoadQuery<'query, PgConnection, U>,
    {
        on_inner!(conn, |c| RunQueryDsl::load(self, c))
    }

    fn get_result_direct<'query, U>(self, conn: &mut AnyConnection) -> QueryResult<U>
    where
        Self: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConnection>
            + LoadQuery<'query, SqliteConnection, U>
            + LoadQuery<'query, PgConnection, U>,
    {
        on_inner!(conn, |c| RunQueryDsl::get_result(self, c))
    }

    fn first_direct<'query, U>(self, conn: &mut AnyConnection) -> QueryResult<U>
    where
        Self: LimitDsl + RunQueryDsl<SqliteConnection> + RunQueryDsl<PgConnection>,
        diesel::dsl::Limit<Self>:
            LoadQuery<'query, SqliteConnection, U> + LoadQuery<'query, PgConnection, U>,
    {
        on_inner!(conn, |c| RunQueryDsl::first(self, c))
    }
}

impl<T> Direct for T {}
