//! Starts one throwaway PostgreSQL cluster for a whole test run.
//!
//! `sage-testkit start` prints `SAGE_TEST_PG_URL=…` and `SAGE_TEST_PG_DIR=…` lines for the
//! shell to export, and keeps the server running after it exits; `sage-testkit stop DIR`
//! stops it and removes the directory. `scripts/test` uses both.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("start") => match sage_testkit::PgCluster::start(sage_testkit::ClusterOptions {
            // Benchmarks need a server that flushes every commit, as production does.
            durable: args.iter().any(|a| a == "--durable"),
            ..Default::default()
        }) {
            Ok(cluster) => {
                println!("SAGE_TEST_PG_URL='{}'", cluster.admin_settings().url_exposing_password());
                println!("SAGE_TEST_PG_PORT={}", cluster.port());
                println!("SAGE_TEST_PG_BIN='{}'", cluster.bin_dir().display());
                let dir = cluster.into_kept_dir();
                println!("SAGE_TEST_PG_DIR='{}'", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Some("stop") if args.len() == 2 => match sage_testkit::PgCluster::stop_kept(std::path::Path::new(&args[1])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("usage: sage-testkit start [--durable] | sage-testkit stop DIR");
            ExitCode::from(2)
        }
    }
}
