//! The Block-STM scheduler (`src/scheduler.rs`), model-checked with loom.
//!
//! Worker threads run the loop of `parallel::Run::work_loop` over the real [`Scheduler`] and
//! the real [`MvMemory`]; only the transactions are scripts: each reads a few storage
//! locations, then writes values computed from what it read (so a re-execution can write
//! other locations than the incarnation before it, or fewer). Reading an ESTIMATE suspends
//! the transaction with `add_dependency` (or re-executes it at once when refused);
//! validation re-reads through `MvMemory::validate` and aborts with `try_validation_abort` +
//! `mark_estimates`, exactly as `parallel.rs` does. Conflicts come from the interleaving
//! (a transaction that read before a lower one wrote) and, to leave the preemption budget to
//! the races around them, from scripted stale first incarnations ([`TxScript::stale_first`]).
//!
//! Every explored execution checks:
//! - an execution task is handed out at most once per incarnation, and no task at all once
//!   a worker saw the block done;
//! - when the first worker sees `done`, every transaction's latest incarnation has executed
//!   and passed a validation, and every suspended incarnation was woken (its successor was
//!   handed out);
//! - every worker returns: a deadlock is reported by loom, and a state where the block is not
//!   done but no worker holds a task and the scheduler hands out nothing fails (see
//!   [`Run::idle`]);
//! - between tasks, workers advance the commit frontier as `parallel::Run::advance_frontier`
//!   does (the commit lock, the committer's validation, the look again after release):
//!   transactions commit in block order, each exactly once, and no incarnation of a committed
//!   transaction is handed out afterwards;
//! - afterwards, each transaction is `Committed` at that incarnation and read exactly what
//!   the sequential run reads, the committed writes folded in commit order give the
//!   sequential final state, and so does the memory, with no ESTIMATE left anywhere.
//!
//! Each model also asserts, over all its executions, that the paths it is meant to cover
//! (suspension, refused dependency, abort, re-execution with and without new writes, ...)
//! were taken, so that a script change cannot silently turn a test into a trivial one. The
//! `mutation` tests switch on a deliberate protocol error in the scheduler
//! (`scheduler::Mutation`) and expect the checker to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use revm::primitives::U256;

use super::{STACK_WORDS, explore};
use crate::mv_memory::{MvMemory, Read, ReadOrigin, ReadResult, WriteValue};
use crate::scheduler::{Mutation, Scheduler, Status, Task};
use crate::sync::{Mutex, lock};
use crate::types::{Incarnation, LocId, TxIdx, Version};

/// A storage location of the model (an index into `MvMemory`'s cells).
type Loc = u32;

/// Named locations, for readable scripts.
const X: Loc = 0;
const Y: Loc = 1;
const Z: Loc = 2;
const W: Loc = 3;
const V: Loc = 4;
/// Locations a model may use.
const LOCATIONS: usize = 5;

/// The pre-block value of `location`.
fn base(location: Loc) -> u64 {
    100 + u64::from(location)
}

/// A scripted transaction: the locations it reads, in order, and what it writes, as a
/// function of the values it read.
#[derive(Clone, Copy)]
struct TxScript {
    reads: &'static [Loc],
    writes: fn(&[u64]) -> Vec<(Loc, u64)>,
    /// Its first incarnation is stale, whatever the interleaving: it computes its writes from
    /// the pre-block values of its reads and fails its validation (as if it had read before
    /// a lower transaction that the script does not model wrote). Scripted aborts leave the
    /// preemption budget to the races around them.
    stale_first: bool,
    /// The earlier transaction the block's plan names as its predecessor: its first
    /// incarnation waits for that one with `add_dependency` before running, as
    /// `Run::execute` (`src/parallel/worker.rs`) does.
    waits_for: Option<TxIdx>,
}

/// Paths through the scheduler a model should take in at least one execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    /// `add_dependency` suspended a transaction on an ESTIMATE.
    Suspended,
    /// `add_dependency` refused: the blocker finished between the read and the call.
    DependencyRefused,
    /// A validation failed and aborted its incarnation.
    ValidationAbort,
    /// A re-execution wrote a location its previous incarnation had not.
    ReexecutionWroteNew,
    /// A re-execution wrote nothing new, and `finish_execution` handed back its validation.
    ValidationOnly,
    /// `finish_validation` handed the aborted transaction's re-execution to the validator.
    ValidatorReexecutes,
    /// A first incarnation waited for its planned predecessor.
    PlannedWait,
    /// A first incarnation ran at once: its planned predecessor had already finished.
    PlannedWaitRefused,
    /// The committer's validation of the frontier's transaction failed (a stale incarnation
    /// at the frontier), and it left it to the validation stream.
    CommitRefused,
    /// A worker found the commit lock held and went on.
    CommitLockBusy,
}

const EVENTS: usize = 10;

/// How often each [`Event`] happened, over all executions of one model.
#[derive(Default)]
struct Coverage([AtomicUsize; EVENTS]);

impl Coverage {
    fn record(&self, event: Event) {
        self.0[event as usize].fetch_add(1, Relaxed);
    }

    fn count(&self, event: Event) -> usize {
        self.0[event as usize].load(Relaxed)
    }
}

/// What the workers did, seen in the order loom ran them (a std mutex: invisible to loom,
/// never held across a loom operation).
#[derive(Default)]
struct Ghost {
    /// Execution tasks handed out by the scheduler.
    handed_out: BTreeSet<(TxIdx, Incarnation)>,
    /// Incarnations that finished executing (recorded before `finish_execution`).
    executed: BTreeSet<(TxIdx, Incarnation)>,
    /// Incarnations that passed a validation (recorded before `finish_validation`).
    validated: BTreeSet<(TxIdx, Incarnation)>,
    /// Incarnations suspended by `add_dependency`.
    suspended: Vec<Version>,
    /// Committed incarnations, in commit order.
    committed: Vec<Version>,
    /// The committed writes folded in commit order: per location, its last writer and value.
    folded: BTreeMap<Loc, (TxIdx, u64)>,
    /// Whether some worker saw the block done.
    done_seen: bool,
}

impl Ghost {
    /// The latest incarnation of `tx` handed out, if any.
    fn latest(&self, tx: TxIdx) -> Option<Incarnation> {
        self.handed_out
            .range((tx, 0)..=(tx, Incarnation::MAX))
            .next_back()
            .map(|(_, incarnation)| *incarnation)
    }

    /// Panics unless every transaction's latest incarnation executed and validated, and every
    /// suspended incarnation was succeeded by a new one.
    fn assert_complete(&self, txs: usize) {
        for tx in 0..txs as TxIdx {
            let latest = self
                .latest(tx)
                .unwrap_or_else(|| panic!("tx {tx} never handed out for execution"));
            assert!(
                self.executed.contains(&(tx, latest)),
                "tx {tx}: incarnation {latest} never finished executing (lost wake-up?)"
            );
            assert!(
                self.validated.contains(&(tx, latest)),
                "tx {tx}: incarnation {latest} never passed a validation"
            );
        }
        for version in &self.suspended {
            assert!(
                self.handed_out
                    .contains(&(version.tx, version.incarnation + 1)),
                "lost wake-up: {version:?} suspended and never re-executed"
            );
        }
    }
}

/// The last finished incarnation of one transaction, as the executor keeps it.
#[derive(Default)]
struct Slot {
    incarnation: Incarnation,
    reads: Vec<Read<'static>>,
    values: Vec<u64>,
    writes: Vec<(Loc, u64)>,
}

/// One worker's idle state (see [`Run::idle`]).
#[derive(Default)]
struct Idle {
    /// Empty answers from `next_task` in a row.
    empty_answers: usize,
    /// The event count this worker last slept on.
    seen: u64,
}

/// Finished tasks and sleeping workers: what an idle model worker waits on.
struct Events {
    /// Bumped by [`Run::event`].
    count: u64,
    /// Workers asleep since the last event.
    sleeping: usize,
    /// Workers that did not exit yet.
    alive: usize,
}

/// What the workers of one execution share.
struct Run {
    txs: &'static [TxScript],
    scheduler: Scheduler,
    memory: MvMemory,
    slots: Vec<Mutex<Slot>>,
    ghost: std::sync::Mutex<Ghost>,
    coverage: Arc<Coverage>,
    events: Mutex<Events>,
    wake: loom::sync::Condvar,
}

impl Run {
    fn ghost(&self) -> std::sync::MutexGuard<'_, Ghost> {
        self.ghost.lock().expect("a ghost update panicked")
    }

    /// The worker loop of `parallel::Run::work_loop`, with the idle spin replaced by
    /// [`Run::idle`].
    fn work(&self) {
        let mut task = None;
        let mut idle = Idle::default();
        loop {
            task = match task.take() {
                Some(Task::Execute(version)) => {
                    let next = self.execute(version);
                    self.event(false);
                    next
                }
                Some(Task::Validate(version)) => {
                    let next = self.validate(version);
                    self.event(false);
                    next
                }
                None => {
                    self.advance_frontier();
                    if self.scheduler.done() {
                        self.saw_done();
                        if self.scheduler.all_committed() {
                            break;
                        }
                        self.idle(&mut idle);
                        continue;
                    }
                    let next = self.scheduler.next_task();
                    match next {
                        Some(task) => {
                            self.handed_out(task);
                            idle.empty_answers = 0;
                        }
                        None => self.idle(&mut idle),
                    }
                    next
                }
            };
        }
        self.event(true);
    }

    /// The first worker to see the block done checks it is: every latest incarnation
    /// executed and passed a validation (the stream's, or the committer's for a committed
    /// transaction), and no suspension was lost. Commits may still be under way.
    fn saw_done(&self) {
        let mut ghost = self.ghost();
        if !ghost.done_seen {
            ghost.done_seen = true;
            ghost.assert_complete(self.txs.len());
        }
    }

    /// After an empty answer from `next_task`. A real worker spins; under loom a spinning
    /// thread multiplies the executions to explore (every spin's loads interleave with the
    /// busy workers' stores, and loom's yield heuristics let two spinners run each other for
    /// thousands of steps), so a model worker asks again at once only while its own
    /// questions can still change the scheduler's state (each empty answer either moves an
    /// index forward, at most `2 * block size` times, or only checks for done), then sleeps
    /// until another worker is about to call, or has returned from, a scheduler function
    /// that can create work or finish the block ([`Run::event`]). While a busy worker is
    /// preempted inside such a call, the idle ones are awake and race it, as spinning ones
    /// would. When every other worker sleeps too, nothing can change any more, and the
    /// block not being done is a liveness bug.
    fn idle(&self, idle: &mut Idle) {
        idle.empty_answers += 1;
        if idle.empty_answers <= 2 * self.txs.len() + 2 {
            return;
        }
        idle.empty_answers = 0;
        // The real guard (not `sync::lock`'s): the condition variable takes it.
        let mut events = self.events.lock().expect("a worker panicked");
        let mut counted = false;
        while events.count == idle.seen {
            if !counted {
                assert!(
                    events.sleeping + 1 < events.alive,
                    "no progress: the block is not done, no task is in flight and the \
                     scheduler hands out nothing (a lost wake-up?)"
                );
                events.sleeping += 1;
                counted = true;
            }
            events = self.wake.wait(events).expect("a worker panicked");
        }
        idle.seen = events.count;
    }

    /// Wakes sleeping workers: this worker is about to call `finish_execution`,
    /// `finish_validation` or `add_dependency`, or finished a task, or (`exit`) saw the block
    /// done and returns.
    fn event(&self, exit: bool) {
        let mut events = lock(&self.events);
        events.count += 1;
        events.sleeping = 0;
        if exit {
            events.alive -= 1;
        }
        drop(events);
        self.wake.notify_all();
    }

    /// Records a task the scheduler handed out.
    fn handed_out(&self, task: Task) {
        let mut ghost = self.ghost();
        assert!(!ghost.done_seen, "{task:?} handed out after done");
        if let Task::Execute(version) = task {
            assert!(
                ghost.handed_out.insert((version.tx, version.incarnation)),
                "{version:?} handed out for execution twice"
            );
            assert!(
                ghost.committed.len() <= version.tx as usize,
                "{version:?} handed out after its transaction committed"
            );
        }
    }

    fn execute(&self, version: Version) -> Option<Task> {
        let script = self.txs[version.tx as usize];
        if version.incarnation == 0
            && let Some(predecessor) = script.waits_for
        {
            self.event(false);
            if self.scheduler.add_dependency(version.tx, predecessor) {
                self.coverage.record(Event::PlannedWait);
                self.ghost().suspended.push(version);
                return None;
            }
            self.coverage.record(Event::PlannedWaitRefused);
        }
        let mut reads = Vec::with_capacity(script.reads.len());
        let mut values = Vec::with_capacity(script.reads.len());
        for &location in script.reads {
            let (origin, value) = match self.memory.read(LocId(location), version.tx) {
                ReadResult::Base => (ReadOrigin::Base, base(location)),
                ReadResult::Written {
                    version,
                    value: WriteValue::Storage(value),
                } => (ReadOrigin::Version(version), value.to::<u64>()),
                ReadResult::Blocked(blocking) => {
                    self.event(false);
                    if self.scheduler.add_dependency(version.tx, blocking) {
                        self.coverage.record(Event::Suspended);
                        self.ghost().suspended.push(version);
                        return None;
                    }
                    self.coverage.record(Event::DependencyRefused);
                    return Some(Task::Execute(version));
                }
                other => panic!("a storage read found {other:?}"),
            };
            reads.push(Read {
                location: LocId(location),
                origin,
            });
            values.push(value);
        }
        let stale = script.stale_first && version.incarnation == 0;
        let inputs = if stale {
            script
                .reads
                .iter()
                .map(|location| base(*location))
                .collect()
        } else {
            values.clone()
        };
        let written = (script.writes)(&inputs);
        let writes = written
            .iter()
            .map(|&(location, value)| (LocId(location), WriteValue::Storage(U256::from(value))))
            .collect();
        let wrote_new = self.memory.record(version.tx, version.incarnation, writes);
        if version.incarnation > 0 && wrote_new {
            self.coverage.record(Event::ReexecutionWroteNew);
        }
        *lock(&self.slots[version.tx as usize]) = Slot {
            incarnation: version.incarnation,
            reads,
            values,
            writes: written,
        };
        self.ghost()
            .executed
            .insert((version.tx, version.incarnation));
        self.event(false);
        let next = self.scheduler.finish_execution(version, wrote_new);
        if let Some(task) = next {
            assert_eq!(
                task,
                Task::Validate(version),
                "finish_execution hands back only its own validation"
            );
            assert!(!wrote_new, "a validation handed back after new writes");
            self.coverage.record(Event::ValidationOnly);
        }
        next
    }

    /// `parallel::Run::advance_frontier`: commits the frontier's transactions while they
    /// are ready and pass the committer's validation, unless another worker holds the lock;
    /// looks again after releasing it.
    fn advance_frontier(&self) {
        let mut refused = None;
        while self
            .scheduler
            .frontier()
            .is_some_and(|candidate| Some(candidate) != refused)
        {
            let Some(commit_lock) = self.scheduler.try_commit_lock() else {
                self.coverage.record(Event::CommitLockBusy);
                return;
            };
            while let Some(candidate) = self.scheduler.frontier() {
                let slot = lock(&self.slots[candidate.tx as usize]);
                if slot.incarnation != candidate.incarnation {
                    refused = Some(candidate);
                    break;
                }
                let stale =
                    self.txs[candidate.tx as usize].stale_first && candidate.incarnation == 0;
                // Recorded before the commit: once the status says `Committed`, the stream
                // skips the transaction, and another worker may see the block done.
                let committed = commit_lock.commit(candidate, || {
                    let valid = self.memory.validate(candidate.tx, &slot.reads) && !stale;
                    if valid {
                        self.ghost()
                            .validated
                            .insert((candidate.tx, candidate.incarnation));
                    }
                    valid
                });
                if !committed {
                    self.coverage.record(Event::CommitRefused);
                    refused = Some(candidate);
                    break;
                }
                let mut ghost = self.ghost();
                assert!(
                    ghost
                        .validated
                        .contains(&(candidate.tx, candidate.incarnation)),
                    "{candidate:?} committed without passing a validation"
                );
                assert_eq!(
                    ghost.committed.len(),
                    candidate.tx as usize,
                    "{candidate:?} committed out of block order"
                );
                ghost.committed.push(candidate);
                for &(location, value) in &slot.writes {
                    ghost.folded.insert(location, (candidate.tx, value));
                }
            }
        }
    }

    fn validate(&self, version: Version) -> Option<Task> {
        let valid = {
            let slot = lock(&self.slots[version.tx as usize]);
            self.memory.validate(version.tx, &slot.reads)
        };
        let stale = self.txs[version.tx as usize].stale_first && version.incarnation == 0;
        let valid = valid && !stale;
        let aborted = !valid && self.scheduler.try_validation_abort(version);
        if aborted {
            self.coverage.record(Event::ValidationAbort);
            self.memory.mark_estimates(version.tx, version.incarnation);
        } else if valid {
            self.ghost()
                .validated
                .insert((version.tx, version.incarnation));
        }
        self.event(false);
        let next = self.scheduler.finish_validation(version, aborted);
        if let Some(task) = next {
            assert!(aborted, "{task:?} handed out after a passed validation");
            self.coverage.record(Event::ValidatorReexecutes);
            self.handed_out(task);
        }
        next
    }
}

/// What the block's sequential execution reads and leaves.
struct Sequential {
    /// The values each transaction reads.
    reads: Vec<Vec<u64>>,
    /// Per written location, its last writer and value.
    state: BTreeMap<Loc, (TxIdx, u64)>,
}

fn sequential(txs: &[TxScript]) -> Sequential {
    let mut state = BTreeMap::new();
    let mut reads = Vec::new();
    for (tx, script) in (0..).zip(txs) {
        let values: Vec<u64> = script
            .reads
            .iter()
            .map(|location| state.get(location).map_or(base(*location), |(_, v)| *v))
            .collect();
        for (location, value) in (script.writes)(&values) {
            state.insert(location, (tx, value));
        }
        reads.push(values);
    }
    Sequential { reads, state }
}

/// One model: a block of scripted transactions on `threads` workers.
struct Model {
    name: &'static str,
    txs: &'static [TxScript],
    threads: usize,
    /// Paths at least one execution must take.
    covers: &'static [Event],
    mutation: Mutation,
    /// Preemptions explored at least, whatever `LOOM_MAX_PREEMPTIONS` says.
    min_preemptions: usize,
}

impl Model {
    /// Explores every execution of the model (loom's bound) and checks them all; returns the
    /// number of executions explored.
    fn check(self) -> usize {
        let coverage = Arc::new(Coverage::default());
        let expected = Arc::new(sequential(self.txs));
        let Model {
            name,
            txs,
            threads,
            covers,
            mutation,
            min_preemptions,
        } = self;
        let model_coverage = Arc::clone(&coverage);
        let explored = explore(name, min_preemptions, move || {
            run_once(txs, threads, mutation, &model_coverage, &expected)
        });
        for event in covers {
            assert!(
                coverage.count(*event) > 0,
                "{name}: no execution took the path {event:?}"
            );
        }
        let counts: Vec<String> = [
            Event::Suspended,
            Event::DependencyRefused,
            Event::ValidationAbort,
            Event::ReexecutionWroteNew,
            Event::ValidationOnly,
            Event::ValidatorReexecutes,
            Event::PlannedWait,
            Event::PlannedWaitRefused,
            Event::CommitRefused,
            Event::CommitLockBusy,
        ]
        .iter()
        .map(|event| format!("{event:?} {}", coverage.count(*event)))
        .collect();
        println!("loom {name}: paths taken: {}", counts.join(", "));
        explored
    }
}

/// One execution of a model: the workers run the block, then everything is checked.
fn run_once(
    txs: &'static [TxScript],
    threads: usize,
    mutation: Mutation,
    coverage: &Arc<Coverage>,
    expected: &Sequential,
) {
    let run = Arc::new(Run {
        txs,
        scheduler: Scheduler::with_mutation(txs.len(), mutation),
        memory: MvMemory::new(txs.len(), LOCATIONS, true),
        slots: txs.iter().map(|_| Mutex::new(Slot::default())).collect(),
        ghost: std::sync::Mutex::new(Ghost::default()),
        coverage: Arc::clone(coverage),
        events: Mutex::new(Events {
            count: 0,
            sleeping: 0,
            alive: threads,
        }),
        wake: loom::sync::Condvar::new(),
    });
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let run = Arc::clone(&run);
            loom::thread::Builder::new()
                .stack_size(STACK_WORDS)
                .spawn(move || run.work())
                .expect("spawn a model thread")
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    assert!(run.scheduler.done(), "workers returned before done");
    let ghost = run.ghost();
    assert!(ghost.done_seen);
    ghost.assert_complete(txs.len());
    for tx in 0..txs.len() as TxIdx {
        let latest = ghost.latest(tx).expect("checked by assert_complete");
        assert_eq!(
            run.scheduler.status(tx),
            (latest, Status::Committed),
            "tx {tx} status"
        );
        assert_eq!(
            ghost.committed.get(tx as usize),
            Some(&Version {
                tx,
                incarnation: latest
            }),
            "tx {tx}: committed incarnation"
        );
        let slot = lock(&run.slots[tx as usize]);
        assert_eq!(slot.incarnation, latest, "tx {tx}: slot incarnation");
        assert_eq!(
            slot.values, expected.reads[tx as usize],
            "tx {tx} read other values than in the sequential run"
        );
    }
    assert_eq!(
        ghost.folded, expected.state,
        "the committed writes, folded in order, differ from the sequential final state"
    );
    for location in 0..LOCATIONS as Loc {
        let final_value = run.memory.final_storage(LocId(location));
        let sequential = expected
            .state
            .get(&location)
            .map(|(tx, value)| (*tx, U256::from(*value)));
        assert_eq!(
            final_value, sequential,
            "final value of location {location}"
        );
        let end = txs.len() as TxIdx;
        assert!(
            !matches!(
                run.memory.read(LocId(location), end),
                ReadResult::Blocked(_)
            ),
            "an ESTIMATE left at location {location}"
        );
    }
}

/// tx0 writes X; tx1 reads X and writes Y, and Z once it sees tx0's X; tx2 reads Y. tx1's
/// first incarnation is stale: its validation fails, its Y becomes an ESTIMATE that tx2 can
/// read (and suspend on, or find already replaced), and its re-execution writes the new
/// location Z. Unscripted, tx1 also fails when it runs before tx0's write.
static ESTIMATE_CHAIN: [TxScript; 3] = [
    TxScript {
        reads: &[],
        writes: |_| vec![(X, 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| {
            let mut writes = vec![(Y, read[0] + 1)];
            if read[0] != base(X) {
                writes.push((Z, read[0]));
            }
            writes
        },
        stale_first: true,
        waits_for: None,
    },
    TxScript {
        reads: &[Y],
        writes: |read| vec![(W, read[0] * 2)],
        stale_first: false,
        waits_for: None,
    },
];

/// tx1's re-execution writes the same location (Y) as its stale first incarnation: the
/// scheduler hands back its own validation only. tx2 reads both X and Y.
static SAME_WRITES: [TxScript; 3] = [
    TxScript {
        reads: &[],
        writes: |_| vec![(X, 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| vec![(Y, read[0] + 1)],
        stale_first: true,
        waits_for: None,
    },
    TxScript {
        reads: &[X, Y],
        writes: |read| vec![(Z, read[0] + read[1])],
        stale_first: false,
        waits_for: None,
    },
];

/// Four transactions: tx1 writes Y while it has not seen tx0's X (its stale first
/// incarnation) and Z after, dropping Y (a tombstone); tx2 reads Y, tx3 reads Z and W.
static DROPPED_WRITE: [TxScript; 4] = [
    TxScript {
        reads: &[],
        writes: |_| vec![(X, 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| {
            if read[0] == base(X) {
                vec![(Y, 7)]
            } else {
                vec![(Z, 8)]
            }
        },
        stale_first: true,
        waits_for: None,
    },
    TxScript {
        reads: &[Y],
        writes: |read| vec![(W, read[0])],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[Z, W],
        writes: |read| vec![(V, read[0] + read[1])],
        stale_first: false,
        waits_for: None,
    },
];

/// Three increments of one counter, no scripted abort: every conflict comes from the
/// interleaving.
static COUNTER: [TxScript; 3] = [
    TxScript {
        reads: &[X],
        writes: |read| vec![(X, read[0] + 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| vec![(X, read[0] + 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| vec![(X, read[0] + 1)],
        stale_first: false,
        waits_for: None,
    },
];

/// The last transaction's stale first incarnation writes one location, its re-execution
/// two: `finish_execution` pulls the validation index back to it.
static LAST_WRITES_NEW: [TxScript; 2] = [
    TxScript {
        reads: &[],
        writes: |_| vec![(X, 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| {
            let mut writes = vec![(Y, read[0] + 1)];
            if read[0] != base(X) {
                writes.push((Z, read[0]));
            }
            writes
        },
        stale_first: true,
        waits_for: None,
    },
];

/// A chain the plan sees: tx1 waits for tx0 and tx2 for tx1 before their first
/// incarnations run (or run at once when the predecessor already finished); tx2's hint is
/// also wrong in part (it reads X, which tx1 does not write), and tx1 reads past its hint.
static PLANNED_CHAIN: [TxScript; 3] = [
    TxScript {
        reads: &[],
        writes: |_| vec![(X, 1)],
        stale_first: false,
        waits_for: None,
    },
    TxScript {
        reads: &[X],
        writes: |read| vec![(Y, read[0] + 1)],
        stale_first: false,
        waits_for: Some(0),
    },
    TxScript {
        reads: &[X, Y],
        writes: |read| vec![(Z, read[0] + read[1])],
        stale_first: false,
        waits_for: Some(1),
    },
];

#[test]
fn loom_scheduler_planned_chain_two_threads() {
    Model {
        name: "scheduler_planned_chain_two_threads",
        txs: &PLANNED_CHAIN,
        threads: 2,
        covers: &[Event::PlannedWait, Event::PlannedWaitRefused],
        mutation: Mutation::None,
        min_preemptions: 0,
    }
    .check();
}

#[test]
fn loom_scheduler_estimate_chain_two_threads() {
    Model {
        name: "scheduler_estimate_chain_two_threads",
        txs: &ESTIMATE_CHAIN,
        threads: 2,
        covers: &[
            Event::Suspended,
            Event::DependencyRefused,
            Event::ValidationAbort,
            Event::ReexecutionWroteNew,
            Event::ValidationOnly,
            Event::ValidatorReexecutes,
            Event::CommitRefused,
            Event::CommitLockBusy,
        ],
        mutation: Mutation::None,
        min_preemptions: 0,
    }
    .check();
}

#[test]
fn loom_scheduler_same_writes_two_threads() {
    Model {
        name: "scheduler_same_writes_two_threads",
        txs: &SAME_WRITES,
        threads: 2,
        covers: &[
            Event::Suspended,
            Event::ValidationAbort,
            Event::ValidationOnly,
            Event::ValidatorReexecutes,
        ],
        mutation: Mutation::None,
        min_preemptions: 0,
    }
    .check();
}

#[test]
fn loom_scheduler_dropped_write_two_threads() {
    Model {
        name: "scheduler_dropped_write_two_threads",
        txs: &DROPPED_WRITE,
        threads: 2,
        covers: &[
            Event::Suspended,
            Event::ValidationAbort,
            Event::ReexecutionWroteNew,
        ],
        mutation: Mutation::None,
        min_preemptions: 0,
    }
    .check();
}

#[test]
fn loom_scheduler_counter_three_threads() {
    Model {
        name: "scheduler_counter_three_threads",
        txs: &COUNTER,
        threads: 3,
        covers: &[Event::Suspended, Event::ValidationAbort],
        mutation: Mutation::None,
        min_preemptions: 0,
    }
    .check();
}

/// The checker catches a lost wake-up: with the blocker check under the dependency lock
/// skipped, a transaction suspends on a blocker that already finished and is never re-run.
#[test]
#[should_panic(expected = "lost wake-up")]
fn loom_scheduler_mutation_suspend_on_finished_blocker_is_caught() {
    Model {
        name: "scheduler_mutation_suspend_on_finished_blocker",
        txs: &ESTIMATE_CHAIN,
        threads: 2,
        covers: &[],
        mutation: Mutation::SuspendOnFinishedBlocker,
        min_preemptions: 0,
    }
    .check();
}

/// The checker catches a premature done from a broken ordering: `finish_execution` releases
/// its task before pulling the validation index back, and another worker's done check fits
/// in between.
#[test]
#[should_panic(expected = "never passed a validation")]
fn loom_scheduler_mutation_release_before_decrease_is_caught() {
    Model {
        name: "scheduler_mutation_release_before_decrease",
        txs: &LAST_WRITES_NEW,
        threads: 2,
        covers: &[],
        mutation: Mutation::ReleaseBeforeDecrease,
        min_preemptions: 0,
    }
    .check();
}

/// The checker catches a premature done: a validation pull-back that `check_done` does not
/// see (no `decrease_cnt` bump) lets a worker that read the indices before it declare the
/// block done while the re-executed transaction awaits its validation. Needs three
/// preemptions, whatever the depth asked for.
#[test]
#[should_panic(expected = "never passed a validation")]
fn loom_scheduler_mutation_silent_validation_decrease_is_caught() {
    Model {
        name: "scheduler_mutation_silent_validation_decrease",
        txs: &LAST_WRITES_NEW,
        threads: 2,
        covers: &[],
        mutation: Mutation::SilentValidationDecrease,
        min_preemptions: 3,
    }
    .check();
}

/// The checker catches a commit that ignores the committer's validation: tx1's stale first
/// incarnation, at the frontier, commits although its validation fails.
#[test]
#[should_panic(expected = "committed without passing a validation")]
fn loom_scheduler_mutation_commit_ignores_validation_is_caught() {
    Model {
        name: "scheduler_mutation_commit_ignores_validation",
        txs: &SAME_WRITES,
        threads: 2,
        covers: &[],
        mutation: Mutation::CommitIgnoresValidation,
        min_preemptions: 0,
    }
    .check();
}
