//! Runs the relay. Settings come from the environment, read here and nowhere else:
//!
//! - `DATABASE_URL`: `postgres://…`, `sqlite://relay.db` (the default) or `memory://`;
//! - `SAGE_SESSION_KEY` or `SAGE_SESSION_KEY_FILE`: the keys that seal session keys
//!   (required for PostgreSQL; SQLite creates `relay.db.key` beside its file);
//! - `RELAY_LISTEN`: the address to serve on (default `127.0.0.1:8080`);
//! - `RELAY_DID`: the relay's own DID (default `did:sage:relay`).

use std::process::ExitCode;
use std::time::Duration;

use sage_relay::{router, spawn_cleanup, RelayConfig};
use sage_store::Store;

#[tokio::main]
async fn main() -> ExitCode {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://relay.db".to_string());
    let listen = std::env::var("RELAY_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_string());
    let config = RelayConfig {
        server_did: std::env::var("RELAY_DID").unwrap_or_else(|_| RelayConfig::default().server_did),
        ..RelayConfig::default()
    };

    let store = match Store::builder(url).keys_from_environment().open().await {
        Ok(store) => store,
        Err(e) => {
            eprintln!("relay: cannot open the store: {e}");
            return ExitCode::from(2);
        }
    };
    for notice in store.notices() {
        eprintln!("relay: {notice}");
    }
    let _cleanup = spawn_cleanup(store.clone(), Duration::from_secs(60));

    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("relay: cannot listen on {listen}: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("relay: serving on {listen} with the {} store", store.backend_name());
    if let Err(e) = axum::serve(listener, router(store, config)).await {
        eprintln!("relay: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
