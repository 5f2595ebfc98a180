//! The one writer of a database (group commit).
//!
//! Every write of this process is sent here as a job and its request waits
//! for the answer (a oneshot, so no actix worker blocks). One thread takes the
//! first waiting job, then whatever else is queued (up to [`MAX_BATCH`]),
//! runs them all in one transaction — each job in its own `SAVEPOINT`, so one
//! that fails (a constraint, a bug) is rolled back alone — commits once, and
//! only then answers every job. A batch forms by itself while the previous
//! commit is on its way to disk; an idle server commits a lone write at once,
//! as nothing waits for company.
//!
//! A job's session check runs inside the job, after the jobs before it in the
//! batch: a revocation earlier in the batch is seen by a write later in it, as
//! it would be by a later transaction, so revocation keeps its zero delay.
//!
//! A `SAVEPOINT`/`RELEASE` pair costs two statements per job (two round
//! trips on PostgreSQL), so a batch first runs without them and, only if a
//! job fails, is rolled back whole and run again with them: then the failing
//! job is rolled back alone and the others commit (its changes must not
//! commit, and a failed statement aborts a PostgreSQL transaction). A batch that
//! PostgreSQL aborts as a deadlock victim or a serialization failure is run
//! again whole: nothing of it was applied.

use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

use diesel::{connection::SimpleConnection, result::Error as DieselError};
use tokio::sync::oneshot;

use super::{is_transient, AnyConnection, ConnectionManager, DbError};
use crate::telemetry::{context::Carried, DbMetrics};

/// Most jobs in one transaction. 128 holds every write of a full bench run
/// (64 connections) or a busy deployment's burst in one or two commits,
/// while one batch stays a few milliseconds of work on SQLite (the cost of a
/// write: docs/performance.md), so the write lock that other processes wait
/// for is never held long, and a batch that must be run again (a failing
/// job on PostgreSQL, a deadlock victim) redoes little.
pub const MAX_BATCH: usize = 128;

/// Runs of one batch at most when PostgreSQL aborts it as a deadlock victim
/// or a serialization failure (the old per-write path's figure).
const ATTEMPTS: usize = 3;

/// What a job's work did in this run of its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Done,
    Failed,
    /// A deadlock victim or serialization failure: the batch runs again.
    Transient,
}

/// A write waiting for the writer, its result type erased.
trait Job: Send {
    fn deadline(&self) -> Instant;
    fn queued(&self) -> Instant;
    /// Runs the work (again, if the batch is run again) and keeps its result.
    fn run(&mut self, conn: &mut AnyConnection) -> Step;
    /// Sends the kept result, or `batch_failed` when the batch did not commit.
    fn answer(self: Box<Self>, batch_failed: Option<&DbError>);
}

struct Pending<T, F> {
    work: F,
    outcome: Option<Result<T, DieselError>>,
    reply: oneshot::Sender<Result<T, DbError>>,
    queued: Instant,
    deadline: Instant,
    request: Carried,
}

impl<T, F> Job for Pending<T, F>
where
    F: Fn(&mut AnyConnection) -> Result<T, DieselError> + Send,
    T: Send,
{
    fn deadline(&self) -> Instant {
        self.deadline
    }

    fn queued(&self) -> Instant {
        self.queued
    }

    fn run(&mut self, conn: &mut AnyConnection) -> Step {
        let work = &self.work;
        // A panicking write fails alone, as it did on the blocking pool,
        // instead of taking the writer thread (and every later write) down.
        let outcome = self.request.clone().run(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn))).unwrap_or_else(
                |_| Err(DieselError::QueryBuilderError("the write panicked".into())),
            )
        });
        let step = match &outcome {
            Ok(_) => Step::Done,
            Err(error) if is_transient(error) => Step::Transient,
            Err(_) => Step::Failed,
        };
        self.outcome = Some(outcome);
        step
    }

    fn answer(self: Box<Self>, batch_failed: Option<&DbError>) {
        let result = match (batch_failed, self.outcome) {
            (Some(error), _) => Err(error.for_each_job()),
            (None, Some(Ok(value))) => Ok(value),
            (None, Some(Err(error))) => Err(DbError::classify(error)),
            (None, None) => Err(DbError::Unavailable("the write was not run".into())),
        };
        // The request may have gone (its client hung up): nothing to tell.
        let _ = self.reply.send(result);
    }
}

/// The sending side, held by every clone of [`super::Db`]. The writer
/// thread ends when the last clone is dropped, after the jobs already sent.
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    acquire_timeout: Duration,
}

impl Writer {
    /// Starts the writer thread of `pool`'s database.
    pub fn start(
        pool: r2d2::Pool<ConnectionManager>,
        sqlite: bool,
        metrics: DbMetrics,
        acquire_timeout: Duration,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("db-writer".into())
            .spawn(move || {
                WriterThread {
                    pool,
                    sqlite,
                    metrics,
                }
                .serve(queue)
            })?;
        Ok(Self {
            jobs,
            acquire_timeout,
        })
    }

    /// Queues `work` and waits for its answer, which comes after the commit
    /// of its batch. A job still queued after the pool's acquire timeout is
    /// answered "unavailable" unrun, as a request that got no connection is.
    pub async fn write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: Fn(&mut AnyConnection) -> Result<T, DieselError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = Instant::now();
        let job = Pending {
            work,
            outcome: None,
            reply,
            queued,
            deadline: queued + self.acquire_timeout,
            request: Carried::capture(),
        };
        self.jobs
            .send(Box::new(job))
            .map_err(|_| DbError::Unavailable("the database writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| DbError::Unavailable("the database writer dropped the write".into()))?
    }
}

struct WriterThread {
    pool: r2d2::Pool<ConnectionManager>,
    /// `BEGIN IMMEDIATE` rather than `BEGIN`.
    sqlite: bool,
    metrics: DbMetrics,
}

impl WriterThread {
    fn serve(self, queue: mpsc::Receiver<Box<dyn Job>>) {
        // `recv` fails once every sender is gone and the queue is empty.
        while let Ok(first) = queue.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&self, batch: Vec<Box<dyn Job>>) {
        let now = Instant::now();
        let (mut batch, expired): (Vec<_>, Vec<_>) =
            batch.into_iter().partition(|job| job.deadline() > now);
        for job in expired {
            self.metrics.record_timeout();
            job.answer(Some(&DbError::Unavailable(
                "timed out queued for the database writer".into(),
            )));
        }
        let Some(deadline) = batch.iter().map(|job| job.deadline()).min() else {
            return;
        };
        for job in &batch {
            self.metrics.record_thread_wait(now - job.queued());
        }
        let asked = Instant::now();
        let pooled = self
            .pool
            .get_timeout(deadline.saturating_duration_since(asked));
        self.metrics.record_pool_wait(asked, pooled.is_ok());
        let mut pooled = match pooled {
            Ok(pooled) => pooled,
            Err(error) => {
                let error = DbError::Unavailable(error.to_string());
                for job in batch {
                    job.answer(Some(&error));
                }
                return;
            }
        };
        let started = Instant::now();
        let outcome = self.run_batch(&mut pooled.conn, &mut batch);
        match &outcome {
            Ok(()) => self.metrics.record_commit(batch.len(), started.elapsed()),
            Err(DbError::Unavailable(_)) => pooled.lost = true,
            Err(_) => {}
        }
        let failed = outcome.err();
        for job in batch {
            job.answer(failed.as_ref());
        }
    }

    /// One transaction holding every job of `batch`, committed; a job's own
    /// failure is kept for its answer and does not fail the batch.
    fn run_batch(
        &self,
        conn: &mut AnyConnection,
        batch: &mut [Box<dyn Job>],
    ) -> Result<(), DbError> {
        // Savepoints cost two statements per job (a round trip each on
        // PostgreSQL, a parse each on SQLite), and jobs rarely fail: a batch
        // first runs without them, and only when a job fails is it rolled
        // back whole and run again with them.
        let mut savepoints = false;
        let mut attempt = 1;
        loop {
            // The last run undoes a job that is still a victim alone.
            let last = attempt >= ATTEMPTS;
            match self.attempt(conn, batch, savepoints || last, last) {
                Attempt::Committed => return Ok(()),
                Attempt::Broken(error) => return Err(error),
                Attempt::JobFailed => savepoints = true,
                Attempt::Transient => {
                    log::info!(
                        "retrying a write batch (attempt {attempt}): \
                         deadlock victim or serialization failure"
                    );
                    attempt += 1;
                }
            }
        }
    }

    /// One run of the batch. Without savepoints, the first failing job rolls
    /// the transaction back ([`Attempt::JobFailed`]: run it again with them).
    fn attempt(
        &self,
        conn: &mut AnyConnection,
        batch: &mut [Box<dyn Job>],
        savepoints: bool,
        last: bool,
    ) -> Attempt {
        let begin = if self.sqlite {
            // Takes the write lock up front (see `write_transaction`), waiting
            // up to the busy timeout for another process that holds it.
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        if let Err(error) = conn.batch_execute(begin) {
            return Attempt::Broken(DbError::classify(error));
        }
        let mut transient = false;
        for job in batch.iter_mut() {
            if savepoints {
                if let Err(error) = conn.batch_execute("SAVEPOINT job") {
                    return rollback(conn, DbError::classify(error));
                }
            }
            let step = match job.run(conn) {
                Step::Transient if last => Step::Failed,
                step => step,
            };
            match (step, savepoints) {
                (Step::Done, false) => {}
                (Step::Done, true) => {
                    if let Err(error) = conn.batch_execute("RELEASE job") {
                        return rollback(conn, DbError::classify(error));
                    }
                }
                (Step::Transient, _) => {
                    transient = true;
                    break;
                }
                (Step::Failed, false) => {
                    return match conn.batch_execute("ROLLBACK") {
                        Ok(()) => Attempt::JobFailed,
                        Err(error) => Attempt::Broken(DbError::classify(error)),
                    };
                }
                (Step::Failed, true) => {
                    if let Err(error) = conn.batch_execute("ROLLBACK TO job; RELEASE job") {
                        return rollback(conn, DbError::classify(error));
                    }
                }
            }
        }
        if transient {
            return match conn.batch_execute("ROLLBACK") {
                Ok(()) => Attempt::Transient,
                Err(error) => Attempt::Broken(DbError::classify(error)),
            };
        }
        match conn.batch_execute("COMMIT") {
            Ok(()) => Attempt::Committed,
            Err(error) => {
                // A failed COMMIT on SQLite can leave the transaction open:
                // end it, so that nothing of the batch becomes visible later.
                rollback(conn, DbError::commit_failed(error))
            }
        }
    }
}

enum Attempt {
    Committed,
    /// A job failed without a savepoint to undo it alone; rolled back.
    JobFailed,
    /// A deadlock victim or serialization failure; rolled back.
    Transient,
    /// The transaction itself failed (connection, commit); rolled back.
    Broken(DbError),
}

fn rollback(conn: &mut AnyConnection, error: DbError) -> Attempt {
    match conn.batch_execute("ROLLBACK") {
        Ok(()) => Attempt::Broken(error),
        // The connection cannot say where it stands: never reuse it.
        Err(rollback) => Attempt::Broken(DbError::Unavailable(format!(
            "{error}; the rollback failed too: {rollback}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{devices, DatabaseUrl, Db, PoolSettings, WriteMode};
    use super::*;

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_carries_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("writer.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
        let settings = PoolSettings {
            max_size: 2,
            acquire_timeout: Duration::from_secs(5),
        };
        let db = Db::open_with(url, settings, WriteMode::Grouped).unwrap();
        let panicking = db.write(|_conn| -> Result<i64, DieselError> { panic!("a bug") });
        let beside = db.write(devices::count_all);
        let (panicked, counted) = futures_util::future::join(panicking, beside).await;
        assert!(panicked.is_err(), "{panicked:?}");
        assert_eq!(counted.unwrap(), 0);
        assert_eq!(db.write(devices::count_all).await.unwrap(), 0);
    }
}
