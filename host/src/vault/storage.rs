//! Durable storage of the local vault: SQLite (WAL, `synchronous=FULL`).
//!
//! Every version of every secret is a row; nothing is rewritten in place. A write is
//! acknowledged only after its transaction has committed and the WAL has been synced, so
//! an acknowledged write survives `kill -9` and power loss. Names are case-insensitive:
//! rows are keyed by the upper-cased name and keep the spelling they were written with.

use crate::{Error, Result, SecretString};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// What a caller gives for a new version.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// The name as written.
    pub name: String,
    /// The value.
    pub value: SecretString,
    /// Content type.
    pub content_type: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Whether reads are allowed.
    pub enabled: bool,
    /// Not before (Unix seconds).
    pub nbf: Option<i64>,
    /// Expiry (Unix seconds).
    pub exp: Option<i64>,
}

/// A stored secret version: what was given, plus what the vault assigned.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// 32 lower-case hex digits.
    pub version: String,
    /// Creation time (Unix seconds).
    pub created: i64,
    /// Last update (Unix seconds).
    pub updated: i64,
    /// Name, value and attributes.
    pub data: NewVersion,
}

/// The database.
pub struct Storage {
    conn: Mutex<Connection>,
}

const COLUMNS: &str =
    "name, version, value, content_type, tags, enabled, nbf, exp, created, updated";

impl Storage {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Storage> {
        let conn = Connection::open(path)
            .map_err(|e| Error::Storage(format!("could not open {}: {e}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS versions (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 name_key TEXT NOT NULL,
                 name TEXT NOT NULL,
                 version TEXT NOT NULL,
                 value TEXT NOT NULL,
                 content_type TEXT,
                 tags TEXT NOT NULL,
                 enabled INTEGER NOT NULL,
                 nbf INTEGER,
                 exp INTEGER,
                 created INTEGER NOT NULL,
                 updated INTEGER NOT NULL,
                 UNIQUE (name_key, version)
             );
             CREATE INDEX IF NOT EXISTS versions_by_name ON versions (name_key, seq);",
        )?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(Storage {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind
        // (SQLite rolls it back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a new version; returns it.
    pub fn set(&self, new: NewVersion) -> Result<StoredVersion> {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        let now = now();
        let stored = StoredVersion {
            version: hex::encode(bytes),
            created: now,
            updated: now,
            data: new,
        };
        let data = &stored.data;
        let tags = serde_json::to_string(&data.tags).expect("tags serialise");
        self.conn().execute(
            "INSERT INTO versions (name_key, name, version, value, content_type, tags, enabled, nbf, exp, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                key(&data.name),
                data.name,
                stored.version,
                data.value.expose(),
                data.content_type,
                tags,
                data.enabled,
                data.nbf,
                data.exp,
                stored.created,
                stored.updated
            ],
        )?;
        Ok(stored)
    }

    /// The latest version, or the given one.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Option<StoredVersion>> {
        let conn = self.conn();
        let found = match version {
            None => conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM versions WHERE name_key = ?1 ORDER BY seq DESC LIMIT 1"),
                    params![key(name)],
                    read_row,
                )
                .optional()?,
            Some(version) => conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM versions WHERE name_key = ?1 AND version = ?2"),
                    params![key(name), version.to_ascii_lowercase()],
                    read_row,
                )
                .optional()?,
        };
        Ok(found)
    }

    /// The latest version of each secret whose key sorts after `after`, at most `limit`;
    /// and whether more follow.
    pub fn list(&self, after: &str, limit: usize) -> Result<(Vec<StoredVersion>, bool)> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE seq IN (
                 SELECT MAX(seq) FROM versions WHERE name_key > ?1
                 GROUP BY name_key ORDER BY name_key LIMIT ?2)
             ORDER BY name_key"
        ))?;
        let rows = statement
            .query_map(params![after, (limit + 1) as i64], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(split_page(rows, limit))
    }

    /// The versions of `name` whose id sorts after `after`, at most `limit`; and whether
    /// more follow.
    pub fn list_versions(
        &self,
        name: &str,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<StoredVersion>, bool)> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE name_key = ?1 AND version > ?2
             ORDER BY version LIMIT ?3"
        ))?;
        let rows = statement
            .query_map(params![key(name), after, (limit + 1) as i64], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(split_page(rows, limit))
    }

    /// Deletes every version; returns the latest one, if the secret existed.
    pub fn delete(&self, name: &str) -> Result<Option<StoredVersion>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let latest = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM versions WHERE name_key = ?1 ORDER BY seq DESC LIMIT 1"
                ),
                params![key(name)],
                read_row,
            )
            .optional()?;
        tx.execute(
            "DELETE FROM versions WHERE name_key = ?1",
            params![key(name)],
        )?;
        tx.commit()?;
        Ok(latest)
    }
}

/// The sort and identity key of a name: upper case, as the service keys them.
pub fn key(name: &str) -> String {
    name.to_ascii_uppercase()
}

fn split_page(mut rows: Vec<StoredVersion>, limit: usize) -> (Vec<StoredVersion>, bool) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    (rows, more)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<StoredVersion> {
    let tags: String = row.get(4)?;
    Ok(StoredVersion {
        version: row.get(1)?,
        created: row.get(8)?,
        updated: row.get(9)?,
        data: NewVersion {
            name: row.get(0)?,
            value: SecretString::new(row.get(2)?),
            content_type: row.get(3)?,
            tags: serde_json::from_str(&tags).unwrap_or_default(),
            enabled: row.get(5)?,
            nbf: row.get(6)?,
            exp: row.get(7)?,
        },
    })
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
