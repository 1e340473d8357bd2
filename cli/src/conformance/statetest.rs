//! State tests (`GeneralStateTests`, execution-spec-tests `state_tests`): every (test, fork,
//! indices) unit runs as a one-transaction block through the parallel engine and the
//! sequential reference; both must agree, and the result must match the fixture's post-state
//! root, logs hash, expected output and expected exception.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use revm::context::CfgEnv;
use revm::primitives::hardfork::SpecId;
use revm_statetest_types::{SpecName, Test, TestSuite, TestUnit};

use super::skips::{skipped_file, skipped_fork};
use super::{CaseOutcome, Verdict, WorldState, logs_hash, parallel_difference};
use blockstm_evm::block::Block;
use blockstm_evm::sequential::execute_sequential;
use blockstm_evm::{Options, execute};

/// How to run state tests.
#[derive(Clone, Debug)]
pub struct StateTestOptions {
    /// Workers of the parallel engine (the engine runs even for these one-transaction blocks).
    pub threads: usize,
}

impl Default for StateTestOptions {
    fn default() -> Self {
        Self { threads: 2 }
    }
}

/// Runs every unit of the state-test file at `path`; a file that cannot be read or parsed is
/// one failed outcome, a skipped file one skipped outcome.
pub fn run_file(path: &Path, options: &StateTestOptions) -> Vec<CaseOutcome> {
    let file = path.display().to_string();
    let parsed: Result<TestSuite, String> = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()));
    if let Some(reason) = skipped_file(path) {
        // Count the units a skipped file holds, where it parses, so skips are not undercounted.
        let Ok(suite) = parsed else {
            return vec![CaseOutcome::new(file, Verdict::Skipped(reason))];
        };
        let mut outcomes = Vec::new();
        for (name, unit) in &suite.0 {
            for (fork, tests) in &unit.post {
                for test in tests {
                    let case = case_name(&file, name, fork, test);
                    outcomes.push(CaseOutcome::new(case, Verdict::Skipped(reason)));
                }
            }
        }
        return outcomes;
    }
    let suite = match parsed {
        Ok(suite) => suite,
        Err(reason) => {
            return vec![CaseOutcome::new(
                file,
                Verdict::Failed(format!("cannot read the state test: {reason}")),
            )];
        }
    };
    let mut outcomes = Vec::new();
    for (name, unit) in &suite.0 {
        run_unit(&file, name, unit, options, &mut outcomes);
    }
    outcomes
}

fn case_name(file: &str, name: &str, fork: &SpecName, test: &Test) -> String {
    format!(
        "{file}::{name}[{fork:?}][d{},g{},v{}]",
        test.indexes.data, test.indexes.gas, test.indexes.value
    )
}

fn run_unit(
    file: &str,
    name: &str,
    unit: &TestUnit,
    options: &StateTestOptions,
    out: &mut Vec<CaseOutcome>,
) {
    let mut pre = WorldState::new();
    for (address, account) in &unit.pre {
        pre.insert_account(
            *address,
            account.balance,
            account.nonce,
            &account.code,
            account.storage.iter().map(|(slot, value)| (*slot, *value)),
        );
    }
    let storage = pre.to_storage();
    for (spec_name, tests) in &unit.post {
        let fork = format!("{spec_name:?}");
        for test in tests {
            let case = case_name(file, name, spec_name, test);
            let verdict = match skipped_fork(&fork) {
                Some(reason) => Verdict::Skipped(reason),
                None => catch_unwind(AssertUnwindSafe(|| {
                    run_case(unit, spec_name, test, &pre, &storage, options)
                }))
                .unwrap_or_else(|panic| {
                    Verdict::Failed(format!("panicked: {}", panic_message(&panic)))
                }),
            };
            out.push(CaseOutcome::new(case, verdict));
        }
    }
}

fn run_case(
    unit: &TestUnit,
    spec_name: &SpecName,
    test: &Test,
    pre: &WorldState,
    storage: &blockstm_evm::storage::InMemoryStorage,
    options: &StateTestOptions,
) -> Verdict {
    let spec = spec_name.to_spec_id();
    let tx = match test.tx_env(unit) {
        Ok(tx) => tx,
        Err(error) if test.expect_exception.is_some() => {
            // The fixture describes a transaction that cannot even be formed (no valid
            // signature, unknown type): rejecting it is the expected outcome.
            let _ = error;
            return Verdict::Passed;
        }
        Err(error) => return Verdict::Failed(format!("cannot build the transaction: {error}")),
    };
    let mut cfg = CfgEnv::new_with_spec(spec);
    cfg.chain_id = unit
        .env
        .current_chain_id
        .map_or(1, |id| id.try_into().unwrap_or(u64::MAX));
    // The blob limits the fixtures are written for (revm's runner sets the same).
    cfg.set_max_blobs_per_tx(
        if spec.is_enabled_in(SpecId::PRAGUE) && !spec.is_enabled_in(SpecId::OSAKA) {
            9
        } else {
            6
        },
    );
    let env = unit.block_env(&mut cfg);
    let block = Block {
        env,
        cfg,
        txs: vec![tx],
    };
    let parallel_options = Options {
        sequential_below: Some(0),
        ..Options::with_concurrency(options.threads)
    };
    let parallel = execute(storage, &block, &parallel_options);
    let sequential = execute_sequential(storage, &block);
    if let Some(difference) = parallel_difference(&parallel, &sequential) {
        return Verdict::Failed(difference);
    }
    match (&test.expect_exception, parallel) {
        (Some(_), Err(_)) => Verdict::Passed,
        (Some(expected), Ok(_)) => Verdict::Failed(format!(
            "expected exception {expected}, but the transaction was accepted"
        )),
        (None, Err(error)) => Verdict::Failed(format!("unexpected error: {error}")),
        (None, Ok(output)) => {
            let result = &output.results[0].result;
            if let (Some(expected), Some(got)) = (&unit.out, result.output())
                && expected != got
            {
                return Verdict::Failed(format!("output {got} differs from expected {expected}"));
            }
            let logs = logs_hash(result.logs());
            if logs != test.logs {
                return Verdict::Failed(format!(
                    "logs hash {logs} differs from expected {}",
                    test.logs
                ));
            }
            let mut post = pre.clone();
            post.apply(&output.state);
            let root = post.state_root();
            if root == test.hash {
                Verdict::Passed
            } else {
                Verdict::Failed(format!(
                    "state root {root} differs from expected {}",
                    test.hash
                ))
            }
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-text panic)".to_owned())
}
