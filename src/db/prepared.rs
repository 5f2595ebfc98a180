//! `UPDATE`s that stay prepared: the statements every untrust, heartbeat and
//! revocation runs, parsed and planned once per connection instead of once
//! per run.

use std::marker::PhantomData;

use diesel::{
    backend::Backend,
    expression::{AppearsOnTable, Expression},
    query_builder::{AsChangeset, AstPass, Query, QueryFragment, QueryId},
    query_source::{Column, Table},
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
/// the wrong statement. This one is keyed by its type, as Diesel's own
/// `SELECT`s are, when the table, the filter and the `values` given to it
/// all have static query ids (`column.eq(value)` and tuples of them do): an
/// `Option` (of a changeset that skips `None` fields) has no query id at all,
/// so that does not compile, and a part whose SQL is only known at run time
/// (a boxed expression) has no static one, so its key is the rendered SQL and
/// the bind types, reused only for the very same SQL. (A changeset struct
/// with `Option` fields must not derive `QueryId`.) Preparing them again was
/// a large share of the single writer thread's time under heartbeats, and
/// rendering the SQL of each run only to find it in the cache was still a
/// visible share of an untrust (measured: docs/performance.md).
pub fn update<T, W, V>(table: T, filter: W, values: V) -> Update<T, W, V::Changeset, V>
where
    T: Table,
    W: Expression<SqlType = Bool> + AppearsOnTable<T>,
    V: AsChangeset<Target = T>,
{
    Update {
        table: table.from_clause(),
        filter,
        values: values.as_changeset(),
        source: PhantomData,
    }
}

/// See [`update`]; `S` is the type of the `values` it was given, which
/// stands for the changeset in its query id (Diesel gives the rendered
/// changeset none).
pub struct Update<T: Table, W, V, S> {
    table: T::FromClause,
    filter: W,
    values: V,
    source: PhantomData<S>,
}

/// The statement cache's key of an [`Update`] (or of one with `RETURNING`)
/// whose parts all have static query ids.
pub struct UpdateId<T, W, S, R>(PhantomData<(T, W, S, R)>);

impl<T, W, V, S> QueryId for Update<T, W, V, S>
where
    T: Table + QueryId,
    W: QueryId,
    S: QueryId,
{
    type QueryId = UpdateId<T::QueryId, W::QueryId, S::QueryId, ()>;
    const HAS_STATIC_QUERY_ID: bool =
        T::HAS_STATIC_QUERY_ID && W::HAS_STATIC_QUERY_ID && S::HAS_STATIC_QUERY_ID;
}

impl<T, W, V, S, DB> QueryFragment<DB> for Update<T, W, V, S>
where
    DB: Backend,
    T: Table,
    T::FromClause: QueryFragment<DB>,
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

impl<T: Table, W, V, S, Conn> RunQueryDsl<Conn> for Update<T, W, V, S> {}

impl<T: Table, W, V, S> Update<T, W, V, S> {
    /// The same `UPDATE`, giving back `column` of each row it changed
    /// (`RETURNING`: SQLite 3.35 and PostgreSQL): the change and the read of
    /// what it changed in one statement.
    pub fn returning<C>(self, _column: C) -> UpdateReturning<T, W, V, S, C>
    where
        C: Column<Table = T>,
    {
        UpdateReturning {
            update: self,
            column: PhantomData,
        }
    }
}

/// See [`Update::returning`].
pub struct UpdateReturning<T: Table, W, V, S, C> {
    update: Update<T, W, V, S>,
    column: PhantomData<C>,
}

impl<T, W, V, S, C> QueryId for UpdateReturning<T, W, V, S, C>
where
    T: Table + QueryId,
    W: QueryId,
    S: QueryId,
    C: QueryId,
{
    type QueryId = UpdateId<T::QueryId, W::QueryId, S::QueryId, C::QueryId>;
    const HAS_STATIC_QUERY_ID: bool =
        Update::<T, W, V, S>::HAS_STATIC_QUERY_ID && C::HAS_STATIC_QUERY_ID;
}

impl<T, W, V, S, C, DB> QueryFragment<DB> for UpdateReturning<T, W, V, S, C>
where
    DB: Backend,
    Update<T, W, V, S>: QueryFragment<DB>,
    T: Table,
    C: Column,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.update.walk_ast(out.reborrow())?;
        // Unqualified: SQLite takes no table name in `RETURNING`.
        out.push_sql(" RETURNING ");
        out.push_identifier(C::NAME)
    }
}

impl<T: Table, W, V, S, C: Column> Query for UpdateReturning<T, W, V, S, C> {
    type SqlType = C::SqlType;
}

impl<T: Table, W, V, S, C, Conn> RunQueryDsl<Conn> for UpdateReturning<T, W, V, S, C> {}

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
    use crate::db::{
        now, run_migrations,
        schema::{devices, sessions},
        AnyConnection,
    };

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
    fn returning_renders_what_diesel_renders_on_sqlite_and_names_the_column_on_postgresql() {
        let ours = update(
            devices::table,
            devices::id.eq("d"),
            devices::is_trusted.eq(false),
        )
        .returning(devices::device_name);
        let diesels = diesel::update(devices::table.filter(devices::id.eq("d")))
            .set(devices::is_trusted.eq(false))
            .returning(devices::device_name);
        assert_eq!(
            debug_query::<Sqlite, _>(&ours).to_string(),
            debug_query::<Sqlite, _>(&diesels).to_string()
        );
        let on_postgresql = debug_query::<Pg, _>(&ours).to_string();
        assert!(
            on_postgresql.starts_with(
                r#"UPDATE "devices" SET "is_trusted" = $1 WHERE ("devices"."id" = $2) RETURNING "device_name""#
            ),
            "{on_postgresql}"
        );
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
