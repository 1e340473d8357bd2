//! `--stats`: the engine's statistics of one parallel run, as `bench` and `replay` report
//! them (a JSON object under `stats`, or an indented line under the row).

use std::time::Duration;

use blockstm_evm::ExecutionStats;
use serde::Serialize;

/// The engine's statistics of one run (`--stats`), times in milliseconds.
#[derive(Debug, Serialize)]
pub struct StatsRow {
    sequential: bool,
    contained: bool,
    critical_path: usize,
    workers: usize,
    incarnations: u64,
    suspensions: u64,
    planned_waits: u64,
    validations: u64,
    aborts: u64,
    planning_ms: f64,
    setup_ms: f64,
    execution_ms: f64,
    results_ms: f64,
    assembly_ms: f64,
    teardown_ms: f64,
    teardown_deferred: bool,
    /// Transactions each worker committed.
    commits_per_worker: Vec<u64>,
    first_commit_ms: f64,
    commit_lag_ms: f64,
    serial_ms: f64,
}

impl StatsRow {
    /// The row of `stats`.
    pub fn new(stats: &ExecutionStats) -> Self {
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        Self {
            sequential: stats.sequential,
            contained: stats.contained,
            critical_path: stats.critical_path,
            workers: stats.workers,
            incarnations: stats.incarnations,
            suspensions: stats.suspensions,
            planned_waits: stats.planned_waits,
            validations: stats.validations,
            aborts: stats.aborts,
            planning_ms: ms(stats.planning),
            setup_ms: ms(stats.setup),
            execution_ms: ms(stats.execution),
            results_ms: ms(stats.results),
            assembly_ms: ms(stats.assembly),
            teardown_ms: ms(stats.teardown),
            teardown_deferred: stats.teardown_deferred,
            commits_per_worker: stats.commits_per_worker.clone(),
            first_commit_ms: ms(stats.first_commit),
            commit_lag_ms: ms(stats.commit_lag),
            serial_ms: ms(stats.serial),
        }
    }

    /// Prints the row as the line under a table row.
    pub fn print(&self) {
        println!(
            "         stats: {} incarnations, {} suspensions ({} planned), {} validations, \
             {} aborts, critical path {}; planning {:.2} ms, set-up {:.2} ms, execution {:.2} ms, results {:.2} \
             ms, assembly {:.2} ms, teardown {:.2} ms{}; serial {:.2} ms, first commit at {:.2} ms, \
             commit lag {:.3} ms, commits per worker {:?}",
            self.incarnations,
            self.suspensions,
            self.planned_waits,
            self.validations,
            self.aborts,
            self.critical_path,
            self.planning_ms,
            self.setup_ms,
            self.execution_ms,
            self.results_ms,
            self.assembly_ms,
            self.teardown_ms,
            if self.teardown_deferred {
                " (deferred)"
            } else if self.contained {
                " (contained: sequential path)"
            } else if self.sequential {
                " (sequential path)"
            } else {
                ""
            },
            self.serial_ms,
            self.first_commit_ms,
            self.commit_lag_ms,
            self.commits_per_worker,
        );
    }
}
