//! The clients that serve a `Vault`'s keyvault calls: one per calling thread.
//!
//! A call runs wholly on the Python thread that made it, with the GIL released: the thread's
//! own current-thread tokio runtime drives the component, its requests and its client's
//! connections, so none of the call's wake-ups crosses threads. Driven from the shared
//! multi-thread runtime (blocking on it, or spawned onto it), a warm get from Python took
//! 383-400 µs in `benches/get_secret.py`, where this measures 271-324 µs. A client's
//! connections belong to the runtime of the thread that opened them, so each thread keeps
//! its own client, and a thread never uses another's.
//!
//! At most `capacity` clients live at once (the size of the `Vault`'s instance pool), and at
//! most `capacity` calls run at once. A thread that needs a client when all of them exist
//! takes the place of an idle one (another thread's, or a finished thread's), which is
//! dropped.

use kvrun::{Client, ClientOptions, Error, Runtime};
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

thread_local! {
    /// This thread's runtime for keyvault calls.
    static CALLS: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime could not start (out of threads or memory?)");
}

/// The clients of one `Vault`.
pub struct Clients {
    capacity: usize,
    permits: tokio::sync::Semaphore,
    state: Mutex<State>,
}

/// The idle clients by thread, and how many clients exist (idle or in a call).
#[derive(Default)]
struct State {
    idle: HashMap<ThreadId, Client>,
    live: usize,
}

impl Clients {
    /// At most `capacity` clients and calls at once.
    pub fn new(capacity: usize) -> Clients {
        Clients {
            capacity,
            permits: tokio::sync::Semaphore::new(capacity),
            state: Mutex::default(),
        }
    }

    /// Runs `f` with this thread's client (made when it has none), on this thread, with the
    /// GIL released.
    pub fn call<T: Send>(
        &self,
        py: Python<'_>,
        runtime: &Runtime,
        options: &ClientOptions,
        f: impl AsyncFnOnce(&mut Client) -> kvrun::Result<T> + Send,
    ) -> kvrun::Result<T> {
        py.detach(|| {
            CALLS.with(|calls| {
                calls.block_on(async {
                    let _permit = self
                        .permits
                        .acquire()
                        .await
                        .map_err(|_| Error::Config("this Keyvault is closed".into()))?;
                    let mut lease = self.lease();
                    let client = match &mut lease.client {
                        Some(client) => client,
                        empty => empty.insert(Client::new(runtime, options.clone()).await?),
                    };
                    f(client).await
                })
            })
        })
    }

    /// Whether [`Clients::close`] has run.
    pub fn is_closed(&self) -> bool {
        self.permits.is_closed()
    }

    /// Refuses every later call and drops the idle clients.
    pub fn close(&self) {
        self.permits.close();
        let idle = {
            let mut state = self.state();
            state.live -= state.idle.len();
            std::mem::take(&mut state.idle)
        };
        drop(idle);
    }

    /// This thread's idle client, or room for a new one (dropping another thread's idle
    /// client when all `capacity` exist).
    fn lease(&self) -> Lease<'_> {
        let thread = std::thread::current().id();
        let mut state = self.state();
        if let Some(client) = state.idle.remove(&thread) {
            return Lease {
                clients: self,
                thread,
                client: Some(client),
            };
        }
        let evicted = match state.live >= self.capacity {
            // Fewer than `capacity` calls run, so some client is idle.
            true => state
                .idle
                .keys()
                .next()
                .copied()
                .and_then(|other| state.idle.remove(&other)),
            false => None,
        };
        if evicted.is_none() {
            state.live += 1;
        }
        drop(state);
        drop(evicted);
        Lease {
            clients: self,
            thread,
            client: None,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A thread's client for one call: back to the idle ones afterwards, or, if none was made
/// (or the `Vault` was closed meanwhile), its place freed.
struct Lease<'a> {
    clients: &'a Clients,
    thread: ThreadId,
    client: Option<Client>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let mut state = self.clients.state();
        match self.client.take() {
            Some(client) if !self.clients.is_closed() => {
                state.idle.insert(self.thread, client);
            }
            _ => state.live -= 1,
        }
    }
}
