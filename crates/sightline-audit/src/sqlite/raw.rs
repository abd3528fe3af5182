//! The two bulk paths, through SQLite's C API rather than sqlx's arguments and rows: the rows `verify`
//! hashes, and the rows `append` inserts.
//!
//! sqlx copies each column of each row into an owned value on its worker thread and frees it on the
//! reading task: 19 allocations per row, and most of `verify`'s time. Here a blocking thread holds the
//! connection's handle (sqlx's worker waits meanwhile), steps a prepared statement and hashes each row's
//! columns where SQLite keeps them, borrowed until the next step: no copies at all. Likewise `append` binds
//! each event's fields where they are (SQLite copies them once, into the record) instead of building a
//! multi-row INSERT's 9,500 arguments on the writer's task and handing them to sqlx's worker.
//!
//! Only this module uses `unsafe`; each block says why it is sound.
#![allow(unsafe_code)] // FFI to libsqlite3-sys; measured in docs/benchmarks.md (Audit, "Issue 6").

use std::ffi::{CStr, CString, c_int};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection};

use crate::event::{Hash, StoredEvent, StoredFields};
use crate::store::{COLUMN_COUNT, COLUMNS, ChainLink, StoreError};

/// [`ChainLink`]s of up to `limit` events with `after < seq <= through`, in chain order, read on a blocking
/// thread (so the runtime's threads keep running while it hashes). The same links `store::chain_link` makes
/// from sqlx's rows: a column whose type is not the one the writer stores (or text that is not UTF-8, or a
/// hash that is not 32 bytes) leaves the link without a computed hash, for `verify` to read the event whole.
pub(crate) async fn chain_links(
    mut conn: PoolConnection<Sqlite>,
    after: i64,
    through: i64,
    limit: usize,
) -> Result<Vec<ChainLink>, StoreError> {
    let runtime = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || -> Result<Vec<ChainLink>, StoreError> {
        let conn: &mut SqliteConnection = &mut conn;
        let mut handle = runtime.block_on(conn.lock_handle())?;
        read(handle.as_raw_handle(), after, through, limit)
    });
    task.await.map_err(|error| protocol(format!("the verify thread failed: {error}")))?
}

fn protocol(message: String) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(message))
}

/// An error SQLite returned, shaped as sqlx's own SQLite errors are (`code` is the extended result code in
/// decimal, `kind` the constraint it names), so that callers tell a duplicate from a busy database the
/// same way whichever path failed.
#[derive(Debug)]
struct SqliteFailure {
    code: c_int,
    message: String,
}

impl std::fmt::Display for SqliteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for SqliteFailure {}

impl sqlx::error::DatabaseError for SqliteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A prepared statement, finalized when dropped.
struct Statement {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement {
    fn prepare(db: NonNull<ffi::sqlite3>, sql: &CStr) -> Result<Self, StoreError> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: `db` is an open connection that this thread holds exclusively (the caller's
        // `LockedSqliteHandle` keeps sqlx's worker off it); `sql` is NUL-terminated (-1 length: read to the
        // NUL); `raw` is a valid out-pointer.
        let rc =
            unsafe { ffi::sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr(), -1, &mut raw, std::ptr::null_mut()) };
        match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Ok(Self { db, raw }),
            _ => Err(sqlite_error(db, rc)),
        }
    }

    fn bind(&mut self, index: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: the statement is live (finalized only on drop) and `index` is one of its parameters.
        let rc = unsafe { ffi::sqlite3_bind_int64(self.raw.as_ptr(), index, value) };
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(sqlite_error(self.db, rc)) }
    }

    /// Binds `values` to the parameters `?1`, `?2`, ... and runs the statement, which returns no rows. The
    /// values are bound where they are (`SQLITE_STATIC`): SQLite reads them during the step only, and they
    /// are unbound again before this returns, so nothing borrowed outlives the call.
    fn run(&mut self, values: &[Value<'_>]) -> Result<(), StoreError> {
        let raw = self.raw.as_ptr();
        let mut rc = ffi::SQLITE_OK;
        for (index, value) in (1..).zip(values) {
            // SAFETY: the statement is live and not running; each pointer and length describes memory that
            // `values` borrows for this whole call, and `SQLITE_STATIC` tells SQLite not to free it. The
            // bindings are cleared below, before the borrow ends.
            rc = unsafe {
                match *value {
                    Value::Int(v) => ffi::sqlite3_bind_int64(raw, index, v),
                    Value::Text(None) => ffi::sqlite3_bind_null(raw, index),
                    Value::Text(Some(text)) => ffi::sqlite3_bind_text64(
                        raw,
                        index,
                        text.as_ptr().cast(),
                        text.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Value::Blob(bytes) => ffi::sqlite3_bind_blob64(
                        raw,
                        index,
                        bytes.as_ptr().cast(),
                        bytes.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc == ffi::SQLITE_OK {
            // SAFETY: the statement is live and every parameter bound.
            rc = match unsafe { ffi::sqlite3_step(raw) } {
                ffi::SQLITE_DONE => ffi::SQLITE_OK,
                ffi::SQLITE_ROW => ffi::SQLITE_MISUSE,
                rc => rc,
            };
        }
        let result = if rc == ffi::SQLITE_OK { Ok(()) } else { Err(sqlite_error(self.db, rc)) };
        // SAFETY: the statement is live; reset ends its run (its error, if any, was read above) and clearing
        // the bindings drops every pointer into `values`.
        unsafe {
            ffi::sqlite3_reset(raw);
            ffi::sqlite3_clear_bindings(raw);
        }
        result
    }

    /// Steps to the next row: `Ok(Some(row))` while there is one.
    fn next(&mut self) -> Result<Option<Row<'_>>, StoreError> {
        // SAFETY: the statement is live; the `Row` borrows `self` mutably, so no other step (which would
        // invalidate the column pointers it hands out) can happen while it lives.
        match unsafe { ffi::sqlite3_step(self.raw.as_ptr()) } {
            ffi::SQLITE_ROW => Ok(Some(Row { statement: self })),
            ffi::SQLITE_DONE => Ok(None),
            rc => Err(sqlite_error(self.db, rc)),
        }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared on `db` and is finalized exactly once, here.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// A value bound to a statement's parameter, borrowed for one run.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Int(i64),
    /// A text, or NULL.
    Text(Option<&'a str>),
    Blob(&'a [u8]),
}

/// The current row of a [`Statement`]; its columns borrow from SQLite until the next step.
struct Row<'s> {
    statement: &'s mut Statement,
}

impl Row<'_> {
    fn kind(&self, column: c_int) -> c_int {
        // SAFETY: the statement is live and positioned on a row; `column` is within its 19 columns (an index
        // out of range gives SQLITE_NULL, not undefined behaviour).
        unsafe { ffi::sqlite3_column_type(self.statement.raw.as_ptr(), column) }
    }

    fn int(&self, column: c_int) -> Option<i64> {
        if self.kind(column) != ffi::SQLITE_INTEGER {
            return None;
        }
        // SAFETY: as in `kind`; the value is an integer, so nothing is converted.
        Some(unsafe { ffi::sqlite3_column_int64(self.statement.raw.as_ptr(), column) })
    }

    /// The bytes of a TEXT or BLOB value, as stored (no conversion: the database's encoding is UTF-8).
    fn bytes(&self, column: c_int, kind: c_int) -> Option<&[u8]> {
        if self.kind(column) != kind {
            return None;
        }
        let raw = self.statement.raw.as_ptr();
        // SAFETY: as in `kind`. `sqlite3_column_blob` on a TEXT or BLOB value returns its bytes without
        // conversion, and `sqlite3_column_bytes` called after it gives their length. The pointer stays valid
        // until the statement steps, resets or is finalized, none of which can happen while `self` (which
        // borrows the statement mutably) and the returned slice (which borrows `self`) live.
        unsafe {
            let data = ffi::sqlite3_column_blob(raw, column).cast::<u8>();
            let len = usize::try_from(ffi::sqlite3_column_bytes(raw, column)).ok()?;
            if data.is_null() || len == 0 {
                return Some(&[]);
            }
            Some(std::slice::from_raw_parts(data, len))
        }
    }

    fn text(&self, column: c_int) -> Option<&str> {
        std::str::from_utf8(self.bytes(column, ffi::SQLITE_TEXT)?).ok()
    }

    /// A text column that may be NULL: `Some(None)` for NULL, `None` for anything but TEXT or NULL.
    fn optional_text(&self, column: c_int) -> Option<Option<&str>> {
        if self.kind(column) == ffi::SQLITE_NULL { Some(None) } else { self.text(column).map(Some) }
    }

    fn hash(&self, column: c_int) -> Option<Hash> {
        Hash::from_slice(self.bytes(column, ffi::SQLITE_BLOB)?)
    }

    /// The row's link; the columns are [`COLUMNS`] in order.
    fn link(&self) -> Result<ChainLink, StoreError> {
        let seq = self.int(0).ok_or_else(|| protocol("an audit event's seq is not an integer".into()))?;
        let (hash, prev_hash) = (self.hash(17), self.hash(18));
        let fields = || {
            Some(StoredFields {
                id: self.text(1)?,
                ts: self.int(2)?,
                actor_id: self.text(3)?,
                actor_type: self.text(4)?,
                actor_ip: self.optional_text(5)?,
                actor_user_agent: self.optional_text(6)?,
                action: self.text(7)?,
                target_type: self.optional_text(8)?,
                target_id: self.optional_text(9)?,
                outcome: self.text(10)?,
                severity: self.text(11)?,
                component: self.optional_text(12)?,
                request_id: self.optional_text(13)?,
                trace_id: self.optional_text(14)?,
                message: self.text(15)?,
                attributes: self.text(16)?,
            })
        };
        let computed = match (hash, prev_hash) {
            (Some(_), Some(prev_hash)) => fields().map(|fields| fields.chain_hash(&prev_hash)),
            _ => None,
        };
        Ok(ChainLink {
            seq,
            hash: hash.unwrap_or_default(),
            prev_hash: prev_hash.unwrap_or_default(),
            computed,
        })
    }
}

/// The error SQLite reports on `db` (its extended code: `rc` is what the call returned, for when the
/// connection holds none).
fn sqlite_error(db: NonNull<ffi::sqlite3>, rc: c_int) -> StoreError {
    // SAFETY: `db` is open and held by this thread; `sqlite3_errmsg` returns a NUL-terminated string owned
    // by SQLite, copied here before any other call on `db`.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        (code, CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())).to_string_lossy().into_owned())
    };
    let code = if code == ffi::SQLITE_OK { rc } else { code };
    StoreError::Database(sqlx::Error::Database(Box::new(SqliteFailure { code, message })))
}

/// Reads and hashes the rows on `db`, which the caller holds exclusively.
fn read(
    db: NonNull<ffi::sqlite3>,
    after: i64,
    through: i64,
    limit: usize,
) -> Result<Vec<ChainLink>, StoreError> {
    let sql = CString::new(format!(
        "SELECT {COLUMNS} FROM main.audit_events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3"
    ))
    .map_err(|_| protocol("the verify query holds a NUL".into()))?;
    let mut statement = Statement::prepare(db, &sql)?;
    statement.bind(1, after)?;
    statement.bind(2, through)?;
    statement.bind(3, i64::try_from(limit).unwrap_or(i64::MAX))?;
    let mut links = Vec::with_capacity(limit.min(16_384));
    while let Some(row) = statement.next()? {
        links.push(row.link()?);
    }
    Ok(links)
}

/// Runs `sql` (no parameters, no rows) on `db`.
fn exec(db: NonNull<ffi::sqlite3>, sql: &CStr) -> Result<(), StoreError> {
    // SAFETY: `db` is open and held by this thread; `sql` is NUL-terminated; no callback, no error out-param
    // (the error is read from the connection).
    let rc = unsafe {
        ffi::sqlite3_exec(db.as_ptr(), sql.as_ptr(), None, std::ptr::null_mut(), std::ptr::null_mut())
    };
    if rc == ffi::SQLITE_OK { Ok(()) } else { Err(sqlite_error(db, rc)) }
}

/// Stores `batch` in one transaction on `conn`, all or nothing (see [`insert`]). The work is blocking (it
/// ends with the commit's fsync), so on a multi-threaded runtime it runs in `block_in_place`, which lets
/// the runtime move its other tasks elsewhere meanwhile; on a current-thread runtime it runs in place.
pub(crate) async fn append(
    mut conn: PoolConnection<Sqlite>,
    batch: &[StoredEvent],
) -> Result<(), StoreError> {
    let conn: &mut SqliteConnection = &mut conn;
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| insert(db, batch)),
        _ => insert(db, batch),
    }
}

/// The INSERT of one event.
fn insert_sql() -> Result<CString, StoreError> {
    let params = (1..=COLUMN_COUNT).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
    CString::new(format!("INSERT INTO main.audit_events ({COLUMNS}) VALUES ({params})"))
        .map_err(|_| protocol("the insert holds a NUL".into()))
}

/// Inserts `batch` on `db` (held by this thread) between `BEGIN` and `COMMIT`, one prepared single-row
/// INSERT per event: with one row per statement SQLite needs no statement journal (a multi-row INSERT
/// keeps one in case the UNIQUE `id` stops it halfway). Any failure rolls the whole transaction back.
fn insert(db: NonNull<ffi::sqlite3>, batch: &[StoredEvent]) -> Result<(), StoreError> {
    let sql = insert_sql()?;
    // Deferred: the first INSERT takes the events' write lock (waiting as `busy_timeout` allows); no read
    // comes before it, so the lock is never upgraded.
    exec(db, c"BEGIN")?;
    let inserted = (|| {
        let mut statement = Statement::prepare(db, &sql)?;
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let mut attributes = Vec::with_capacity(256);
        for stored in batch {
            let e = &stored.event;
            attributes.clear();
            if serde_json::to_writer(&mut attributes, &e.attributes).is_err() {
                attributes.clear();
                attributes.extend_from_slice(b"{}");
            }
            let attributes = std::str::from_utf8(&attributes).unwrap_or("{}");
            statement.run(&[
                Value::Int(stored.seq),
                Value::Text(Some(e.id.hyphenated().encode_lower(&mut id))),
                Value::Int(e.timestamp_micros()),
                Value::Text(Some(&e.actor.id)),
                Value::Text(Some(&e.actor.kind)),
                Value::Text(e.actor.ip.as_deref()),
                Value::Text(e.actor.user_agent.as_deref()),
                Value::Text(Some(&e.action)),
                Value::Text(e.target.as_ref().map(|t| t.kind.as_str())),
                Value::Text(e.target.as_ref().map(|t| t.id.as_str())),
                Value::Text(Some(e.outcome.as_str())),
                Value::Text(Some(e.severity.as_str())),
                Value::Text(e.component.as_deref()),
                Value::Text(e.request_id.as_deref()),
                Value::Text(e.trace_id.as_deref()),
                Value::Text(Some(&e.message)),
                Value::Text(Some(attributes)),
                Value::Blob(stored.hash.0.as_slice()),
                Value::Blob(stored.prev_hash.0.as_slice()),
            ])?;
        }
        Ok(())
    })();
    match inserted.and_then(|()| exec(db, c"COMMIT")) {
        Ok(()) => Ok(()),
        Err(error) => {
            // The transaction may be open still (or SQLite may have ended it already): end it either way.
            // SAFETY: `db` is open and held by this thread.
            if unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) } == 0 {
                let _ = exec(db, c"ROLLBACK");
            }
            Err(error)
        }
    }
}
