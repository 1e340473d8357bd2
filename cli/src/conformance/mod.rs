//! Conformance runners over the Ethereum test fixtures: state tests ([`statetest`]) and
//! blockchain tests ([`blocktest`]), each unit through the parallel engine and the
//! sequential reference, checked against the fixture's expected state root and logs.
//!
//! The runners report one [`CaseOutcome`] per unit and never stop at a bad fixture: a file
//! that does not parse is one failed case naming the path and the reason. What is not run is
//! listed, with its reason, in `skips` and counted as skipped.

pub mod blocktest;
mod skips;
pub mod statetest;
mod world;

use std::fmt;
use std::path::{Path, PathBuf};

use revm::primitives::{B256, Log, keccak256};

pub use world::{WorldAccount, WorldState};

use blockstm_evm::error::BlockError;
use blockstm_evm::output::BlockOutput;

/// The verdict on one test unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every check held.
    Passed,
    /// A check failed, or the fixture could not be read; the reason says which.
    Failed(String),
    /// Not run, for the reason given (see the skip list in `conformance::skips`).
    Skipped(&'static str),
}

/// One test unit's outcome: `name` locates it (file, test, fork, indices or block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseOutcome {
    /// Where the unit comes from, e.g. `path::test[Cancun][d0,g0,v0]`.
    pub name: String,
    /// What came of it.
    pub verdict: Verdict,
}

impl CaseOutcome {
    fn new(name: String, verdict: Verdict) -> Self {
        Self { name, verdict }
    }
}

/// Counts of a run; displays as `N passed, N failed, N skipped`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Units whose every check held.
    pub passed: usize,
    /// Units that failed a check or could not be read.
    pub failed: usize,
    /// Units not run (see the skip list).
    pub skipped: usize,
}

impl Summary {
    /// Counts one outcome.
    pub fn add(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed(_) => self.failed += 1,
            Verdict::Skipped(_) => self.skipped += 1,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

/// The `.json` files at `paths` (files as given, folders searched recursively), sorted.
pub fn json_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_json_files(path, &mut files)?;
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ));
        }
    }
    files.sort();
    Ok(files)
}

fn collect_json_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_json_files(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        }
    }
    Ok(())
}

/// The fixtures' logs hash: `keccak256` of the RLP list of the logs.
pub fn logs_hash(logs: &[Log]) -> B256 {
    let mut encoded = Vec::new();
    alloy_rlp::encode_list(logs, &mut encoded);
    keccak256(&encoded)
}

/// Where the parallel result differs from the sequential one, if it does.
pub fn parallel_difference(
    parallel: &Result<BlockOutput, BlockError>,
    sequential: &Result<BlockOutput, BlockError>,
) -> Option<String> {
    match (parallel, sequential) {
        (Ok(parallel), Ok(sequential)) if parallel == sequential => None,
        (Ok(parallel), Ok(sequential)) => Some(output_difference(parallel, sequential)),
        (Err(parallel), Err(sequential)) if parallel.to_string() == sequential.to_string() => None,
        (parallel, sequential) => Some(format!(
            "parallel gave {}, sequential {}",
            describe(parallel),
            describe(sequential)
        )),
    }
}

fn describe(result: &Result<BlockOutput, BlockError>) -> String {
    match result {
        Ok(output) => format!("an output ({} gas)", output.gas_used()),
        Err(error) => format!("error `{error}`"),
    }
}

fn output_difference(parallel: &BlockOutput, sequential: &BlockOutput) -> String {
    if let Some(index) = parallel
        .results
        .iter()
        .zip(&sequential.results)
        .position(|(a, b)| a != b)
    {
        return format!(
            "parallel and sequential differ at tx {index}: {:?} vs {:?}",
            parallel.results[index], sequential.results[index]
        );
    }
    for (address, change) in &sequential.state.accounts {
        if parallel.state.accounts.get(address) != Some(change) {
            return format!(
                "parallel and sequential state differ at {address}: {:?} vs {change:?}",
                parallel.state.accounts.get(address)
            );
        }
    }
    "parallel and sequential outputs differ (an account only parallel changed, or code)".to_owned()
}
