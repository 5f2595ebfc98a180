//! `UPDATE`s that stay prepared: the statements every untrust, heartbeat and
//! revocation runs, parsed and planned once per connection instead of once
//! per run.

use diesel::{
    backend::Backend,
    expression::{AppearsOnTable, Expression},
    query_builder::{AsChangeset, AstPass, QueryFragment, QueryId},
    query_source::Table,
    sql_types::Bool,
    QueryResult, RunQueryDsl,
};

/// `UPDATE table SET values WHERE filter`, as `diesel::update(table
/// .filter(filter)).set(values)` renders it, but kept in the connection's
/// statement cache.
///
/// Diesel prepares every `UpdateStatement` again on each run (it calls them
/// unsafe to cache): a changeset that skips `None` fields changes the SQL
/// while the Rust type stays the same, so a cache keyed by type could run
/// the wrong statement. This one has no static query id, so its cache key is
/// the rendered SQL and the bind types, and it is reused only for the very
/// same SQL. Preparing them again was a large share of the single writer
/// thread's time under heartbeats (measured: docs/performance.md).
pub fn update<T, W, V>(table: T, filter: W, values: V) -> Update<T::FromClause, W, V::Changeset>
where
    T: Table,
    W: Expression<SqlType = Bool> + AppearsOnTable<T>,
    V: AsChangeset<Target = T>,
{
    Update {
        table: table.from_clause(),
        filter,
        values: values.as_changeset(),
    }
}

/// See [`update`]; `T` is the table's `FROM` clause.
#[derive(Debug, Clone)]
pub struct Update<T, W, V> {
    table: T,
    filter: W,
    values: V,
}

impl<T, W, V> QueryId for Update<T, W, V> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T, W, V, DB> QueryFragment<DB> for Update<T, W, V>
where
    DB: Backend,
    T: QueryFragment<DB>,
    W: QueryFragment<DB>,
    V: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        self.table.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.values.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}

impl<T, W, V, Conn> RunQueryDsl<Conn> for Update<T, W, V> {}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::{
        connection::{Connection, InstrumentationEvent},
        debug_query,
        pg::Pg,
        prelude::*,
        sqlite::{Sqlite, SqliteConnection},
    };

    use super::*;
    use crate::db::{now, run_migrations, schema::sessions, AnyConnection};

    /// The statements SQLite prepared to keep (Diesel's `CacheQuery`).
    fn kept_statements(conn: &mut AnyConnection) -> Arc<Mutex<Vec<String>>> {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let seen = kept.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                seen.lock().unwrap().push(sql.to_owned());
            }
        });
        kept
    }

    #[test]
    fn an_update_is_prepared_once_where_diesels_own_is_prepared_every_time() {
        let mut conn = AnyConnection::Sqlite(SqliteConnection::establish(":memory:").unwrap());
        run_migrations(&mut conn).unwrap();
        let kept = kept_statements(&mut conn);
        let at = now();
        for session in ["a", "b", "c"] {
            update(
                sessions::table,
                sessions::id.eq(session),
                sessions::revoked_at.eq(Some(at)),
            )
            .execute(&mut conn)
            .unwrap();
            diesel::update(sessions::table.filter(sessions::id.eq(session)))
                .set(sessions::last_activity.eq(at))
                .execute(&mut conn)
                .unwrap();
        }
        let kept = kept.lock().unwrap();
        let updates: Vec<_> = kept
            .iter()
            .filter(|sql| sql.starts_with("UPDATE"))
            .collect();
        assert_eq!(updates.len(), 1, "{kept:?}");
        assert!(updates[0].contains("`revoked_at`"), "{updates:?}");
    }

    #[test]
    fn renders_what_diesel_renders_on_both_backends() {
        let at = now();
        let ours = update(
            sessions::table,
            sessions::id.eq("s").and(sessions::revoked_at.is_null()),
            (sessions::last_activity.eq(at), sessions::expires_at.eq(at)),
        );
        let diesels = diesel::update(
            sessions::table.filter(sessions::id.eq("s").and(sessions::revoked_at.is_null())),
        )
        .set((sessions::last_activity.eq(at), sessions::expires_at.eq(at)));
        assert_eq!(
            debug_query::<Sqlite, _>(&ours).to_string(),
            debug_query::<Sqlite, _>(&diesels).to_string()
        );
        assert_eq!(
            debug_query::<Pg, _>(&ours).to_string(),
            debug_query::<Pg, _>(&diesels).to_string()
        );
    }
}
