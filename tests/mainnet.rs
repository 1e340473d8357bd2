//! Real mainnet blocks (`../shared/mainnet`, or `BLOCKSTM_MAINNET_DIR`): sequential output
//! matches the header (gas used, logs bloom, receipts root from Byzantium on) and the
//! parallel engine at 2 and 8 threads returns exactly the sequential output.

use std::path::PathBuf;

use blockstm_cli::replay::MainnetData;
use blockstm_evm::{Options, execute, execute_sequential};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BLOCKSTM_MAINNET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/mainnet"));
    if dir.join("bytecodes.json.gz").is_file() {
        Some(dir)
    } else {
        println!(
            "SKIP mainnet replay: no mainnet data at {} (set BLOCKSTM_MAINNET_DIR)",
            dir.display()
        );
        None
    }
}

#[test]
fn mainnet_blocks_replay_in_parallel_as_sequentially_and_match_their_headers() {
    let Some(dir) = data_dir() else { return };
    let data = MainnetData::load(&dir).unwrap();
    let numbers = data.block_numbers().unwrap();
    assert!(!numbers.is_empty(), "no blocks under {}", dir.display());
    let mut failures = Vec::new();
    let mut receipts_roots_checked = 0;
    for number in &numbers {
        let block = data.block(*number).unwrap();
        let expected = match execute_sequential(&block.storage, &block.block) {
            Ok(output) => output,
            Err(error) => {
                failures.push(format!("block {number}: sequential failed: {error}"));
                continue;
            }
        };
        let check = block.check(&expected);
        receipts_roots_checked += usize::from(check.receipts_root == Some(true));
        if !check.gas || !check.bloom || check.receipts_root == Some(false) {
            failures.push(format!(
                "block {number} ({:?}): header mismatch {check:?}",
                block.spec
            ));
        }
        for threads in [2, 8] {
            let options = Options {
                sequential_below: Some(0),
                ..Options::with_concurrency(threads)
            };
            match execute(&block.storage, &block.block, &options) {
                Ok(actual) if actual == expected => {}
                Ok(_) => failures.push(format!(
                    "block {number}: parallel at {threads} threads differs"
                )),
                Err(error) => failures.push(format!(
                    "block {number}: parallel at {threads} threads failed: {error}"
                )),
            }
        }
    }
    println!(
        "{} mainnet blocks replayed, {receipts_roots_checked} receipts roots matched, {} failures",
        numbers.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every block from Byzantium on has a receipts root to match.
    assert!(
        receipts_roots_checked * 2 > numbers.len(),
        "only {receipts_roots_checked} roots checked"
    );
}
