//! `blockstm statetest` and `blockstm blocktest`: the Ethereum fixtures through the parallel
//! engine and the sequential reference, with one summary line `N passed, N failed, N skipped`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use blockstm_cli::conformance::{CaseOutcome, Summary, Verdict, blocktest, json_files, statetest};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `blockstm statetest`.
#[derive(Debug, Args)]
pub struct StateTestArgs {
    /// State-test files or folders (searched recursively for `.json`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Workers of the parallel engine.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Print every unit's verdict, not only failures.
    #[arg(long)]
    verbose: bool,
}

/// Arguments of `blockstm blocktest`.
#[derive(Debug, Args)]
pub struct BlockTestArgs {
    /// Blockchain-test files or folders (searched recursively for `.json`).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print every test's verdict, not only failures.
    #[arg(long)]
    verbose: bool,
}

pub fn run_statetest(args: &StateTestArgs) -> Result<ExitCode, String> {
    if args.threads == 0 {
        return Err("--threads must be at least 1".to_owned());
    }
    let options = statetest::StateTestOptions {
        threads: args.threads,
    };
    run_files(&args.paths, args.verbose, |path| {
        statetest::run_file(path, &options)
    })
}

pub fn run_blocktest(args: &BlockTestArgs) -> Result<ExitCode, String> {
    let options = blocktest::BlockTestOptions::default();
    run_files(&args.paths, args.verbose, |path| {
        blocktest::run_file(path, &options)
    })
}

/// Runs `run` over every fixture file, printing failures as they come, then the skips grouped
/// by reason and the summary line.
fn run_files(
    paths: &[PathBuf],
    verbose: bool,
    run: impl Fn(&Path) -> Vec<CaseOutcome>,
) -> Result<ExitCode, String> {
    let files = json_files(paths).map_err(|e| e.to_string())?;
    if files.is_empty() {
        return Err(format!("no .json fixtures under {paths:?}"));
    }
    let progress = ProgressBar::new(files.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .expect("static template"),
    );
    let mut summary = Summary::default();
    let mut skips: BTreeMap<&'static str, usize> = BTreeMap::new();
    for file in &files {
        progress.set_message(
            file.file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for outcome in run(file) {
            summary.add(&outcome.verdict);
            match &outcome.verdict {
                Verdict::Failed(reason) => {
                    progress.suspend(|| println!("FAIL {}: {reason}", outcome.name));
                }
                Verdict::Skipped(reason) => {
                    *skips.entry(reason).or_default() += 1;
                    if verbose {
                        progress.suspend(|| println!("SKIP {}: {reason}", outcome.name));
                    }
                }
                Verdict::Passed if verbose => {
                    progress.suspend(|| println!("PASS {}", outcome.name));
                }
                Verdict::Passed => {}
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    for (reason, count) in &skips {
        println!("skipped {count}: {reason}");
    }
    println!("{summary}");
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
