//! The `blockstm` binary: its JSON contract and its handling of bad input.

use std::process::{Command, Output};

fn blockstm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_blockstm"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs `blockstm args`, which must succeed, and parses its JSON lines.
fn successful_json_rows(args: &[&str]) -> Vec<serde_json::Value> {
    let output = blockstm(args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json_rows(&output)
}

fn json_rows(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

#[test]
fn bench_stats_reports_the_engines_counts_and_phases() {
    let rows = successful_json_rows(&[
        "bench",
        "--workload",
        "raw",
        "--txs",
        "300",
        "--runs",
        "3",
        "--threads",
        "2",
        "--sequential-below",
        "0",
        "--stats",
        "--json",
    ]);
    assert_eq!(rows.len(), 1);
    let stats = &rows[0]["stats"];
    assert_eq!(stats["sequential"], false, "{stats}");
    assert!(stats["incarnations"].as_u64().unwrap() >= 300, "{stats}");
    assert!(stats["validations"].as_u64().unwrap() >= 300, "{stats}");
    for phase in [
        "planning_ms",
        "setup_ms",
        "execution_ms",
        "results_ms",
        "assembly_ms",
        "teardown_ms",
    ] {
        assert!(stats[phase].as_f64().unwrap() >= 0.0, "{phase} in {stats}");
    }
    assert!(stats["execution_ms"].as_f64().unwrap() > 0.0, "{stats}");
    let conflicting = blockstm(&["bench", "--stats", "--spawned-threads"]);
    assert!(!conflicting.status.success(), "--stats needs the pool");
}

#[test]
fn bench_json_prints_one_row_per_workload_with_the_contract_fields() {
    let rows = successful_json_rows(&[
        "bench",
        "--txs",
        "40",
        "--runs",
        "1",
        "--threads",
        "2",
        "--json",
    ]);
    let names: Vec<_> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["raw", "erc20", "amm", "hybrid", "chain"]);
    for row in &rows {
        for field in [
            "workload",
            "txs",
            "gas",
            "threads",
            "runs",
            "seq_ms",
            "par_ms",
            "speedup",
            "equal",
            "cpu_cores",
            "revm_ms",
            "reth_ms",
            "reth_engine",
            "par_bundle_ms",
            "vs_revm",
            "vs_reth",
        ] {
            assert!(row.get(field).is_some(), "missing {field} in {row}");
        }
        for field in ["revm_ms", "reth_ms", "par_bundle_ms"] {
            assert!(row[field].as_f64().unwrap() > 0.0, "{field} in {row}");
        }
        let vs_revm = row["revm_ms"].as_f64().unwrap() / row["par_ms"].as_f64().unwrap();
        assert!(
            (row["vs_revm"].as_f64().unwrap() - vs_revm).abs() < 1e-9,
            "{row}"
        );
        let vs_reth = row["reth_ms"].as_f64().unwrap() / row["par_bundle_ms"].as_f64().unwrap();
        assert!(
            (row["vs_reth"].as_f64().unwrap() - vs_reth).abs() < 1e-9,
            "{row}"
        );
        assert!(
            row.get("back_to_back").is_none(),
            "only with --back-to-back: {row}"
        );
        assert_eq!(row["txs"], 40);
        assert_eq!(row["threads"], 2);
        assert_eq!(row["runs"], 1);
        assert_eq!(row["failed_txs"], 0);
        assert!(row["gas"].as_u64().unwrap() >= 40 * 21_000);
        assert!(row["seq_ms"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn bench_table_names_every_column() {
    let output = blockstm(&["bench", "--workload", "chain", "--txs", "10", "--runs", "1"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    for column in [
        "workload", "txs", "gas", "revm ms", "reth ms", "seq ms", "par ms", "par+b ms", "speedup",
        "vs revm", "vs reth", "Ggas/s", "equal",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(lines.next().unwrap().starts_with("chain"));
}

#[test]
fn bench_back_to_back_reports_each_engines_time_per_block() {
    let rows = successful_json_rows(&[
        "bench",
        "--workload",
        "raw",
        "--txs",
        "3000",
        "--runs",
        "1",
        "--threads",
        "2",
        "--sequential-below",
        "0",
        "--back-to-back",
        "3",
        "--json",
    ]);
    let b2b = &rows[0]["back_to_back"];
    assert_eq!(b2b["blocks"], 3, "{b2b}");
    for engine in ["revm_ms", "reth_ms", "seq_ms", "par_ms", "par_bundle_ms"] {
        assert!(b2b[engine].as_f64().unwrap() > 0.0, "{engine} in {b2b}");
    }
    let speedup = b2b["seq_ms"].as_f64().unwrap() / b2b["par_ms"].as_f64().unwrap();
    assert!(
        (b2b["speedup"].as_f64().unwrap() - speedup).abs() < 1e-9,
        "{b2b}"
    );
    let table = blockstm(&[
        "bench",
        "--workload",
        "chain",
        "--txs",
        "10",
        "--runs",
        "1",
        "--back-to-back",
        "2",
    ]);
    assert!(table.status.success());
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(stdout.contains("back to back, 2 blocks"), "{stdout}");
}

#[test]
fn bad_input_fails_with_a_message_and_no_panic() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["bench", "--workload", "uniswap"],
            "invalid value 'uniswap'",
        ),
        (&["bench", "--txs", "0"], "at least one transaction"),
        (&["bench", "--txs", "5000000"], "more than the 1000000"),
        (&["bench", "--txs", "-3"], "unexpected argument"),
        (&["bench", "--hot", "2"], "hot ratio 2 is not a fraction"),
        (&["bench", "--runs", "0"], "--runs must be between"),
        (
            &["bench", "--back-to-back", "0"],
            "--back-to-back must be between",
        ),
        (
            &["bench", "--back-to-back", "2", "--memory"],
            "cannot be used with",
        ),
    ];
    for (args, expected) in cases {
        let output = blockstm(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// The mainnet blocks' folder, or `None` (with a printed SKIP line for `test`) without it.
fn mainnet_dir(test: &str) -> Option<String> {
    let dir = std::env::var("BLOCKSTM_MAINNET_DIR")
        .unwrap_or_else(|_| format!("{}/../../shared/mainnet", env!("CARGO_MANIFEST_DIR")));
    let present = std::path::Path::new(&dir)
        .join("bytecodes.json.gz")
        .is_file();
    if !present {
        println!("SKIP {test}: no mainnet data at {dir} (set BLOCKSTM_MAINNET_DIR)");
    }
    present.then_some(dir)
}

/// `replay --json`'s block rows (its last line is the summary).
fn replay_rows(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn replay_json_reports_every_mainnet_block_with_its_verdicts() {
    let Some(dir) = mainnet_dir("replay CLI test") else {
        return;
    };
    let output = blockstm(&["replay", &dir, "--threads", "2", "--runs", "1", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows = replay_rows(&stdout);
    assert!(rows.len() >= 40, "{} rows", rows.len());
    for row in &rows {
        for field in [
            "block",
            "txs",
            "gas",
            "seq_ms",
            "par_ms",
            "speedup",
            "equal",
            "gas_match",
            "bloom_match",
            "receipts_root_match",
        ] {
            assert!(row.get(field).is_some(), "missing {field} in {row}");
        }
        assert_eq!(row["equal"], true, "{row}");
        assert_eq!(row["gas_match"], true, "{row}");
    }
    let summary = format!("{} passed, 0 failed, 0 skipped", rows.len());
    assert!(stdout.lines().any(|line| line == summary), "{stdout}");
}

#[test]
fn replay_stats_report_the_engines_counts_per_block() {
    let Some(dir) = mainnet_dir("replay --stats CLI test") else {
        return;
    };
    // A block the defaults contain (a pool paying out) and one they run in parallel.
    let args = [
        "replay",
        &dir,
        "--threads",
        "2",
        "--runs",
        "1",
        "--json",
        "--stats",
        "--default-options",
        "--block",
        "12520364",
        "--block",
        "13217637",
    ];
    let output = blockstm(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = replay_rows(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (contained, parallel) = (&rows[0]["stats"], &rows[1]["stats"]);
    assert_eq!(rows[0]["path"], "contained", "{}", rows[0]);
    assert_eq!(contained["contained"], true, "{contained}");
    assert_eq!(rows[1]["path"], "parallel", "{}", rows[1]);
    assert_eq!(parallel["sequential"], false, "{parallel}");
    assert!(
        parallel["incarnations"].as_u64().unwrap() >= 1_100,
        "{parallel}"
    );
    assert!(
        parallel["execution_ms"].as_f64().unwrap() > 0.0,
        "{parallel}"
    );
    for field in ["critical_path", "aborts", "planning_ms", "assembly_ms"] {
        assert!(
            parallel.get(field).is_some(),
            "missing {field} in {parallel}"
        );
    }
    let plain = blockstm(&[
        "replay", &dir, "--runs", "1", "--json", "--block", "13217637",
    ]);
    let plain = replay_rows(&String::from_utf8_lossy(&plain.stdout));
    assert_eq!(plain.len(), 1);
    assert!(
        plain[0].get("stats").is_none(),
        "no stats unless asked: {}",
        plain[0]
    );
}

#[test]
fn replay_of_a_missing_folder_fails_with_the_path() {
    let output = blockstm(&["replay", "/nonexistent/mainnet"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/mainnet/bytecodes.json.gz"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn ethtests_dir() -> Option<String> {
    let dir = std::env::var("BLOCKSTM_ETHTESTS_DIR")
        .unwrap_or_else(|_| format!("{}/../../shared/ethtests", env!("CARGO_MANIFEST_DIR")));
    if std::path::Path::new(&dir).is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIP statetest/blocktest CLI test: no fixtures at {dir} (set BLOCKSTM_ETHTESTS_DIR)"
        );
        None
    }
}

#[test]
fn statetest_and_blocktest_end_with_the_summary_line() {
    let Some(dir) = ethtests_dir() else { return };
    for (command, path) in [
        ("statetest", format!("{dir}/GeneralStateTests/stExample")),
        (
            "blocktest",
            format!("{dir}/BlockchainTests/ValidBlocks/bcExample"),
        ),
    ] {
        let output = blockstm(&[command, &path]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}: {stdout}");
        let last = stdout.lines().last().unwrap_or_default();
        let counts: Vec<usize> = last
            .split(", ")
            .map(|part| part.split(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(
            last.ends_with(" skipped") && counts.len() == 3 && counts[0] > 0 && counts[1] == 0,
            "{command}: {last:?}"
        );
    }
}

#[test]
fn statetest_reports_a_malformed_file_and_fails() {
    let dir = std::env::temp_dir().join(format!("blockstm-cli-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bad.json"), "[1, 2").unwrap();
    let output = blockstm(&["statetest", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stdout.contains("bad.json") && stdout.contains("0 passed, 1 failed, 0 skipped"),
        "{stdout}"
    );
    let missing = blockstm(&["statetest", "/nonexistent/fixtures"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/fixtures"));
}

#[test]
fn bench_with_db_latency_reports_the_latency_and_the_locations_read() {
    let rows = successful_json_rows(&[
        "bench",
        "--workload",
        "raw",
        "--txs",
        "300",
        "--runs",
        "1",
        "--threads",
        "2",
        "--db-latency-us",
        "20",
        "--json",
    ]);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["equal"], true, "{row}");
    assert_eq!(row["db_latency_us"], 20, "{row}");
    // Each transfer reads a fresh sender and a fresh recipient.
    let seq_reads = row["db_first_reads_seq"].as_u64().unwrap();
    assert!(seq_reads >= 600, "{row}");
    assert!(
        row["db_first_reads_par"].as_u64().unwrap() >= seq_reads,
        "{row}"
    );
    // 600 first reads of at least 20 µs each, one after the other.
    assert!(row["seq_ms"].as_f64().unwrap() >= 12.0, "{row}");
    let too_slow = blockstm(&["bench", "--db-latency-us", "2000000"]);
    assert!(!too_slow.status.success());
}

#[test]
fn bench_memory_reports_both_engines_peaks_from_their_own_processes() {
    let rows = successful_json_rows(&[
        "bench",
        "--workload",
        "erc20",
        "--txs",
        "1000",
        "--threads",
        "2",
        "--memory",
        "--json",
    ]);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let field = |name: &str| {
        row[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} in {row}"))
    };
    assert!(field("base_rss_mib") > 0.0, "{row}");
    assert!(field("seq_peak_rss_mib") >= field("base_rss_mib"), "{row}");
    assert!(field("par_peak_rss_mib") >= field("base_rss_mib"), "{row}");
    assert!(
        field("par_extra_mib") >= 0.0 && field("seq_extra_mib") >= 0.0,
        "{row}"
    );
    assert!(row["within_bound"].is_boolean(), "{row}");
    // A block below the sequential threshold cannot measure the parallel engine.
    let small = blockstm(&["bench", "--workload", "raw", "--txs", "10", "--memory"]);
    assert!(!small.status.success());
    assert!(String::from_utf8_lossy(&small.stderr).contains("sequential path"));
}

#[test]
fn bench_builder_reports_throughput_and_first_commit_against_execute() {
    let rows = successful_json_rows(&[
        "bench",
        "--builder",
        "--txs",
        "500",
        "--runs",
        "2",
        "--threads",
        "2",
        "--json",
    ]);
    let names: Vec<_> = rows
        .iter()
        .map(|r| r["workload"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["raw", "erc20", "amm", "hybrid", "chain"]);
    for row in &rows {
        for field in [
            "candidates",
            "included",
            "excluded",
            "gas",
            "threads",
            "runs",
            "seq_ms",
            "execute_ms",
            "build_ms",
            "first_commit_ms",
            "build_vs_execute",
            "build_speedup",
            "rounds",
            "parallel_rounds",
            "equal",
        ] {
            assert!(row.get(field).is_some(), "missing {field} in {row}");
        }
        assert_eq!(row["equal"], true, "{row}");
        assert_eq!(row["included"], 500, "{row}");
        assert_eq!(row["excluded"], 10, "one replay per 50 transactions: {row}");
        assert_eq!(row["candidates"], 510, "{row}");
        let first = row["first_commit_ms"].as_f64().unwrap();
        let build = row["build_ms"].as_f64().unwrap();
        assert!(first > 0.0 && first <= build, "{row}");
        assert!(row["rounds"].as_u64().unwrap() >= 2, "{row}");
    }
    let conflicting = blockstm(&["bench", "--builder", "--memory"]);
    assert!(
        !conflicting.status.success(),
        "--builder is a mode of its own"
    );
}
