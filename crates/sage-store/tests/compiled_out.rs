//! A build that leaves a backend out (`--no-default-features --features sqlite`, or
//! `postgres`) refuses that backend's URLs with one line naming the feature. With both
//! features on, the default, there is nothing to test here; `scripts/test` runs this file
//! with each feature alone.
#![cfg(not(all(feature = "postgres", feature = "sqlite")))]

use sage_store::{ErrorKind, KeySource, OpenOptions, Store};

/// Opens `url` as far as this build gets: its settings may already be refused.
async fn open(url: &str) -> sage_store::StoreError {
    let target = match sage_conn::Settings::parse_url("the database URL", url, sage_conn::Origin::Flag) {
        Ok(settings) => settings.target,
        Err(e) => return e.into(),
    };
    Store::open(&target, OpenOptions::new(KeySource::Ephemeral)).await.unwrap_err()
}

fn assert_names_feature(e: &sage_store::StoreError, feature: &str) {
    let text = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Configuration, "{text}");
    assert!(text.contains(&format!("`{feature}` cargo feature")), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn a_postgres_url_names_the_missing_feature() {
    assert_names_feature(&open("postgres://sage@127.0.0.1:1/sage").await, "postgres");
}

#[cfg(not(feature = "sqlite"))]
#[tokio::test]
async fn a_sqlite_url_names_the_missing_feature() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("never.db").display());
    assert_names_feature(&open(&url).await, "sqlite");
    assert!(!dir.path().join("never.db").exists(), "no file was created");
}

#[tokio::test]
async fn memory_is_always_there() {
    let store = Store::open_url("memory://").await.unwrap();
    store.ping().await.unwrap();
}
