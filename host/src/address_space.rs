//! How much address space the engine reserves, and whether that fits the process's limit.
//!
//! The pooling allocator reserves, up front and for the engine's whole life, one slot per
//! instance: a linear memory of the runtime's `max_memory` plus a guard region, and an async
//! stack. That is address space, not resident memory, but an address-space limit
//! (`RLIMIT_AS`, as `ulimit -v`, Slurm and some container runtimes set) counts it. So the
//! reservation follows the work: a one-shot command sizes its pool for the instances it will
//! use and the memory it allows them, and when the pool would not fit comfortably under the
//! limit the engine allocates each instance on demand instead (slower to instantiate, nothing
//! reserved up front). Pure logic; [`current_limit`] is the one system call.
//!
//! | what | address space |
//! |---|---|
//! | one pooled slot | `max_memory` (rounded up to a power of two, at least 64 MiB) + [`GUARD`] + [`STACK`] + [`INSTANCE_STATE`] (about 37 MiB) |
//! | a `Runtime` with N slots | N × the above |
//! | `kvrun secret …` (4 slots of 64 MiB) | about 540 MiB |
//! | `kvrun run --max-memory 512MiB` (2 slots of 512 MiB) | about 1.2 GiB |

/// The guard region after each linear memory.
pub const GUARD: u64 = 32 << 20;

/// The async stack of each instance, with its guard page.
pub const STACK: u64 = (2 << 20) + 4096;

/// Core-instance and table slots per component instance: a Rust component has a handful, a
/// componentize-py one (CPython and its libraries) about twenty.
pub const CORE_PER_COMPONENT: u32 = 32;

/// The instance state and tables of one component's core instances (wasmtime's defaults: 1 MiB
/// per core instance, 20,000 eight-byte elements per table).
pub const INSTANCE_STATE: u64 = CORE_PER_COMPONENT as u64 * ((1 << 20) + 20_000 * 8);

/// Share of an address-space limit that the pool may take; the rest is for the process
/// itself (code, heap, thread stacks, compilation).
const SHARE_OF_LIMIT: f64 = 0.5;

/// The smallest memory reservation per instance.
const MIN_MEMORY: u64 = 64 << 20;

/// How the engine allocates instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// One pooled slot per instance, reserved up front (fast instantiation).
    Pooled,
    /// Each instance allocated when it is created (nothing reserved up front).
    OnDemand,
}

/// What the engine will reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The allocation strategy.
    pub allocation: Allocation,
    /// The linear-memory reservation of one instance.
    pub memory_reservation: u64,
    /// Address space reserved up front.
    pub reserved: u64,
}

/// The memory reservation for instances whose memories may grow to `max_memory`: a power of
/// two, at least 64 MiB (few distinct values, since compiled code depends on it).
pub fn memory_reservation(max_memory: u64) -> u64 {
    max_memory.max(MIN_MEMORY).next_power_of_two()
}

/// The plan for `instances` slots of `max_memory` under `limit` (`RLIMIT_AS`, if any).
pub fn plan(instances: u32, max_memory: u64, limit: Option<u64>) -> Plan {
    let memory_reservation = memory_reservation(max_memory);
    let pooled = u64::from(instances) * (memory_reservation + GUARD + STACK + INSTANCE_STATE);
    match limit {
        Some(limit) if pooled as f64 > limit as f64 * SHARE_OF_LIMIT => Plan {
            allocation: Allocation::OnDemand,
            memory_reservation,
            reserved: 0,
        },
        _ => Plan {
            allocation: Allocation::Pooled,
            memory_reservation,
            reserved: pooled,
        },
    }
}

/// This process's address-space limit (`RLIMIT_AS`), if one is set.
pub fn current_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit to the pointer we pass, which is valid.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_pool_follows_the_work_and_yields_to_the_limit() {
        assert_eq!(memory_reservation(1), 64 << 20);
        assert_eq!(memory_reservation(512 << 20), 512 << 20);
        assert_eq!(memory_reservation(700 << 20), GIB);
        let secret = plan(4, 64 << 20, None);
        assert_eq!(secret.allocation, Allocation::Pooled);
        assert!(secret.reserved < 560 << 20, "{}", secret.reserved);
        let run = plan(2, 512 << 20, Some(4_096_000 * 1024));
        assert_eq!(
            run.allocation,
            Allocation::Pooled,
            "fits under ulimit -v 4000000"
        );
        assert!(run.reserved < 1300 << 20, "{}", run.reserved);
        let runner = plan(256, 4 * GIB, Some(64 * GIB));
        assert_eq!(runner.allocation, Allocation::OnDemand);
        assert_eq!(runner.reserved, 0);
        assert_eq!(plan(256, 4 * GIB, None).allocation, Allocation::Pooled);
    }
}
