//! PostgreSQL's one-statement writes must stay prepared on their connection:
//! `diesel::sql_query` alone is never cached, and then PostgreSQL parses and
//! plans the whole CTE on every request (docs/performance.md).

use diesel::{
    connection::SimpleConnection, prelude::*, sql_query, sql_types::BigInt, PgConnection,
};
use flashback_devices::db::{self, one_statement, AnyConnection};

use crate::helpers::postgres_url;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

#[test]
fn a_heartbeat_statement_is_prepared_once_and_reused() {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let database = format!("fd_prepared_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::establish(&admin_url).expect("connect to TEST_POSTGRES_URL");
    sql_query(format!("CREATE DATABASE \"{database}\""))
        .execute(&mut admin)
        .expect("create the database");
    let mut url = url::Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&database);
    let mut conn = AnyConnection::Postgresql(
        PgConnection::establish(url.as_str()).expect("connect to the new database"),
    );
    db::run_migrations(&mut conn).expect("migrations");
    let AnyConnection::Postgresql(pg) = &mut conn else {
        unreachable!()
    };
    pg.batch_execute(
        "INSERT INTO devices (id, user_id, fingerprint, device_name, device_type, os, browser,
             is_trusted, trust_level, last_seen, created_at)
         VALUES ('d1', 'alice', 'fp', 'Laptop', 'DESKTOP', 'Linux', 'Firefox', FALSE, 'LOW',
             now(), now());
         INSERT INTO sessions (id, user_id, device_id, login_method, started_at, last_activity,
             expires_at)
         VALUES ('s1', 'alice', 'd1', 'password', now(), now(), now() + interval '1 hour')",
    )
    .expect("seed");
    for _ in 0..3 {
        let now = db::now();
        let beat = one_statement::heartbeat(
            pg,
            "alice",
            "s1",
            "s1",
            now,
            now + chrono::TimeDelta::hours(2),
            None,
        )
        .expect("heartbeat");
        let (device, new_expiry) = beat.expect("the session is active");
        assert_eq!(device, "d1");
        assert!(new_expiry.is_some());
    }
    let prepared: Count = sql_query(
        "SELECT count(*) AS count FROM pg_prepared_statements WHERE statement LIKE '%caller AS%'",
    )
    .get_result(pg)
    .expect("count prepared statements");
    drop(conn);
    sql_query(format!("DROP DATABASE \"{database}\""))
        .execute(&mut admin)
        .expect("drop the database");
    assert_eq!(prepared.count, 1, "one prepared heartbeat, reused");
}
