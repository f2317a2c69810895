//! `sage-db bench` as an operator runs it: every workload on every backend does real work
//! and reports it, nonce replays are told apart from errors, and samples come during a run.

mod common;

use common::{run, sage_db, stderr, stdout};
use serde_json::Value;

fn bench_json(cwd: &std::path::Path, url: &str, args: &[&str]) -> Value {
    let mut command = sage_db(cwd);
    command.args(["bench", "--json", "--database-url", url]).args(args);
    if url.starts_with("postgres") {
        command.env("SAGE_SESSION_KEY", sage_store::keys::generate_key().as_str());
    }
    let out = run(&mut command);
    assert!(out.status.success(), "{args:?}: {}{}", stdout(&out), stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_did_work(report: &Value, operations: u64) {
    assert_eq!(report["operations"], operations, "{report:#}");
    assert_eq!(report["errors"], 0, "{report:#}");
    assert!(report["ops_per_second"].as_f64().unwrap() > 0.0, "{report:#}");
    let (p50, p99, max) =
        (report["p50_us"].as_u64().unwrap(), report["p99_us"].as_u64().unwrap(), report["max_us"].as_u64().unwrap());
    assert!(p50 <= p99 && p99 <= max, "{report:#}");
}

const WORKLOADS: [&str; 6] = ["nonce-claim", "session-get", "session-touch", "session-create", "did-get", "mixed"];

#[test]
fn every_workload_runs_on_sqlite_and_memory() {
    let cwd = tempfile::tempdir().unwrap();
    let mut fresh_on_file = 0;
    for url in ["sqlite://bench.db", "memory://"] {
        for workload in WORKLOADS {
            let args = ["--workload", workload, "--clients", "4", "--operations", "400", "--keys", "50"];
            let report = bench_json(cwd.path(), url, &args);
            assert_eq!(report["workload"], workload);
            assert_did_work(&report, 400);
            if url.starts_with("sqlite") && matches!(workload, "nonce-claim" | "mixed") {
                fresh_on_file += 400 - report["replayed"].as_i64().unwrap();
            }
        }
    }
    // Every claim answered fresh really reached the file, and nothing else did.
    let conn = rusqlite::Connection::open(cwd.path().join("bench.db")).unwrap();
    let stored: i64 = conn.query_row("SELECT count(*) FROM nonces", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, fresh_on_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_reads_on_postgres() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let url = db.url();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &url])).status.success());
    let claims =
        bench_json(cwd.path(), &url, &["--workload", "nonce-claim", "--clients", "32", "--operations", "3000"]);
    assert_did_work(&claims, 3000);
    assert_eq!(claims["replayed"], 0, "fresh nonces are never replays: {claims:#}");
    let stored = common::pg_scalar(db.settings(), "SELECT count(*) FROM nonces WHERE nonce LIKE 'bench-%'").await;
    assert_eq!(stored, 3000, "every acknowledged claim is in the table");
    for threads in ["1", "2"] {
        let args = ["--workload", "session-get", "--clients", "8", "--operations", "2000", "--threads", threads];
        let reads = bench_json(cwd.path(), &url, &args);
        assert_did_work(&reads, 2000);
        assert_eq!(reads["threads"].as_u64().unwrap().to_string(), threads);
    }
}

#[test]
fn a_small_nonce_space_yields_replays_not_errors() {
    let cwd = tempfile::tempdir().unwrap();
    let args = ["--workload", "nonce-claim", "--clients", "4", "--operations", "500", "--keys", "10"];
    let report = bench_json(cwd.path(), "memory://", &args);
    assert_did_work(&report, 500);
    assert_eq!(report["replayed"], 490, "ten values, each fresh once: {report:#}");
}

#[test]
fn a_second_run_over_a_large_nonce_space_draws_new_nonces() {
    let cwd = tempfile::tempdir().unwrap();
    let args = ["--workload", "nonce-claim", "--clients", "4", "--operations", "400", "--keys", "9000000000000000"];
    for run in ["first", "second"] {
        let report = bench_json(cwd.path(), "sqlite://bench.db", &args);
        assert_did_work(&report, 400);
        assert_eq!(report["replayed"], 0, "{run} run: {report:#}");
    }
}

#[test]
fn samples_report_throughput_and_memory_during_the_run() {
    let cwd = tempfile::tempdir().unwrap();
    let args = ["--workload", "mixed", "--clients", "2", "--duration", "1200ms", "--sample-every", "250ms"];
    let report = bench_json(cwd.path(), "memory://", &args);
    let samples = report["samples"].as_array().unwrap();
    // A sample every 250 ms of a 1.2 s run: never more than four or five, and on a loaded
    // machine, whose timers fire late, still several.
    assert!((2..=5).contains(&samples.len()), "{report:#}");
    for pair in samples.windows(2) {
        assert!(pair[1]["seconds"].as_f64() > pair[0]["seconds"].as_f64());
    }
    assert!(samples
        .iter()
        .all(|s| s["ops_per_second"].as_f64().unwrap() > 0.0 && s["rss_bytes"].as_u64().unwrap() > 0));

    let out = run(sage_db(cwd.path())
        .args(["bench", "--database-url", "memory://", "--duration", "1000ms"])
        .args(["--sample-every", "200ms"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().filter(|l| l.contains("ops/s  resident")).count() >= 2, "{text}");
}

#[test]
fn unknown_workload_is_named_in_the_error() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(sage_db(cwd.path()).args(["bench", "--database-url", "memory://", "--workload", "nonce-claims"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--workload") && err.contains("a similar value exists: 'nonce-claim'"), "{err}");
}
