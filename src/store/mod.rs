//! The SQLite store: facts, baseline, findings, pending phases, outbox and checkpoints.
//! Everything a batch does happens in one [`Tx`]; a crash rolls all of it back.

mod baseline;
mod checkpoint;
mod facts;
mod findings;
mod outbox;
mod pending;
mod query;
mod schema;

pub use baseline::{BaselineEntry, BaselineVersion};
pub use checkpoint::Checkpoint;
pub use facts::{FactApply, FactRow};
pub use outbox::OutboxRow;
pub use pending::{PendingKind, PendingRow};

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// Store failures. Messages name the database and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or set up.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
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
    /// A query failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
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

/// Result type of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                return Err(StoreError::Open {
                    path: path.to_path_buf(),
                    source: rusqlite::Error::InvalidPath(dir.to_path_buf()),
                });
            }
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        // WAL: readers (CLI) never block the writer (daemon). NORMAL sync survives process
        // crashes, which is what the exactly-once guarantee is about.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
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

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let supported = schema::MIGRATIONS.len() as i64;
        if version > supported {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
            tracing::info!(db = %self.path.display(), version = i + 1, "migrated database schema");
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

/// A write transaction; dropped without [`Tx::commit`] it rolls back.
pub struct Tx<'a>(rusqlite::Transaction<'a>);

impl Tx<'_> {
    /// Makes everything in the transaction durable at once.
    pub fn commit(self) -> Result<()> {
        Ok(self.0.commit()?)
    }

    /// A value from the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .0
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value in the `meta` table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.0.execute(
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
