//! The Ethereum fixtures in `../shared/ethtests` (or `BLOCKSTM_ETHTESTS_DIR`) through the
//! parallel engine and the sequential reference: every state test (GeneralStateTests and
//! execution-spec-tests' Prague state tests) and every valid-block blockchain test must pass,
//! except the skips listed in `conformance::skips`. Also: the runners catch a wrong expected
//! root, a wrong post state and a malformed file, and go on with the rest.

use std::path::{Path, PathBuf};

use blockstm_cli::conformance::{CaseOutcome, Summary, Verdict, blocktest, json_files, statetest};

fn ethtests_dir(suite: &str) -> Option<PathBuf> {
    let root = std::env::var_os("BLOCKSTM_ETHTESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/ethtests"));
    let dir = root.join(suite);
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIP {suite}: no fixtures at {} (set BLOCKSTM_ETHTESTS_DIR)",
            dir.display()
        );
        None
    }
}

/// Runs `run` over every file under `dir`; returns the summary and the failures.
fn run_suite(dir: &Path, run: impl Fn(&Path) -> Vec<CaseOutcome>) -> (Summary, Vec<String>) {
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    for file in json_files(&[dir.to_owned()]).unwrap() {
        for outcome in run(&file) {
            summary.add(&outcome.verdict);
            if let Verdict::Failed(reason) = outcome.verdict {
                failures.push(format!("{}: {reason}", outcome.name));
            }
        }
    }
    (summary, failures)
}

fn assert_suite_passes(suite: &str, summary: Summary, failures: &[String], min_passed: usize) {
    println!("{suite}: {summary}");
    assert!(
        failures.is_empty(),
        "{suite}: {summary}; first failures:\n{}",
        failures[..failures.len().min(20)].join("\n")
    );
    assert!(
        summary.passed >= min_passed,
        "{suite}: only {} units passed",
        summary.passed
    );
}

#[test]
fn general_state_tests_pass_in_parallel_and_sequentially() {
    let Some(dir) = ethtests_dir("GeneralStateTests") else {
        return;
    };
    let options = statetest::StateTestOptions { threads: 2 };
    let (summary, failures) = run_suite(&dir, |path| statetest::run_file(path, &options));
    assert_suite_passes("GeneralStateTests", summary, &failures, 20_000);
}

#[test]
fn prague_state_tests_pass_in_parallel_and_sequentially() {
    let Some(dir) = ethtests_dir("eest-prague/state_tests") else {
        return;
    };
    let options = statetest::StateTestOptions { threads: 4 };
    let (summary, failures) = run_suite(&dir, |path| statetest::run_file(path, &options));
    assert_suite_passes("eest-prague", summary, &failures, 2_000);
}

#[test]
fn valid_blockchain_tests_pass_at_every_concurrency() {
    let Some(dir) = ethtests_dir("BlockchainTests/ValidBlocks") else {
        return;
    };
    let options = blocktest::BlockTestOptions::default();
    let (summary, failures) = run_suite(&dir, |path| blocktest::run_file(path, &options));
    assert_suite_passes("ValidBlocks", summary, &failures, 400);
}

/// Rewrites a fixture with `edit` applied to its JSON and runs it from a temporary file.
fn run_edited(
    source: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
    run: impl Fn(&Path) -> Vec<CaseOutcome>,
) -> Vec<CaseOutcome> {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source).unwrap()).unwrap();
    edit(&mut json);
    let dir = std::env::temp_dir().join(format!("blockstm-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(source.file_name().unwrap());
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    let outcomes = run(&path);
    std::fs::remove_file(&path).unwrap();
    outcomes
}

fn first_test(json: &mut serde_json::Value) -> &mut serde_json::Value {
    json.as_object_mut().unwrap().values_mut().next().unwrap()
}

#[test]
fn a_wrong_expected_state_root_or_logs_hash_fails_the_unit() {
    let Some(dir) = ethtests_dir("GeneralStateTests") else {
        return;
    };
    let source = dir.join("stExample/add11.json");
    let options = statetest::StateTestOptions::default();
    let run = |path: &Path| statetest::run_file(path, &options);
    assert!(run(&source).iter().all(|o| o.verdict == Verdict::Passed));
    for field in ["hash", "logs"] {
        let outcomes = run_edited(
            &source,
            |json| {
                let post = first_test(json)["post"].as_object_mut().unwrap();
                for cases in post.values_mut() {
                    for case in cases.as_array_mut().unwrap() {
                        case[field] = serde_json::Value::String(format!("0x{}", "11".repeat(32)));
                    }
                }
            },
            run,
        );
        assert!(!outcomes.is_empty());
        assert!(
            outcomes.iter().all(
                |o| matches!(&o.verdict, Verdict::Failed(reason) if reason.contains("differs"))
            ),
            "a wrong `{field}` was not caught: {outcomes:?}"
        );
    }
}

#[test]
fn a_wrong_post_state_fails_the_blockchain_test() {
    let Some(dir) = ethtests_dir("BlockchainTests/ValidBlocks") else {
        return;
    };
    let source = dir.join("bcExample/basefeeExample.json");
    let options = blocktest::BlockTestOptions::default();
    let run = |path: &Path| blocktest::run_file(path, &options);
    assert!(run(&source).iter().all(|o| o.verdict == Verdict::Passed));
    let outcomes = run_edited(
        &source,
        |json| {
            let post = first_test(json)["postState"].as_object_mut().unwrap();
            let account = post.values_mut().next().unwrap();
            account["balance"] = serde_json::Value::String("0x0123456789".to_owned());
        },
        run,
    );
    assert!(
        matches!(&outcomes[0].verdict, Verdict::Failed(reason) if reason.contains("post state root")),
        "{outcomes:?}"
    );
}

#[test]
fn a_malformed_fixture_is_one_failure_naming_its_path() {
    let dir = std::env::temp_dir().join(format!("blockstm-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.json");
    std::fs::write(&path, "{ \"test\": { \"env\": 12 ").unwrap();
    let state = statetest::run_file(&path, &statetest::StateTestOptions::default());
    let block = blocktest::run_file(&path, &blocktest::BlockTestOptions::default());
    std::fs::remove_dir_all(&dir).unwrap();
    for outcomes in [state, block] {
        assert_eq!(outcomes.len(), 1);
        assert!(outcomes[0].name.contains("broken.json"));
        assert!(
            matches!(&outcomes[0].verdict, Verdict::Failed(reason) if reason.contains("cannot read"))
        );
    }
}

#[test]
fn skipped_files_are_counted_with_their_reason() {
    let Some(dir) = ethtests_dir("GeneralStateTests") else {
        return;
    };
    let files = json_files(&[dir]).unwrap();
    let collision = files
        .iter()
        .find(|f| f.file_name().unwrap() == "InitCollisionParis.json")
        .expect("InitCollisionParis.json is in the fixtures");
    let outcomes = statetest::run_file(collision, &statetest::StateTestOptions::default());
    assert!(outcomes.len() > 1, "every unit of a skipped file counts");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.verdict, Verdict::Skipped(reason) if reason.contains("EIP-7610")))
    );
}
