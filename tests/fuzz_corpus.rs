//! Replays what the cargo-fuzz differential target (`fuzz/`) is guarded by, on stable Rust:
//! every file of the committed seed corpus (`fuzz/corpus/differential/`) and every crash
//! reproducer (`fuzz/regressions/`) goes through the target's own decoding and comparison
//! (`fuzz/src/universe.rs`, compiled in here): `execute` at 2, 4 and 8 threads must return
//! what `execute_sequential` returns.
//!
//! The seed corpus is generated, deterministically, by `generate_seed`; a test checks the
//! committed files against it, and rewrites them with `BLOCKSTM_WRITE_SEEDS=1 cargo test
//! --release --test fuzz_corpus the_seed_corpus_is_what_its_generator_makes`.

#[path = "../fuzz/src/universe.rs"]
#[allow(dead_code)]
mod universe;

use std::path::{Path, PathBuf};

use blockstm_evm::revm::primitives::hardfork::SpecId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CORPUS: &str = "fuzz/corpus/differential";
const REGRESSIONS: &str = "fuzz/regressions";
/// How many seeds the corpus has.
const SEEDS: usize = 32;
/// A divergence found by fuzzing depends on a schedule: each reproducer runs this often.
const REGRESSION_RUNS: usize = 10;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file() && !is_documentation(path))
        .collect();
    files.sort();
    files
}

/// README files explain a directory; they are not inputs.
fn is_documentation(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "md")
}

/// Runs every file `runs` times; panics with every divergence found.
fn replay(files: &[PathBuf], runs: usize) -> usize {
    let mut failures = Vec::new();
    let mut decoded = 0;
    for file in files {
        let data = std::fs::read(file).expect("a readable input");
        for run in 0..runs {
            match universe::check(&data) {
                Ok(summary) => decoded += usize::from(run == 0 && summary.is_some()),
                Err(divergence) => {
                    let input = universe::decode(&data).map(|case| case.input);
                    failures.push(format!(
                        "{}: {divergence}\ninput: {input:#?}",
                        file.display()
                    ));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    decoded
}

#[test]
fn the_seed_corpus_agrees() {
    let files = files(CORPUS);
    assert!(!files.is_empty(), "no seed corpus in {CORPUS}");
    let decoded = replay(&files, 1);
    assert_eq!(decoded, files.len(), "every seed decodes to a block");
}

#[test]
fn the_regressions_agree() {
    replay(&files(REGRESSIONS), REGRESSION_RUNS);
}

/// The seeds exercise the universe: most blocks are valid, with many successful
/// transactions, and every fork of the table appears.
#[test]
fn the_seed_corpus_is_not_trivial() {
    let mut succeeded = 0;
    let mut txs = 0;
    let mut valid = 0;
    let mut specs = Vec::new();
    for file in files(CORPUS) {
        let case = universe::decode(&std::fs::read(file).unwrap()).unwrap();
        let summary = universe::compare(&case, &[]).unwrap();
        if let Some(ok) = summary.succeeded {
            valid += 1;
            succeeded += ok;
            txs += summary.txs;
        }
        specs.push(summary.spec);
    }
    specs.sort();
    specs.dedup();
    assert!(valid * 4 >= SEEDS * 3, "{valid} valid blocks");
    assert!(
        succeeded * 2 >= txs,
        "{succeeded} of {txs} transactions of valid blocks succeed"
    );
    for spec in [
        SpecId::FRONTIER,
        SpecId::CANCUN,
        SpecId::PRAGUE,
        SpecId::OSAKA,
    ] {
        assert!(specs.contains(&spec), "no {spec:?} block in {specs:?}");
    }
}

/// The committed seed corpus is exactly what its generator makes, so that the seeds can be
/// regenerated and reviewed: for each seed, random bytes (ChaCha8, seeded by its number)
/// whose first byte picks the fork (the seeds cycle through the fork table); a candidate is
/// kept when its block is valid with at least 12 transactions (40 for every fourth seed)
/// and half of them succeed; one seed in eight may be an invalid block, so that errors are
/// seeded too. With `BLOCKSTM_WRITE_SEEDS=1` the test writes the files instead of checking
/// them.
#[test]
fn the_seed_corpus_is_what_its_generator_makes() {
    let write = std::env::var_os("BLOCKSTM_WRITE_SEEDS").is_some_and(|value| value == "1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for seed in 0..SEEDS {
        let data = generate_seed(seed);
        let path = dir.join(format!("seed-{seed:02}"));
        if write {
            std::fs::write(&path, data).unwrap();
        } else {
            let committed =
                std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            assert!(
                committed == data,
                "{} differs from its generator's output (BLOCKSTM_WRITE_SEEDS=1 rewrites it)",
                path.display()
            );
        }
    }
}

/// Seed `seed` of the corpus (see `the_seed_corpus_is_what_its_generator_makes`).
fn generate_seed(seed: usize) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed as u64);
    let accept_invalid = seed % 8 == 7;
    // A quarter of the seeds are long blocks.
    let min_txs = if seed.is_multiple_of(4) { 40 } else { 12 };
    loop {
        let len = rng.random_range(128..3000);
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        data[0] = seed as u8;
        let Some(case) = universe::decode(&data) else {
            continue;
        };
        let summary = universe::compare(&case, &[]).unwrap();
        let good = match summary.succeeded {
            Some(ok) => summary.txs >= min_txs && ok * 2 >= summary.txs,
            None => accept_invalid && summary.txs >= min_txs,
        };
        if good {
            return data;
        }
    }
}
