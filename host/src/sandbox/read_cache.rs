//! A read cache shared by the runs of one [`super::Sandbox`]: off by default, on with a
//! time-to-live the operator sets ([`super::Sandbox::with_read_cache`]).
//!
//! Runners start many runs that read the same few secrets, and Key Vault throttles per vault.
//! With the cache on, a value one run read is served to the sandbox's later runs for `ttl`
//! without a vault request, and concurrent reads of the same name (from any runs) become one
//! request: the first run's vault client fetches, the others wait for its answer.
//!
//! What does not change: every run's grant is checked before the cache is consulted (a run
//! never gets a name it was not granted, cached or not), every access is audited per run (a
//! hit as `ok (cached)`), and every value a run gets is masked in its output. Failures are not
//! cached: when the fetch fails, each waiting run tries with its own client. Values stay in
//! memory (zeroized when dropped) until they are `ttl` old and next asked for. `get-secrets`
//! batches take fresh values from the cache and fetch the rest in one call, whose values are
//! then cached; they do not wait on other runs' fetches.

use crate::error::Result;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// Where a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// This run's vault client fetched it.
    Vault,
    /// The cache, or another run's fetch that this run waited for.
    Cache,
}

/// One name: empty while the first fetch is under way, then the value and when it came.
type Slot<V> = Arc<OnceCell<(V, Instant)>>;

/// The sandbox-wide cache (see the module docs) of values `V` (what a read gives).
pub(crate) struct ReadCache<V> {
    ttl: Duration,
    slots: Mutex<HashMap<String, Slot<V>>>,
}

impl<V: Clone> ReadCache<V> {
    /// A cache whose values live `ttl`.
    pub(crate) fn new(ttl: Duration) -> ReadCache<V> {
        ReadCache {
            ttl,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The slot of `name`: the current one while it is being filled or fresh, else a new one.
    fn slot(&self, name: &str) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let key = name.to_ascii_uppercase();
        let fresh = |slot: &Slot<V>| slot.get().is_none_or(|(_, at)| at.elapsed() < self.ttl);
        match slots.get(&key) {
            Some(slot) if fresh(slot) => slot.clone(),
            _ => {
                slots.retain(|_, slot| fresh(slot));
                let slot = Slot::default();
                slots.insert(key, slot.clone());
                slot
            }
        }
    }

    /// The value of `name`: fresh from the cache, from a fetch under way, or from `fetch`.
    pub(crate) async fn get<F, Fut>(&self, name: &str, fetch: F) -> (Result<V>, Source)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V>>,
    {
        let slot = self.slot(name);
        let mut source = Source::Cache;
        let outcome = slot
            .get_or_try_init(|| {
                source = Source::Vault;
                async { fetch().await.map(|value| (value, Instant::now())) }
            })
            .await;
        match outcome {
            Ok((value, _)) => (Ok(value.clone()), source),
            Err(e) => (Err(e), Source::Vault),
        }
    }

    /// The fresh value of `name`, if the cache has one (no waiting).
    pub(crate) fn fresh(&self, name: &str) -> Option<V> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .get(&name.to_ascii_uppercase())
            .and_then(|slot| slot.get())
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(value, _)| value.clone())
    }

    /// Keeps `value` as the value of `name` read just now (from a batch).
    pub(crate) fn put(&self, name: &str, value: &V) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = Slot::new(OnceCell::new_with(Some((value.clone(), Instant::now()))));
        slots.insert(name.to_ascii_uppercase(), slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_reads_are_one_fetch_and_values_expire() {
        let cache = ReadCache::new(Duration::from_millis(200));
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(SecretString::from("value"))
        };
        let reads = futures::future::join_all((0..50).map(|_| cache.get("Name", fetch))).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        let vault = reads.iter().filter(|(_, s)| *s == Source::Vault).count();
        assert_eq!(vault, 1, "one run fetched, 49 waited");
        assert!(reads
            .iter()
            .all(|(v, _)| v.as_ref().unwrap().expose() == "value"));
        assert_eq!(cache.get("NAME", fetch).await.1, Source::Cache);
        assert_eq!(cache.fresh("name").unwrap().expose(), "value");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(cache.fresh("name").is_none());
        assert_eq!(cache.get("name", fetch).await.1, Source::Vault);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let failing = || async { Err(crate::Error::Unavailable("throttled".into())) };
        assert!(cache.get("n", failing).await.0.is_err());
        let (value, source) = cache
            .get("n", || async { Ok(SecretString::from("v")) })
            .await;
        assert_eq!((value.unwrap().expose(), source), ("v", Source::Vault));
    }
}
