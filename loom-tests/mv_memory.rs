//! The MvMemory cell protocol (`src/mv_memory/`: `read.rs`, `record.rs`), model-checked with
//! loom.
//!
//! Two writers and a reader share three locations of a real [`MvMemory`]:
//! - tx 1 (one thread, as the scheduler guarantees: its executor, then the validator that
//!   aborts it, then its re-execution) writes A and B, marks both ESTIMATE, and re-executes
//!   writing A only, which leaves a tombstone at B;
//! - tx 0 credits a fee to account C, then its next incarnation writes C as a plain value;
//! - tx 2 reads the three locations and asks `only_credits` between the reads.
//!
//! Each writer goes through a fixed sequence of steps (entry states and `plain_entries`
//! counts). Every observation of the reader (a read, an `only_credits`) is compatible with a
//! set of steps; the check is that the reader's observations, in its program order, fit one
//! non-decreasing sequence of steps per writer: the cell is linearizable. That covers the
//! ESTIMATE protocol (a reader sees the old value, the ESTIMATE or the new value, and never
//! falls through to a lower version while a writer replaces its entry) and the conservative
//! `plain_entries` count (raised before a plain entry is published, lowered after it is gone:
//! a reader that found a plain entry never hears "only credits" afterwards). After the
//! threads join, the final values, the tombstone and the exact counts are checked.
//!
//! What loom sees: the counter and the `last_writes` mutex come from `crate::sync`; the
//! version map (crossbeam-skiplist, entries behind crossbeam-epoch pointers) is not
//! loom-aware, so under `cfg(loom)` each map access is announced by an access to a per-cell
//! loom atomic (`Cell::map_access`) in the same model step. Each map operation (a whole
//! `read`, one insert or swap) is therefore one atomic, sequentially consistent step; the
//! skip list's and epoch's internal orderings are not explored (crossbeam checks those with
//! its own loom suite). The announcements and the seeded [`CellMutation`]s are hooks in
//! `src/mv_memory/loom_hooks.rs`.

use std::sync::Arc;

use revm::primitives::U256;
use revm::state::AccountInfo;

use super::{STACK_WORDS, explore};
use crate::mv_memory::{AccountValue, BaseValue, CellMutation, MvMemory, ReadResult, WriteValue};
use crate::types::{LocId, Version};

const A: LocId = LocId(0);
const B: LocId = LocId(1);
const C: LocId = LocId(2);
/// The reading transaction.
const READER: u32 = 2;

/// Steps `from..=to` of a writer, as a bit set.
const fn steps(from: u32, to: u32) -> u16 {
    ((1u32 << (to + 1)) - (1u32 << from)) as u16
}

fn storage(value: u64) -> WriteValue {
    WriteValue::Storage(U256::from(value))
}

fn account() -> AccountValue {
    AccountValue {
        info: Some(AccountInfo {
            balance: U256::from(1),
            ..AccountInfo::default()
        }),
        wiped_at: None,
    }
}

fn written(tx: u32, incarnation: u32, value: u64) -> impl Fn(&ReadResult) -> bool {
    move |result| {
        matches!(result, ReadResult::Written { version, value: v }
            if *version == Version { tx, incarnation } && *v == storage(value))
    }
}

/// tx 1's steps: 0 start; 1 A counted; 2 A = 10 (incarnation 0); 3 B counted; 4 B = 20;
/// 5 A ESTIMATE; 6 B ESTIMATE; 7 A = 11 (incarnation 1); 8 B tombstone; 9 B uncounted.
fn tx1_steps(location: LocId, result: &ReadResult) -> u16 {
    let blocked = matches!(result, ReadResult::Blocked(1));
    let base = matches!(result, ReadResult::Base);
    match location {
        A if base => steps(0, 1),
        A if written(1, 0, 10)(result) => steps(2, 4),
        A if blocked => steps(5, 6),
        A if written(1, 1, 11)(result) => steps(7, 9),
        B if base => steps(0, 3) | steps(8, 9),
        B if written(1, 0, 20)(result) => steps(4, 5),
        B if blocked => steps(6, 7),
        _ => panic!("tx 2 read {result:?} at {location:?}"),
    }
}

/// tx 1's steps at which `only_credits(location)` answers `only`.
fn tx1_count_steps(location: LocId, only: bool) -> u16 {
    match (location, only) {
        (A, true) => steps(0, 0),
        (A, false) => steps(1, 9),
        (B, true) => steps(0, 2) | steps(9, 9),
        (B, false) => steps(3, 8),
        _ => unreachable!("tx 1 writes A and B"),
    }
}

/// tx 0's steps: 0 start; 1 C credited (not counted); 2 C counted; 3 C = plain account.
fn tx0_steps(result: &ReadResult) -> u16 {
    match result {
        ReadResult::Base => steps(0, 0),
        ReadResult::Credited {
            start: None,
            credits,
        } if credits.as_slice() == [(0, U256::from(5))] => steps(1, 2),
        ReadResult::Written {
            version: Version {
                tx: 0,
                incarnation: 1,
            },
            value: WriteValue::Account(value),
        } if *value == account() => steps(3, 3),
        other => panic!("tx 2 read {other:?} at C"),
    }
}

/// tx 0's steps at which `only_credits(C)` answers `only`.
fn tx0_count_steps(only: bool) -> u16 {
    if only { steps(0, 1) } else { steps(2, 3) }
}

/// Observations of one writer's progress, in the reader's program order.
#[derive(Default)]
struct Observations(Vec<(String, u16)>);

impl Observations {
    fn push(&mut self, what: String, steps: u16) {
        self.0.push((what, steps));
    }

    /// Panics unless one non-decreasing sequence of steps explains every observation.
    fn assert_linearizable(&self, writer: &str) {
        let mut at = 0u32;
        for (_, steps) in &self.0 {
            let later = steps & !((1u16 << at) - 1);
            assert!(
                later != 0,
                "not linearizable: {writer}'s steps cannot explain {:?}",
                self.0.iter().map(|(what, _)| what).collect::<Vec<_>>()
            );
            at = later.trailing_zeros();
        }
    }
}

/// tx 2: reads A, B, A, each followed by `only_credits` and a read of C; returns the
/// observations of tx 1 and of tx 0.
fn reader(memory: &MvMemory) -> (Observations, Observations) {
    let mut tx1 = Observations::default();
    let mut tx0 = Observations::default();
    for location in [A, B, A] {
        let result = memory.read(location, READER);
        tx1.push(
            format!("read {location:?}: {result:?}"),
            tx1_steps(location, &result),
        );
        let only = memory.only_credits(location);
        tx1.push(
            format!("only_credits {location:?}: {only}"),
            tx1_count_steps(location, only),
        );
        let result = memory.read(C, READER);
        tx0.push(format!("read C: {result:?}"), tx0_steps(&result));
        let only = memory.only_credits(C);
        tx0.push(format!("only_credits C: {only}"), tx0_count_steps(only));
    }
    (tx1, tx0)
}

/// Where the writers' entries live: each location's first writer keeps its entry in the cell
/// (every entry of this model, one writer per location), or every entry goes to the skip list.
#[derive(Clone, Copy)]
enum Entries {
    Solo,
    SkipList,
}

/// One execution: the two writers and the reader, then the final state.
fn run_once(mutation: CellMutation, entries: Entries) {
    let memory = MvMemory::with_mutation(3, 3, true, mutation);
    let memory = Arc::new(match entries {
        Entries::Solo => memory,
        Entries::SkipList => memory.without_solo_entries(),
    });
    let spawn = |body: Box<dyn FnOnce() + Send>| {
        loom::thread::Builder::new()
            .stack_size(STACK_WORDS)
            .spawn(body)
            .expect("spawn a model thread")
    };
    let tx1 = {
        let memory = Arc::clone(&memory);
        spawn(Box::new(move || {
            assert!(memory.record(1, 0, vec![(A, storage(10)), (B, storage(20))]));
            memory.mark_estimates(1, 0);
            assert!(!memory.record(1, 1, vec![(A, storage(11))]));
        }))
    };
    let tx0 = {
        let memory = Arc::clone(&memory);
        spawn(Box::new(move || {
            assert!(memory.record(0, 0, vec![(C, WriteValue::Credit(U256::from(5)))]));
            assert!(!memory.record(0, 1, vec![(C, WriteValue::Account(account()))]));
        }))
    };
    let observations = Arc::new(std::sync::Mutex::new(None));
    let reading = {
        let memory = Arc::clone(&memory);
        let observations = Arc::clone(&observations);
        spawn(Box::new(move || {
            let seen = reader(&memory);
            *observations.lock().expect("one reader") = Some(seen);
        }))
    };
    for thread in [tx1, tx0, reading] {
        thread.join().expect("a model thread panicked");
    }
    let (tx1_seen, tx0_seen) = observations
        .lock()
        .expect("one reader")
        .take()
        .expect("the reader finished");
    tx1_seen.assert_linearizable("tx 1");
    tx0_seen.assert_linearizable("tx 0");
    // The end state: the re-execution's value at A, a tombstone (uncounted) at B, tx 0's
    // plain account at C.
    assert!(written(1, 1, 11)(&memory.read(A, READER)));
    assert!(matches!(memory.read(B, READER), ReadResult::Base));
    assert!(memory.is_written(B) && memory.final_storage(B).is_none());
    assert_eq!(memory.final_storage(A), Some((1, U256::from(11))));
    assert!(!memory.only_credits(A));
    assert!(
        memory.only_credits(B),
        "the tombstone at B is still counted"
    );
    assert!(!memory.only_credits(C));
    assert_eq!(tx0_steps(&memory.read(C, READER)), steps(3, 3));
}

#[test]
fn loom_mv_memory_cell_write_read_estimate() {
    explore("mv_memory_cell_write_read_estimate", 0, || {
        run_once(CellMutation::None, Entries::Solo)
    });
}

/// The same protocol with every entry in the skip list (the entries of a location's second
/// and later writers).
#[test]
fn loom_mv_memory_cell_write_read_estimate_skip_list() {
    explore("mv_memory_cell_write_read_estimate_skip_list", 0, || {
        run_once(CellMutation::None, Entries::SkipList)
    });
}

/// The checker catches a cell that publishes a plain entry before counting it: a reader finds
/// the entry, then `only_credits` says there is none.
#[test]
#[should_panic(expected = "not linearizable")]
fn loom_mv_memory_mutation_publish_before_count_is_caught() {
    explore("mv_memory_mutation_publish_before_count", 0, || {
        run_once(CellMutation::PublishBeforeCount, Entries::Solo)
    });
}

/// The same mutation, caught in the skip list.
#[test]
#[should_panic(expected = "not linearizable")]
fn loom_mv_memory_mutation_publish_before_count_is_caught_in_the_skip_list() {
    explore(
        "mv_memory_mutation_publish_before_count_skip_list",
        0,
        || run_once(CellMutation::PublishBeforeCount, Entries::SkipList),
    );
}

/// The checker catches a cell that replaces an entry by removing and re-inserting it: a
/// reader that saw tx 1's value at A later falls through to the base value.
#[test]
#[should_panic(expected = "not linearizable")]
fn loom_mv_memory_mutation_remove_then_insert_is_caught() {
    explore("mv_memory_mutation_remove_then_insert", 0, || {
        run_once(CellMutation::RemoveThenInsert, Entries::Solo)
    });
}

/// The same mutation, caught in the skip list.
#[test]
#[should_panic(expected = "not linearizable")]
fn loom_mv_memory_mutation_remove_then_insert_is_caught_in_the_skip_list() {
    explore("mv_memory_mutation_remove_then_insert_skip_list", 0, || {
        run_once(CellMutation::RemoveThenInsert, Entries::SkipList)
    });
}

/// The base-value publication (`src/once_box.rs`, through `MvMemory::set_base`): two readers
/// race to cache A's pre-block value, each with its own copy, while B's is set once. Every
/// execution checks that both racers get the winner's value (the same allocation), that
/// `base` returns it afterwards, and that a location nobody set has no base.
#[test]
fn loom_mv_memory_base_value_race() {
    explore("mv_memory_base_value_race", 0, || {
        let memory = Arc::new(MvMemory::new(2, 3, true));
        let other = Arc::clone(&memory);
        let theirs = loom::thread::Builder::new()
            .stack_size(STACK_WORDS)
            .spawn(move || {
                let value = other.set_base(A, BaseValue::Storage(U256::from(1)));
                (value as *const BaseValue as usize, base_storage(value))
            })
            .expect("spawn a model thread");
        let mine = memory.set_base(A, BaseValue::Storage(U256::from(2)));
        let mine = (mine as *const BaseValue as usize, base_storage(mine));
        memory.set_base(B, BaseValue::Storage(U256::from(3)));
        let theirs = theirs.join().unwrap();
        assert_eq!(mine, theirs, "both racers use the winner's value");
        assert!(mine.1 == 1 || mine.1 == 2);
        let cached = memory.base(A).expect("set");
        assert_eq!(cached as *const BaseValue as usize, mine.0);
        assert_eq!(memory.base(B).map(base_storage), Some(3));
        assert!(memory.base(C).is_none());
    });
}

fn base_storage(value: &BaseValue) -> u64 {
    match value {
        BaseValue::Storage(value) => value.to::<u64>(),
        BaseValue::Account(_) => unreachable!("the model caches storage values"),
    }
}
