//! The latest version of each active secret, kept in memory: a `GET /secrets/{name}` (what
//! runs and `kvrun secret get` send) is answered without touching SQLite or leaving the async
//! thread.
//!
//! Writes are unchanged (SQLite first, acknowledged once durable); after its commit, while it
//! still holds the write connection, every write invalidates the names it touched. A read that
//! misses goes to SQLite and fills the entry only if no write happened since the read began
//! (a generation number), so a read racing a write never puts back what the write replaced.
//! The cache holds at most [`MAX_ENTRIES`] secrets; past that it starts again empty.

use super::storage::StoredVersion;
use std::collections::HashMap;
use std::sync::Mutex;

/// The most secrets kept in memory.
pub const MAX_ENTRIES: usize = 10_000;

/// Latest versions by name key (see the module docs).
#[derive(Default)]
pub struct LatestVersions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, StoredVersion>,
    generation: u64,
}

impl LatestVersions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached latest version of `key`, if any.
    pub fn get(&self, key: &str) -> Option<StoredVersion> {
        self.lock().entries.get(key).cloned()
    }

    /// The generation to give [`LatestVersions::fill`] after reading from SQLite.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Keeps `version` as the latest of `key`, unless a write happened since `generation`.
    pub fn fill(&self, key: String, version: StoredVersion, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(key, version);
    }

    /// Forgets `key` after a write to it.
    pub fn invalidate(&self, key: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.remove(key);
    }

    /// Forgets everything after a write to many names.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::storage::NewVersion;

    fn version(value: &str) -> StoredVersion {
        StoredVersion {
            version: "0".repeat(32),
            created: 1,
            updated: 1,
            data: NewVersion {
                name: "n".into(),
                value: value.into(),
                content_type: None,
                tags: Default::default(),
                enabled: true,
                nbf: None,
                exp: None,
            },
        }
    }

    #[test]
    fn a_read_that_raced_a_write_does_not_fill() {
        let cache = LatestVersions::default();
        let before = cache.generation();
        cache.invalidate("N");
        cache.fill("N".into(), version("old"), before);
        assert!(
            cache.get("N").is_none(),
            "the write came after the read began"
        );
        let now = cache.generation();
        cache.fill("N".into(), version("new"), now);
        assert_eq!(cache.get("N").unwrap().data.value.expose(), "new");
        cache.invalidate("N");
        assert!(cache.get("N").is_none());
    }
}
