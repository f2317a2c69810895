//! A store works from any runtime and any thread for its whole life: opened in one runtime,
//! used concurrently from others, including after the runtime that opened it is gone.
//! Regression: a PostgreSQL store's claim batcher used to be spawned on the opener's
//! runtime, and 15 of 16 concurrent claims from another runtime failed with "the store is
//! closing".

use std::sync::Arc;

use chrono::Utc;
use sage_store::{keys, KeySource, NewSession, OpenOptions, SessionKey, SessionStore, Store};
use tokio::runtime::{Builder, Runtime};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Memory,
    Sqlite,
    Postgres,
}

#[derive(Debug)]
struct Opened {
    store: Store,
    _db: Option<sage_testkit::TestDatabase>,
    _file: Option<sage_testkit::SqliteFile>,
}

async fn open(kind: Kind) -> Opened {
    let mut options = OpenOptions::new(KeySource::Inline(vec![keys::generate_key().to_string()]));
    options.migrate = true;
    let (target, db, file) = match kind {
        Kind::Memory => (sage_conn::Target::Memory, None, None),
        Kind::Sqlite => {
            let file = sage_testkit::SqliteFile::new();
            (sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(file.path().to_path_buf())), None, Some(file))
        }
        Kind::Postgres => {
            let db = sage_testkit::database().await.expect("test database");
            (sage_conn::Target::Postgres(db.settings().clone()), Some(db), None)
        }
    };
    let store = Store::open(&target, options).await.expect("open store");
    Opened { store, _db: db, _file: file }
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// 16 concurrent claims of distinct nonces, 16 of one nonce and 16 accepts, all spawned on
/// the runtime the caller is in; every answer must be the right one.
async fn work_concurrently(store: &Store, tag: &str) {
    const N: usize = 16;
    let later = Utc::now() + chrono::Duration::minutes(5);
    let session = format!("session-{tag}");
    store
        .sessions()
        .create(&NewSession {
            id: session.clone(),
            client_did: "did:sage:test:alice".into(),
            server_did: "did:sage:test:bob".into(),
            key: SessionKey::new(vec![7u8; 32]),
            expires_at: later,
            metadata: None,
            max_messages: None,
            idle_timeout: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{tag}: create session: {e}"));
    let spawn_all = |nonce: &dyn Fn(usize) -> String, accept: bool| {
        (0..N)
            .map(|i| {
                let (store, nonce, session) = (store.clone(), nonce(i), session.clone());
                tokio::spawn(async move {
                    if accept {
                        store.accept(&session, &nonce, later).await.map(drop)
                    } else {
                        store.nonces().claim(&nonce, None, later).await
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let distinct = spawn_all(&|i| format!("{tag}-distinct-{i}"), false);
    let same = spawn_all(&|_| format!("{tag}-same"), false);
    let accepts = spawn_all(&|i| format!("{tag}-accept-{i}"), true);
    for handle in distinct {
        handle.await.unwrap().unwrap_or_else(|e| panic!("{tag}: a distinct claim failed: {e}"));
    }
    let mut wins = 0;
    for handle in same {
        match handle.await.unwrap() {
            Ok(()) => wins += 1,
            Err(e) => assert!(e.is_replayed(), "{tag}: {e}"),
        }
    }
    assert_eq!(wins, 1, "{tag}: one winner of a shared nonce");
    for handle in accepts {
        handle.await.unwrap().unwrap_or_else(|e| panic!("{tag}: an accept failed: {e}"));
    }
    let stored = store.sessions().get(&session).await.unwrap();
    assert_eq!(stored.message_count, N as u64, "{tag}");
}

fn used_from_another_runtime_while_the_opener_lives(kind: Kind) {
    let opener = multi_thread();
    let opened = opener.block_on(open(kind));
    multi_thread().block_on(work_concurrently(&opened.store, "other-multi"));
    current_thread().block_on(work_concurrently(&opened.store, "other-current"));
    opener.block_on(work_concurrently(&opened.store, "opener"));
}

fn outlives_the_runtime_that_opened_it(kind: Kind) {
    let opened = {
        let opener = current_thread();
        opener.block_on(open(kind))
        // The opener's runtime is dropped here, with everything spawned on it.
    };
    let first = multi_thread();
    first.block_on(work_concurrently(&opened.store, "after-opener"));
    drop(first);
    // Connections made while serving the first runtime must not have died with it.
    multi_thread().block_on(work_concurrently(&opened.store, "after-first"));
}

fn used_from_many_threads_at_once(kind: Kind) {
    let opened = Arc::new(multi_thread().block_on(open(kind)));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let opened = opened.clone();
            std::thread::spawn(move || {
                current_thread().block_on(work_concurrently(&opened.store, &format!("thread-{t}")))
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    // The store is dropped on a thread with no runtime at all.
    drop(opened);
}

macro_rules! per_backend {
    ($($kind:ident),*) => {$(
        #[allow(non_snake_case)]
        mod $kind {
            #[test]
            fn used_from_another_runtime_while_the_opener_lives() {
                super::used_from_another_runtime_while_the_opener_lives(super::Kind::$kind)
            }
            #[test]
            fn outlives_the_runtime_that_opened_it() {
                super::outlives_the_runtime_that_opened_it(super::Kind::$kind)
            }
            #[test]
            fn used_from_many_threads_at_once() {
                super::used_from_many_threads_at_once(super::Kind::$kind)
            }
        }
    )*};
}

per_backend!(Memory, Sqlite, Postgres);
