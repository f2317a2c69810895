//! Starts one throwaway PostgreSQL cluster for a whole test run.
//!
//! `sage-testkit start` prints `SAGE_TEST_PG_URL=…` and `SAGE_TEST_PG_DIR=…` lines for the
//! shell to export, and keeps the server running after it exits; `sage-testkit stop DIR`
//! stops it and removes the directory. `scripts/test` uses both. `sage-testkit bouncer URL
//! MODE` starts PgBouncer in front of that server and prints `SAGE_TEST_BOUNCER_PORT`,
//! `_PID` and `_DIR`; stop it with `kill` and remove the directory.

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
        // PgBouncer in front of a running test server, for benchmarks through a pooler.
        Some("bouncer") if args.len() == 3 => {
            let started = sage_conn::Settings::parse_url("URL", &args[1], sage_conn::Origin::Flag)
                .map_err(|e| e.to_string())
                .and_then(|s| match s.target {
                    sage_conn::Target::Postgres(pg) => Ok(pg),
                    _ => Err("URL must be a postgres:// URL".to_string()),
                })
                .and_then(|pg| sage_testkit::PgBouncer::start_for(&pg, &args[2]).map_err(|e| e.to_string()));
            match started {
                Ok(bouncer) => {
                    println!("SAGE_TEST_BOUNCER_PORT={}", bouncer.port());
                    let (pid, dir) = bouncer.into_kept();
                    println!("SAGE_TEST_BOUNCER_PID={pid}");
                    println!("SAGE_TEST_BOUNCER_DIR='{}'", dir.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        _ => {
            eprintln!(
                "usage: sage-testkit start [--durable] | sage-testkit stop DIR | sage-testkit bouncer URL POOL_MODE"
            );
            ExitCode::from(2)
        }
    }
}
