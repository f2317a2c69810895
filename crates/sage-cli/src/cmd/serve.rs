//! `sage-db serve`.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use sage_conn::DurationField;
use sage_store::{OpenOptions, Store};

use crate::cli::Global;
use crate::context::Database;

pub async fn run(
    global: &Global,
    bind: IpAddr,
    port: u16,
    cleanup_every: &str,
    migrate: bool,
) -> anyhow::Result<ExitCode> {
    // Zero is refused here: a zero period would make the cleanup task's timer panic.
    let cleanup_every =
        if cleanup_every == "off" { None } else { Some(DurationField::new("--cleanup-every").parse(cleanup_every)?) };
    let db = Database::resolve(global)?;
    // Listen before anything else: an address in use or not ours fails at once, with the
    // reason, and "serving on" is printed only when it is true.
    let address = SocketAddr::new(bind, port);
    let listener = sage_ops::serve::bind(address).await?;
    let address = listener.local_addr().unwrap_or(address);
    let mut options = OpenOptions::defaults_for(&db.settings.target, &db.env);
    // Only --migrate changes the schema; otherwise a database behind the expected version
    // stops start-up with the store's message.
    options.migrate = migrate;
    let store =
        Store::open(&db.settings.target, options).await.map_err(|e| anyhow::Error::new(e).context("cannot start"))?;
    for notice in store.notices() {
        eprintln!("note: {notice}");
    }
    eprintln!("serving {} on http://{address} (/, /health, /health/db, /metrics)", db.settings);
    sage_ops::serve::serve(
        store,
        db.settings.target.clone(),
        listener,
        sage_ops::serve::ServeOptions { cleanup_every },
        shutdown_signal(),
    )
    .await?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
