//! Durable storage of the local vault: SQLite (WAL, `synchronous=FULL`).
//!
//! Every version of every secret is a row of `versions`; a soft-deleted secret keeps its
//! rows and gets a row in `deleted` until it is recovered or purged. A write is
//! acknowledged only after its transaction has committed and the WAL has been synced, so
//! an acknowledged write survives `kill -9` and power loss. Names are case-insensitive:
//! rows are keyed by the upper-cased name and keep the spelling they were written with.
//! As in the service, a deleted secret is purged for good once its `scheduledPurgeDate`
//! has passed ([`Storage::purge_expired`], swept by the server).

use super::latest::LatestVersions;
use crate::error::{Error, Result};
use crate::secret::SecretString;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Days a deleted secret stays recoverable (the service's default retention).
pub const RECOVERABLE_DAYS: i64 = 90;

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

/// When a secret was deleted, and when it would be purged.
#[derive(Debug, Clone, Copy)]
pub struct Deletion {
    /// Unix seconds.
    pub deleted_date: i64,
    /// Unix seconds: `deleted_date` + [`RECOVERABLE_DAYS`].
    pub scheduled_purge: i64,
}

/// Changes to a version's properties; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Patch {
    /// New content type.
    pub content_type: Option<String>,
    /// New tags (replacing all).
    pub tags: Option<BTreeMap<String, String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
    /// New not-before.
    pub nbf: Option<i64>,
    /// New expiry.
    pub exp: Option<i64>,
}

/// The database, and the latest versions kept in memory ([`LatestVersions`]).
pub struct Storage {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: std::sync::atomic::AtomicUsize,
    latest: LatestVersions,
}

/// Read connections: WAL lets readers run beside the writer and each other.
const READERS: usize = 4;

/// Checks the database and its companions ([`crate::private_files::check_file`]) and creates
/// the database empty with mode 0600 where it is missing.
fn prepare_private_files(path: &Path) -> Result<()> {
    let mut companions = Vec::new();
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        companions.push(std::path::PathBuf::from(name));
    }
    for file in std::iter::once(path).chain(companions.iter().map(|p| p.as_path())) {
        crate::private_files::check_file(file, "the local vault's database file")?;
    }
    crate::private_files::create(path, "the local vault's database file")
}

const COLUMNS: &str =
    "name, version, value, content_type, tags, enabled, nbf, exp, created, updated";
const ACTIVE: &str = "name_key NOT IN (SELECT name_key FROM deleted)";

impl Storage {
    /// Opens (or creates) the database at `path`. The database is created 0600 before
    /// SQLite opens it, so its `-wal` and `-shm` files, which SQLite creates with the
    /// database's mode, are private too; existing ones must be this user's and are made 0600.
    pub fn open(path: &Path) -> Result<Storage> {
        prepare_private_files(path)?;
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
             CREATE INDEX IF NOT EXISTS versions_by_name ON versions (name_key, seq);
             CREATE TABLE IF NOT EXISTS deleted (
                 name_key TEXT PRIMARY KEY,
                 deleted_date INTEGER NOT NULL,
                 scheduled_purge INTEGER NOT NULL
             );",
        )?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                reader.busy_timeout(std::time::Duration::from_secs(5))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Storage {
            writer: Mutex::new(conn),
            readers,
            next_reader: std::sync::atomic::AtomicUsize::new(0),
            latest: LatestVersions::default(),
        })
    }

    /// The write connection. A panic while holding a lock cannot leave a half-done
    /// transaction behind (SQLite rolls it back), so a poisoned lock is safe to reuse.
    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read connection: a free one if there is one, else the next in turn.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                return guard;
            }
        }
        let i = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a new version; `None` if the name is deleted (and so cannot be reused). A
    /// name keeps the spelling it was created with, whatever the case of later writes.
    pub fn set(&self, mut new: NewVersion) -> Result<Option<StoredVersion>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if deletion(&tx, &new.name)?.is_some() {
            return Ok(None);
        }
        let created_as: Option<String> = tx
            .query_row(
                "SELECT name FROM versions WHERE name_key = ?1 ORDER BY seq LIMIT 1",
                params![key(&new.name)],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(name) = created_as {
            new.name = name;
        }
        let now = now();
        let stored = StoredVersion {
            version: new_version_id(),
            created: now,
            updated: now,
            data: new,
        };
        insert(&tx, &stored)?;
        tx.commit()?;
        self.latest.invalidate(&key(&stored.data.name));
        Ok(Some(stored))
    }

    /// The latest version, or the given one, of a secret that is not deleted.
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Option<StoredVersion>> {
        if version.is_some() {
            return find(&self.reader(), name, version, true);
        }
        if let Some(latest) = self.cached_latest(name) {
            return Ok(Some(latest));
        }
        let generation = self.latest.generation();
        let found = find(&self.reader(), name, None, true)?;
        if let Some(latest) = &found {
            self.latest.fill(key(name), latest.clone(), generation);
        }
        Ok(found)
    }

    /// The latest version of an active secret, if it is in memory (no SQLite, no blocking).
    pub fn cached_latest(&self, name: &str) -> Option<StoredVersion> {
        self.latest.get(&key(name))
    }

    /// Changes a version's properties (the latest when `version` is `None`).
    pub fn update(
        &self,
        name: &str,
        version: Option<&str>,
        patch: &Patch,
    ) -> Result<Option<StoredVersion>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(mut stored) = find(&tx, name, version, true)? else {
            return Ok(None);
        };
        let data = &mut stored.data;
        if let Some(ct) = &patch.content_type {
            data.content_type = Some(ct.clone());
        }
        if let Some(tags) = &patch.tags {
            data.tags = tags.clone();
        }
        data.enabled = patch.enabled.unwrap_or(data.enabled);
        data.nbf = patch.nbf.or(data.nbf);
        data.exp = patch.exp.or(data.exp);
        stored.updated = now().max(stored.updated);
        tx.execute(
            "UPDATE versions SET content_type = ?3, tags = ?4, enabled = ?5, nbf = ?6, exp = ?7, updated = ?8
             WHERE name_key = ?1 AND version = ?2",
            params![
                key(name),
                stored.version,
                stored.data.content_type,
                serde_json::to_string(&stored.data.tags).expect("tags serialise"),
                stored.data.enabled,
                stored.data.nbf,
                stored.data.exp,
                stored.updated
            ],
        )?;
        tx.commit()?;
        self.latest.invalidate(&key(name));
        Ok(Some(stored))
    }

    /// The latest version of each active secret whose key sorts after `after`, at most
    /// `limit`; and whether more follow.
    pub fn list(&self, after: &str, limit: usize) -> Result<(Vec<StoredVersion>, bool)> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE seq IN (
                 SELECT MAX(seq) FROM versions WHERE name_key > ?1 AND {ACTIVE}
                 GROUP BY name_key ORDER BY name_key LIMIT ?2)
             ORDER BY name_key"
        ))?;
        let rows = statement
            .query_map(params![after, (limit + 1) as i64], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(split_page(rows, limit))
    }

    /// The versions of an active `name` whose id sorts after `after`, at most `limit`; and
    /// whether more follow.
    pub fn list_versions(
        &self,
        name: &str,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<StoredVersion>, bool)> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE name_key = ?1 AND version > ?2 AND {ACTIVE}
             ORDER BY version LIMIT ?3"
        ))?;
        let rows = statement
            .query_map(params![key(name), after, (limit + 1) as i64], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(split_page(rows, limit))
    }

    /// Every version of an active secret, oldest first (for a backup).
    pub fn all_versions(&self, name: &str) -> Result<Vec<StoredVersion>> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM versions WHERE name_key = ?1 AND {ACTIVE} ORDER BY seq"
        ))?;
        let rows = statement
            .query_map(params![key(name)], read_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Soft-deletes a secret: returns its latest version and the deletion, if it was active.
    pub fn delete(&self, name: &str) -> Result<Option<(StoredVersion, Deletion)>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(latest) = find(&tx, name, None, true)? else {
            return Ok(None);
        };
        let deleted_date = now();
        let deletion = Deletion {
            deleted_date,
            scheduled_purge: deleted_date + RECOVERABLE_DAYS * 86_400,
        };
        tx.execute(
            "INSERT INTO deleted (name_key, deleted_date, scheduled_purge) VALUES (?1, ?2, ?3)",
            params![key(name), deletion.deleted_date, deletion.scheduled_purge],
        )?;
        tx.commit()?;
        self.latest.invalidate(&key(name));
        Ok(Some((latest, deletion)))
    }

    /// A deleted secret: its latest version and the deletion.
    pub fn get_deleted(&self, name: &str) -> Result<Option<(StoredVersion, Deletion)>> {
        let conn = self.reader();
        let Some(deletion) = deletion(&conn, name)? else {
            return Ok(None);
        };
        Ok(find(&conn, name, None, false)?.map(|v| (v, deletion)))
    }

    /// Deleted secrets whose key sorts after `after`, at most `limit`; and whether more follow.
    pub fn list_deleted(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<(Vec<(StoredVersion, Deletion)>, bool)> {
        let conn = self.reader();
        let mut statement = conn.prepare_cached(
            "SELECT name_key, deleted_date, scheduled_purge FROM deleted WHERE name_key > ?1
             ORDER BY name_key LIMIT ?2",
        )?;
        let keys = statement
            .query_map(params![after, (limit + 1) as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    Deletion {
                        deleted_date: row.get(1)?,
                        scheduled_purge: row.get(2)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut items = Vec::new();
        for (name_key, deletion) in keys {
            if let Some(latest) = find(&conn, &name_key, None, false)? {
                items.push((latest, deletion));
            }
        }
        let more = items.len() > limit;
        items.truncate(limit);
        Ok((items, more))
    }

    /// Undoes a delete; returns the latest version.
    pub fn recover(&self, name: &str) -> Result<Option<StoredVersion>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if !undelete(&tx, name)? {
            return Ok(None);
        }
        let latest = find(&tx, name, None, true)?;
        tx.commit()?;
        self.latest.invalidate(&key(name));
        Ok(latest)
    }

    /// Removes a deleted secret for good; `false` if it was not deleted.
    pub fn purge(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if !undelete(&tx, name)? {
            return Ok(false);
        }
        tx.execute(
            "DELETE FROM versions WHERE name_key = ?1",
            params![key(name)],
        )?;
        tx.commit()?;
        self.latest.invalidate(&key(name));
        Ok(true)
    }

    /// Purges, for good, every deleted secret whose scheduled purge date is at or before
    /// `now` (Unix seconds); returns how many.
    pub fn purge_expired(&self, now: i64) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM versions WHERE name_key IN
                 (SELECT name_key FROM deleted WHERE scheduled_purge <= ?1)",
            params![now],
        )?;
        let purged = tx.execute(
            "DELETE FROM deleted WHERE scheduled_purge <= ?1",
            params![now],
        )?;
        tx.commit()?;
        self.latest.clear();
        Ok(purged)
    }

    /// Writes back every version of one secret from a backup; `None` if the name exists
    /// (active or deleted). Returns the latest version.
    pub fn restore(&self, versions: &[StoredVersion]) -> Result<Option<StoredVersion>> {
        let Some(latest) = versions.last() else {
            return Ok(None);
        };
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM versions WHERE name_key = ?1)",
            params![key(&latest.data.name)],
            |row| row.get(0),
        )?;
        if exists {
            return Ok(None);
        }
        for version in versions {
            insert(&tx, version)?;
        }
        tx.commit()?;
        self.latest.invalidate(&key(&latest.data.name));
        Ok(Some(latest.clone()))
    }
}

fn insert(conn: &Connection, stored: &StoredVersion) -> Result<()> {
    let data = &stored.data;
    conn.execute(
        "INSERT INTO versions (name_key, name, version, value, content_type, tags, enabled, nbf, exp, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            key(&data.name),
            data.name,
            stored.version,
            data.value.expose(),
            data.content_type,
            serde_json::to_string(&data.tags).expect("tags serialise"),
            data.enabled,
            data.nbf,
            data.exp,
            stored.created,
            stored.updated
        ],
    )?;
    Ok(())
}

/// The latest version (or the given one); with `active`, only if the secret is not deleted.
fn find(
    conn: &Connection,
    name: &str,
    version: Option<&str>,
    active: bool,
) -> Result<Option<StoredVersion>> {
    let only_active = if active { ACTIVE } else { "1" };
    let found = match version {
        None => conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM versions WHERE name_key = ?1 AND {only_active} ORDER BY seq DESC LIMIT 1"),
                params![key(name)],
                read_row,
            )
            .optional()?,
        Some(version) => conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM versions WHERE name_key = ?1 AND version = ?2 AND {only_active}"),
                params![key(name), version.to_ascii_lowercase()],
                read_row,
            )
            .optional()?,
    };
    Ok(found)
}

/// Removes a secret's deletion mark; `false` if it had none.
fn undelete(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM deleted WHERE name_key = ?1",
        params![key(name)],
    )? > 0)
}

fn deletion(conn: &Connection, name: &str) -> Result<Option<Deletion>> {
    Ok(conn
        .query_row(
            "SELECT deleted_date, scheduled_purge FROM deleted WHERE name_key = ?1",
            params![key(name)],
            |row| {
                Ok(Deletion {
                    deleted_date: row.get(0)?,
                    scheduled_purge: row.get(1)?,
                })
            },
        )
        .optional()?)
}

fn new_version_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
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
