//! `blockstm bench --memory`: peak resident memory of each engine on the same block, each
//! measured in a child process of its own (a process's peak cannot be reset).

use std::process::{Command, ExitCode};

use blockstm_cli::workloads::WorkloadSpec;
use blockstm_evm::{Executor, Options, execute_sequential};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::bench::BenchError;

/// Which engine a memory probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Sequential,
    Parallel,
}

/// What one probe process reports, in MiB.
#[derive(Debug, Serialize, Deserialize)]
struct Probe {
    /// Resident after generating the block (pre-state, transactions, the binary).
    base_rss_mib: f64,
    /// Resident after starting the worker pool (parallel only; equal to the base otherwise).
    pool_rss_mib: f64,
    /// Peak resident over the whole process, the block's execution included.
    peak_rss_mib: f64,
}

/// One row of `--memory` (`--json` prints it as is).
#[derive(Debug, Serialize)]
struct MemoryRow {
    workload: String,
    txs: usize,
    threads: usize,
    /// Resident before either engine ran: the generated block and its pre-state.
    base_rss_mib: f64,
    /// What starting the worker pool added (threads' stacks, per-worker buffers).
    pool_mib: f64,
    seq_peak_rss_mib: f64,
    par_peak_rss_mib: f64,
    /// Peak minus base: what executing the block needed.
    seq_extra_mib: f64,
    par_extra_mib: f64,
    /// Whether the parallel path needed at most twice the sequential path's memory plus the
    /// pool's fixed size.
    within_bound: bool,
}

/// The child's side: runs `engine` once on the single workload of `specs` and prints a
/// [`Probe`] as one JSON line.
pub fn probe(
    specs: &[WorkloadSpec],
    threads: usize,
    engine: Engine,
) -> Result<ExitCode, BenchError> {
    let [spec] = specs else {
        return Err(BenchError::Memory(
            "a probe runs exactly one workload".into(),
        ));
    };
    let workload = spec.generate()?;
    let base = resident_mib("VmRSS")?;
    let execution_error = |source| BenchError::Execution {
        workload: spec.kind,
        source,
    };
    let pool = match engine {
        Engine::Sequential => {
            execute_sequential(&workload.storage, &workload.block).map_err(execution_error)?;
            base
        }
        Engine::Parallel => {
            let executor = Executor::global();
            executor.pool_run_empty(threads.min(executor.workers()));
            let pool = resident_mib("VmRSS")?;
            let (_, stats) = executor
                .execute_with_stats(
                    &workload.storage,
                    &workload.block,
                    &Options::with_concurrency(threads),
                )
                .map_err(execution_error)?;
            if stats.sequential {
                return Err(BenchError::Memory(format!(
                    "{}: the block ran on the sequential path; use a larger --txs",
                    spec.kind
                )));
            }
            pool
        }
    };
    let probe = Probe {
        base_rss_mib: base,
        pool_rss_mib: pool,
        peak_rss_mib: resident_mib("VmHWM")?,
    };
    println!(
        "{}",
        serde_json::to_string(&probe).expect("probes serialize")
    );
    Ok(ExitCode::SUCCESS)
}

/// The parent's side: one child process per engine and workload, then a row per workload.
pub fn measure(specs: &[WorkloadSpec], threads: usize, json: bool) -> Result<ExitCode, BenchError> {
    if !json {
        println!(
            "{:<8} {:>7} {:>7} {:>9} {:>8} {:>12} {:>12} {:>10} {:>10} {:>6}",
            "workload",
            "txs",
            "threads",
            "base MiB",
            "pool MiB",
            "seq peak MiB",
            "par peak MiB",
            "seq extra",
            "par extra",
            "bound"
        );
    }
    let mut all_within = true;
    for spec in specs {
        let sequential = run_probe(spec, threads, Engine::Sequential)?;
        let parallel = run_probe(spec, threads, Engine::Parallel)?;
        let seq_extra = sequential.peak_rss_mib - sequential.base_rss_mib;
        let par_extra = parallel.peak_rss_mib - parallel.base_rss_mib;
        let pool = parallel.pool_rss_mib - parallel.base_rss_mib;
        let row = MemoryRow {
            workload: spec.kind.to_string(),
            txs: spec.txs,
            threads,
            base_rss_mib: sequential.base_rss_mib,
            pool_mib: pool,
            seq_peak_rss_mib: sequential.peak_rss_mib,
            par_peak_rss_mib: parallel.peak_rss_mib,
            seq_extra_mib: seq_extra,
            par_extra_mib: par_extra,
            within_bound: par_extra <= 2.0 * seq_extra + pool,
        };
        all_within &= row.within_bound;
        if json {
            println!("{}", serde_json::to_string(&row).expect("rows serialize"));
        } else {
            println!(
                "{:<8} {:>7} {:>7} {:>9.1} {:>8.1} {:>12.1} {:>12.1} {:>10.1} {:>10.1} {:>6}",
                row.workload,
                row.txs,
                row.threads,
                row.base_rss_mib,
                row.pool_mib,
                row.seq_peak_rss_mib,
                row.par_peak_rss_mib,
                row.seq_extra_mib,
                row.par_extra_mib,
                if row.within_bound { "yes" } else { "NO" },
            );
        }
    }
    if !all_within {
        eprintln!(
            "note: the parallel path needed more than twice the sequential path's memory plus the pool"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs this binary as a probe of `engine` on `spec` and reads its report.
fn run_probe(spec: &WorkloadSpec, threads: usize, engine: Engine) -> Result<Probe, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Memory(format!("cannot find this executable: {e}")))?;
    let engine_name = engine
        .to_possible_value()
        .expect("engines have names")
        .get_name()
        .to_owned();
    let output = Command::new(exe)
        .args(["bench", "--workload", spec.kind.name()])
        .args(["--txs", &spec.txs.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--seed", &spec.seed.to_string()])
        .args(["--hot", &spec.hot.to_string()])
        .args(["--memory-probe", &engine_name])
        .output()
        .map_err(|e| BenchError::Memory(format!("cannot start a probe process: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::Memory(format!(
            "the {engine_name} probe of {} failed ({}): {}",
            spec.kind,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .map_err(|e| BenchError::Memory(format!("unreadable probe report {line:?}: {e}")))
}

/// A `Vm*` figure of `/proc/self/status` (`VmRSS`: resident now, `VmHWM`: peak), in MiB.
fn resident_mib(field: &str) -> Result<f64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| BenchError::Memory(format!("needs Linux's /proc/self/status: {e}")))?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            let kib: f64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
            Some(kib / 1024.0)
        })
        .ok_or_else(|| BenchError::Memory(format!("no {field} in /proc/self/status")))
}
