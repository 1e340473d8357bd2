//! [`LatencyStorage`]: a storage whose first read of each location costs a fixed latency, to
//! measure how the engines behave on state that comes from disk.

use std::cell::Cell;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use revm::bytecode::Bytecode;
use revm::database_interface::DatabaseRef;
use revm::primitives::{Address, B256, StorageKey, StorageValue};
use revm::state::AccountInfo;

use std::sync::atomic::{AtomicU64, Ordering};

/// What one read names, as far as the latency is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ReadKey {
    Account(Address),
    Slot(Address, StorageKey),
    Code(B256),
    BlockHash(u64),
}

/// Wraps a storage so that the first read of each location (account, storage slot, code,
/// block hash) takes at least `latency`, as a read from a node's disk would; later reads of
/// the same location are served at once, as from the node's cache.
///
/// The reading thread sleeps (it blocks, as on a synchronous disk read, and leaves its core to
/// other threads) until `latency` after the location was first asked for; a thread that asks
/// for a location another thread is already fetching waits for the same moment. On Linux the
/// thread's timer slack is lowered to 1 µs on its first read, so that short latencies are
/// not stretched to the default 50 µs; a sleep still overshoots by the scheduler's wake-up
/// time (a few microseconds on an idle machine).
///
/// Use one wrapper per block execution to model a cold cache for each run.
///
/// ```
/// use std::time::{Duration, Instant};
/// use blockstm_cli::LatencyStorage;
/// use blockstm_evm::InMemoryStorage;
/// use blockstm_evm::revm::primitives::Address;
/// use blockstm_evm::revm::DatabaseRef;
///
/// let storage = InMemoryStorage::new();
/// let slow = LatencyStorage::new(&storage, Duration::from_millis(2));
/// let started = Instant::now();
/// slow.basic_ref(Address::ZERO).unwrap();
/// assert!(started.elapsed() >= Duration::from_millis(2));
/// slow.basic_ref(Address::ZERO).unwrap(); // cached: no wait
/// assert_eq!(slow.first_reads(), 1);
/// ```
pub struct LatencyStorage<'a, S> {
    inner: &'a S,
    latency: Duration,
    /// Per location, when its first read completes.
    ready_at: DashMap<ReadKey, Instant, revm::primitives::map::DefaultHashBuilder>,
    first_reads: AtomicU64,
}

impl<S: std::fmt::Debug> std::fmt::Debug for LatencyStorage<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyStorage")
            .field("inner", &self.inner)
            .field("latency", &self.latency)
            .field("first_reads", &self.first_reads)
            .finish_non_exhaustive()
    }
}

impl<'a, S> LatencyStorage<'a, S> {
    /// `inner` with `latency` on the first read of each location.
    pub fn new(inner: &'a S, latency: Duration) -> Self {
        Self {
            inner,
            latency,
            ready_at: DashMap::default(),
            first_reads: AtomicU64::new(0),
        }
    }

    /// The latency of a first read.
    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// How many distinct locations have been read (each paid the latency once).
    pub fn first_reads(&self) -> u64 {
        self.first_reads.load(Ordering::Relaxed)
    }

    /// Waits until the location's first read completes (starting it if nobody did).
    fn wait_for(&self, key: ReadKey) {
        if self.latency.is_zero() {
            return;
        }
        // The map's guard is released before sleeping: other locations of the shard stay
        // readable meanwhile.
        let ready = *self.ready_at.entry(key).or_insert_with(|| {
            self.first_reads.fetch_add(1, Ordering::Relaxed);
            Instant::now() + self.latency
        });
        let now = Instant::now();
        if ready > now {
            lower_timer_slack();
            std::thread::sleep(ready - now);
        }
    }
}

thread_local! {
    static SLACK_LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers this thread's timer slack to 1 µs, once (Linux; elsewhere nothing).
fn lower_timer_slack() {
    if SLACK_LOWERED.get() {
        return;
    }
    SLACK_LOWERED.set(true);
    #[cfg(target_os = "linux")]
    {
        const ONE_MICROSECOND_NS: libc::c_ulong = 1_000;
        // SAFETY: PR_SET_TIMERSLACK takes the slack in nanoseconds as its only argument and
        // affects the calling thread alone; it cannot fail for a non-zero value.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ONE_MICROSECOND_NS, 0, 0, 0) };
    }
}

impl<S: DatabaseRef> DatabaseRef for LatencyStorage<'_, S> {
    type Error = S::Error;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.wait_for(ReadKey::Account(address));
        self.inner.basic_ref(address)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.wait_for(ReadKey::Code(code_hash));
        self.inner.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, key: StorageKey) -> Result<StorageValue, Self::Error> {
        self.wait_for(ReadKey::Slot(address, key));
        self.inner.storage_ref(address, key)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.wait_for(ReadKey::BlockHash(number));
        self.inner.block_hash_ref(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blockstm_evm::InMemoryStorage;
    use revm::primitives::U256;

    #[test]
    fn each_location_pays_the_latency_once_and_values_pass_through() {
        let mut storage = InMemoryStorage::new();
        let alice = Address::repeat_byte(1);
        storage.insert_account(alice, U256::from(7), 3, None);
        storage.set_storage(alice, U256::from(1), U256::from(9));
        let slow = LatencyStorage::new(&storage, Duration::from_millis(3));
        let started = Instant::now();
        assert_eq!(
            slow.basic_ref(alice).unwrap().unwrap().balance,
            U256::from(7)
        );
        assert_eq!(
            slow.storage_ref(alice, U256::from(1)).unwrap(),
            U256::from(9)
        );
        assert!(
            started.elapsed() >= Duration::from_millis(6),
            "two first reads"
        );
        let again = Instant::now();
        for _ in 0..10 {
            slow.basic_ref(alice).unwrap();
            slow.storage_ref(alice, U256::from(1)).unwrap();
        }
        assert!(
            again.elapsed() < Duration::from_millis(3),
            "cached reads do not wait"
        );
        assert_eq!(slow.first_reads(), 2);
    }

    #[test]
    fn threads_reading_one_location_wait_for_the_same_read() {
        let storage = InMemoryStorage::new();
        let slow = LatencyStorage::new(&storage, Duration::from_millis(50));
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| slow.basic_ref(Address::ZERO).unwrap());
            }
        });
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(50));
        // One after the other they would take 200 ms.
        assert!(
            elapsed < Duration::from_millis(150),
            "reads overlapped: {elapsed:?}"
        );
        assert_eq!(slow.first_reads(), 1);
    }

    #[test]
    fn zero_latency_counts_nothing_and_waits_for_nothing() {
        let storage = InMemoryStorage::new();
        let slow = LatencyStorage::new(&storage, Duration::ZERO);
        slow.basic_ref(Address::ZERO).unwrap();
        assert_eq!(slow.first_reads(), 0);
    }
}
