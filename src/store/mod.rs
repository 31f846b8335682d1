//! The SQLite store: facts, baseline, findings, pending phases, outbox and checkpoints.
//! Everything a batch does happens in one [`Tx`]; a crash rolls all of it back.

mod audit;
mod baseline;
mod checkpoint;
mod eventhubs;
mod facts;
mod findings;
mod gauges;
mod outbox;
mod pending;
mod query;
mod schema;
mod scope;

pub use crate::metrics::{OutboxGauge, StoreGauges};
pub use audit::{AuditRow, ChangeRow};
pub use baseline::{BaselineEntry, BaselineVersion};
pub use checkpoint::Checkpoint;
pub use eventhubs::{EventHubsPartition, EventHubsPosition, OwnershipRow};
pub use facts::{FactApply, FactRow};
pub use outbox::{NewAlert, OutboxRow, OutboxState};
pub use pending::{PendingKind, PendingRow};

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Store failures. Messages name the database and what to do.
///
/// Causes are interpolated into the message and not exposed as `source()`: an error chain
/// printed with `{:#}` then says each thing once (rusqlite's own chain repeats its text).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or set up.
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What failed (the OS or SQLite message).
        reason: String,
    },
    /// The database was written by a newer accessdrift.
    #[error("database {path} has schema version {found}, newer than this binary's {supported}: upgrade accessdrift")]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: i64,
        /// Newest version this binary knows.
        supported: i64,
    },
    /// A read-only open found a schema older than this binary's (it cannot migrate it).
    #[error("database {path} has schema version {found}, older than this binary's {supported}: run a writing command once to upgrade it (e.g. `accessdrift replay --db {path} FILE`), or check that the file is an accessdrift database")]
    TooOld {
        /// The file.
        path: PathBuf,
        /// Version in the file (0: never initialised).
        found: i64,
        /// Version this binary reads.
        supported: i64,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// A stored row does not decode (the file was edited or corrupted).
    #[error("corrupt row in table {table} ({key}): {problem}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Row identity.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// A caller asked for something that does not exist.
    #[error("{0}")]
    NotFound(String),
}

// By hand rather than `#[from]`, which would also make the rusqlite error the `source()`.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

/// Result type of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// How long a connection waits for another process's lock before failing with "busy".
/// The daemon, the CLI and concurrent first opens share the file.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// SQLite page cache per connection, negative as `PRAGMA cache_size` takes KiB (64 MiB).
const PAGE_CACHE_KIB: i64 = -65536;

impl Store {
    /// Opens for writing (creating if needed) and migrates the database at `path`.
    /// Safe to call from several processes at once on a fresh file.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |e: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        check_parent_dir(path)?;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        // First, so that every statement below (journal mode switch, migration) waits for a
        // concurrent opener instead of failing with "database is locked".
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL: readers (CLI) never block the writer (daemon). NORMAL sync survives process
        // crashes, which is what the exactly-once guarantee is about.
        set_wal(&conn).map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // Each batch touches facts and their nine indexes, phases and findings: SQLite's
        // default 2 MiB page cache turns most of those lookups into reads. Pages are taken
        // only as the database grows, so a small store stays small.
        conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)
            .map_err(open_err)?;
        // The pipeline and the rules' join lookups use ~40 distinct statements per batch;
        // rusqlite's default cache of 16 would re-prepare most of them on every use.
        conn.set_prepared_statement_cache_capacity(128);
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens an existing database read-only: no migration, no file created or written, so it
    /// works for a user who may only read the file. The schema must be exactly this binary's.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let open_err = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        // The OS error ("No such file or directory", "Permission denied") says more than
        // SQLite's "unable to open database file".
        std::fs::File::open(path).map_err(|e| open_err(e.to_string()))?;
        let (conn, found) = match connect_read_only(path, false) {
            Ok(c) => c,
            // A WAL database needs its `-shm` file, which a user who cannot write the
            // directory cannot create. Without a `-wal` file no writer has changes pending
            // (the last one checkpointed and removed it), so the main file alone is the
            // whole database: read it as immutable, which needs no `-shm`.
            Err(e) if !sidecar(path, "-wal").exists() => {
                connect_read_only(path, true).map_err(|e2| {
                    open_err(format!("{e}; reading it as immutable failed too: {e2}"))
                })?
            }
            Err(e) => {
                return Err(open_err(format!(
                    "{e} (a reader needs to create or open {}: ask for read access to it, or for write access to the directory)",
                    sidecar(path, "-shm").display()
                )))
            }
        };
        let supported = schema::MIGRATIONS.len() as i64;
        if found > supported {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported,
            });
        }
        if found < supported {
            return Err(StoreError::TooOld {
                path: path.to_path_buf(),
                found,
                supported,
            });
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Brings the schema up to date. The version is read again under an exclusive lock, so
    /// two processes opening a fresh file at once migrate it once, not twice.
    fn migrate(&mut self) -> Result<()> {
        let supported = schema::MIGRATIONS.len() as i64;
        let too_new = |found| StoreError::TooNew {
            path: self.path.clone(),
            found,
            supported,
        };
        let version = user_version(&self.conn)?;
        if version > supported {
            return Err(too_new(version));
        }
        if version == supported {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        let version = user_version(&tx)?;
        if version > supported {
            return Err(too_new(version));
        }
        for sql in schema::MIGRATIONS.iter().skip(version as usize) {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", supported)?;
        tx.commit()?;
        if version < supported {
            tracing::info!(db = %self.path.display(), from = version, to = supported, "migrated database schema");
        }
        Ok(())
    }

    /// A read-only view (deferred transaction): never blocks the daemon's writes.
    pub fn read(&mut self) -> Result<Tx<'_>> {
        Ok(Tx(self.conn.transaction_with_behavior(
            rusqlite::TransactionBehavior::Deferred,
        )?))
    }

    /// Starts the one transaction a batch runs in (IMMEDIATE: takes the write lock up front).
    pub fn tx(&mut self) -> Result<Tx<'_>> {
        Ok(Tx(self.conn.transaction_with_behavior(
            rusqlite::TransactionBehavior::Immediate,
        )?))
    }
}

/// A read-only connection and the schema version it sees (the first read is what fails when
/// the WAL index cannot be opened).
fn connect_read_only(path: &Path, immutable: bool) -> rusqlite::Result<(Connection, i64)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if immutable {
        Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )?
    } else {
        Connection::open_with_flags(path, flags)?
    };
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let version = user_version(&conn)?;
    Ok((conn, version))
}

/// `path` with `suffix` appended to the file name (`-wal`, `-shm`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The path part of an SQLite `file:` URI: everything but unreserved bytes and `/`
/// percent-encoded, so `?`, `#` and `%` in file names stay part of the name.
fn uri_path(path: &Path) -> String {
    use std::fmt::Write;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::new();
    for &b in abs.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// A missing directory is named with the OS's words; SQLite would only say "unable to open".
fn check_parent_dir(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("{} is not a directory", dir.display()),
        }),
        Err(e) => Err(StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("directory {}: {e}", dir.display()),
        }),
    }
}

/// A write transaction; dropped without [`Tx::commit`] it rolls back.
pub struct Tx<'a>(rusqlite::Transaction<'a>);

impl Tx<'_> {
    /// `execute` through the statement cache: the pipeline runs the same few statements
    /// thousands of times per batch, and preparing one costs more than running it.
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.0.prepare_cached(sql)?.execute(params)
    }

    /// `query_row` through the statement cache (see [`Tx::exec`]).
    fn query_one<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.0.prepare_cached(sql)?.query_row(params, f)
    }

    /// Makes everything in the transaction durable at once.
    pub fn commit(self) -> Result<()> {
        Ok(self.0.commit()?)
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .query_one("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value in the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Every row of every table, in a stable order, as text: for equality checks in tests
    /// and debugging.
    pub fn dump(&self) -> Result<String> {
        let mut out = String::new();
        for (table, order) in [
            ("facts", "kind, key"),
            ("baseline", "kind, key"),
            ("baseline_versions", "version"),
            ("baseline_history", "version, kind, key, op"),
            ("findings", "id"),
            ("pending_ops", "operation_id, phase, event_time"),
            ("tombstones", "kind, resource_id"),
            ("outbox", "seq"),
            ("checkpoints", "source"),
            ("meta", "key"),
        ] {
            let mut stmt = self
                .0
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
            let stmt_cols: Vec<String> = stmt.column_names().map(str::to_string).collect();
            let mut rows = stmt.query([])?;
            out.push_str(&format!("== {table}\n"));
            while let Some(r) = rows.next()? {
                let mut fields = Vec::with_capacity(stmt_cols.len());
                for (i, name) in stmt_cols.iter().enumerate() {
                    // Wall-clock ingest times differ between otherwise identical runs.
                    if name == "ingested_at" {
                        continue;
                    }
                    let v: rusqlite::types::Value = r.get(i)?;
                    fields.push(format!("{v:?}"));
                }
                out.push_str(&fields.join(" | "));
                out.push('\n');
            }
        }
        // Random per database (alert keys carry it): two runs of the same input differ only there.
        if let Some(id) = self.meta("installation_id")? {
            out = out.replace(&id, "<installation>");
        }
        Ok(out)
    }
}

fn json_col<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: &str,
    text: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        key: key.to_string(),
        problem: e.to_string(),
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising our own types to JSON cannot fail: no maps with non-string keys.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_string())
}

/// Switches to WAL (persistent in the file, so usually a no-op). When several processes
/// create the same database at once, SQLite can answer the switch with SQLITE_BUSY without
/// calling the busy handler (the lock is taken for recovery or by another switch), so this
/// retries for as long as the busy timeout, in short sleeps.
fn set_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode = conn
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .and_then(|m| {
                if m.eq_ignore_ascii_case("wal") {
                    Ok(m)
                } else {
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| {
                        r.get::<_, String>(0)
                    })
                }
            });
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}
