//! `sage-db bench`.

use std::process::ExitCode;

use sage_conn::DurationField;
use sage_ops::bench::{BenchOptions, Workload};

use crate::cli::Workload as WorkloadArg;
use sage_store::{KeySource, OpenOptions, Store};

use crate::cli::Global;
use crate::context::Database;
use crate::output;

pub struct Args {
    pub workload: WorkloadArg,
    pub clients: usize,
    pub duration: Option<String>,
    pub operations: Option<u64>,
    pub keys: Option<u64>,
    pub ttl: String,
    pub cleanup_every: Option<String>,
    pub sample_every: Option<String>,
    pub threads: Option<usize>,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<ExitCode> {
    let workload = Workload::from(args.workload);
    // Every duration is checked before the store is opened, so that a mistyped one creates
    // no database file.
    let duration = match (&args.duration, args.operations) {
        (Some(d), _) => Some(DurationField::new("--duration").parse(d)?),
        (None, Some(_)) => None,
        (None, None) => Some(std::time::Duration::from_secs(10)),
    };
    let optional = |name, text: &Option<String>| text.as_deref().map(|t| DurationField::new(name).parse(t)).transpose();
    let sample_every = optional("--sample-every", &args.sample_every)?;
    let cleanup_every = optional("--cleanup-every", &args.cleanup_every)?;
    let ttl = DurationField::new("--ttl").parse(&args.ttl)?;
    let db = Database::resolve(global)?;
    // Benchmark data is throwaway: without a configured key, a key for this run only.
    let mut options = OpenOptions::defaults_for(&db.settings.target, &db.env);
    options.keys = KeySource::from_environment(&db.env, KeySource::Ephemeral);
    let store = Store::open(&db.settings.target, options).await?;
    // Samples are printed as they come; with --json they are only in the report.
    let (samples_to, mut samples) = tokio::sync::mpsc::unbounded_channel::<sage_ops::bench::Sample>();
    let printer = (!global.json && sample_every.is_some()).then(|| {
        tokio::spawn(async move {
            while let Some(s) = samples.recv().await {
                let rss = s.rss_bytes.map_or("?".to_string(), |b| sage_ops::format_bytes(b as i64));
                say!("  {:>7.1} s  {:>10.0} ops/s  resident {rss}", s.seconds, s.ops_per_second);
            }
        })
    });
    let report = sage_ops::bench::run(
        store.clone(),
        BenchOptions {
            workload,
            clients: args.clients,
            duration,
            operations: args.operations,
            keys: args.keys,
            ttl,
            cleanup_every,
            threads: args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            sample_every,
            samples_to: printer.is_some().then_some(samples_to),
        },
    )
    .await?;
    if let Some(printer) = printer {
        let _ = printer.await;
    }
    store.close().await;
    if global.json {
        output::json(&report)?;
    } else {
        say!(
            "{} on {} ({}), {} clients, {} runtime thread(s), {:.1} s",
            workload.name(),
            db.settings,
            report.backend,
            report.clients,
            report.threads,
            report.seconds
        );
        say!(
            "  {:.0} ops/s ({} operations, {} errors, {} replayed)",
            report.ops_per_second,
            report.operations,
            report.errors,
            report.replayed
        );
        say!(
            "  latency p50 {} µs, p95 {} µs, p99 {} µs, max {} µs",
            report.p50_us,
            report.p95_us,
            report.p99_us,
            report.max_us
        );
        if let (Some(a), Some(b)) = (report.rss_start_bytes, report.rss_end_bytes) {
            say!("  resident memory {} → {}", sage_ops::format_bytes(a as i64), sage_ops::format_bytes(b as i64));
        }
        if let Some(e) = &report.first_error {
            say!("  first error: {e}");
        }
    }
    Ok(if report.errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
