//! The operator's store commands: many processes claiming nonces, sessions shown without
//! their keys, DIDs, and key generation and rotation.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{run, sage_db, stderr, stdout};
use sage_store::{DidStore, NewSession, SessionKey, SessionStore};

/// Starts `processes` copies of `sage-db nonce claim -`, each fed an overlapping list of
/// nonces in its own order, and returns how often each nonce was answered "fresh".
fn claim_from_many_processes(
    cwd: &std::path::Path,
    extra_env: &[(&str, &str)],
    url: &str,
    processes: usize,
    nonces: usize,
) -> Vec<usize> {
    let children: Vec<_> = (0..processes)
        .map(|p| {
            let mut cmd = sage_db(cwd);
            cmd.args(["nonce", "claim", "-", "--database-url", url]);
            for (k, v) in extra_env {
                cmd.env(k, v);
            }
            let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
            let mut input = String::new();
            for i in 0..nonces {
                let n = (i * (p + 1) * 7919) % nonces;
                input.push_str(&format!("n-{n}\n"));
            }
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            child
        })
        .collect();
    let mut fresh = vec![0usize; nonces];
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        for line in stdout(&out).lines() {
            let (nonce, answer) = line.split_once(' ').unwrap();
            if answer == "fresh" {
                fresh[nonce.trim_start_matches("n-").parse::<usize>().unwrap()] += 1;
            }
        }
    }
    fresh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_processes_on_postgres_see_each_nonce_fresh_once() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &db.url()])).status.success());
    let key = sage_store::keys::generate_key();
    let fresh = claim_from_many_processes(cwd.path(), &[("SAGE_SESSION_KEY", &key)], &db.url(), 6, 600);
    assert!(fresh.iter().all(|&n| n == 1), "{fresh:?}");
}

#[test]
fn many_processes_on_sqlite_see_each_nonce_fresh_once() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).arg("up")).status.success());
    let url = format!("sqlite://{}", cwd.path().join("sage.db").display());
    let fresh = claim_from_many_processes(cwd.path(), &[], &url, 6, 600);
    assert!(fresh.iter().all(|&n| n == 1), "{fresh:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_commands_never_print_key_material() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).arg("up")).status.success());
    let target = sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(cwd.path().join("sage.db")));
    let env = sage_conn::Environment::from_pairs(Vec::new());
    let store = sage_store::Store::open(&target, sage_store::OpenOptions::defaults_for(&target, &env)).await.unwrap();
    let secret = b"TOP-SECRET-SESSION-KEY-BYTES";
    store
        .sessions()
        .create(&NewSession {
            id: "q83vEjRWeJASNFZ4kBI0Vg".into(),
            client_did: "did:sage:dev:alice".into(),
            server_did: "did:sage:dev:bob".into(),
            key: SessionKey::new(secret.to_vec()),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            metadata: Some(serde_json::json!({"purpose": "test"})),
            max_messages: Some(100),
            idle_timeout: None,
        })
        .await
        .unwrap();
    store.close().await;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = "VE9QLVNFQ1JFVC1TRVNTSU9OLUtFWS1CWVRFUw";
    for args in [
        vec!["session", "get", "q83vEjRWeJASNFZ4kBI0Vg"],
        vec!["session", "get", "q83vEjRWeJASNFZ4kBI0Vg", "--json"],
        vec!["session", "list", "--client", "did:sage:dev:alice"],
        vec!["session", "list", "--client", "did:sage:dev:alice", "--json"],
    ] {
        let out = run(sage_db(cwd.path()).args(&args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let text = stdout(&out) + &stderr(&out);
        assert!(text.contains("q83vEjRWeJASNFZ4kBI0Vg"), "{text}");
        for leak in ["TOP-SECRET", hex.as_str(), b64] {
            assert!(!text.contains(leak), "{args:?} printed key material: {text}");
        }
    }
    let json: serde_json::Value = serde_json::from_slice(
        &run(sage_db(cwd.path()).args(["session", "get", "q83vEjRWeJASNFZ4kBI0Vg", "--json"])).stdout,
    )
    .unwrap();
    assert_eq!(json["key_bytes"], secret.len());
    assert_eq!(json["max_messages"], 100);

    let missing = run(sage_db(cwd.path()).args(["session", "get", "nope"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("not found"), "{}", stderr(&missing));
    let refused = run(sage_db(cwd.path()).args(["session", "delete", "q83vEjRWeJASNFZ4kBI0Vg"]).stdin(Stdio::null()));
    assert_eq!(refused.status.code(), Some(2));
    assert!(run(sage_db(cwd.path()).args(["session", "delete", "q83vEjRWeJASNFZ4kBI0Vg", "--yes"])).status.success());
}

#[test]
fn did_commands_round_trip_and_reject_bad_input_by_field() {
    let cwd = tempfile::tempdir().unwrap();
    let put = run(sage_db(cwd.path()).args([
        "did",
        "put",
        "did:sage:dev:alice",
        "--public-key",
        "302a300506032b6570032100aabb",
        "--owner",
        "0x742d35Cc",
        "--endpoint",
        "https://alice.example.com",
        "--capability",
        "messaging",
        "--stale-after",
        "10m",
        "--json",
    ]));
    assert!(put.status.success(), "{}", stderr(&put));
    let got: serde_json::Value =
        serde_json::from_slice(&run(sage_db(cwd.path()).args(["did", "get", "did:sage:dev:alice", "--json"])).stdout)
            .unwrap();
    assert_eq!(got["public_key"], "302a300506032b6570032100aabb");
    assert_eq!(got["capabilities"][0], "messaging");
    assert!(run(sage_db(cwd.path()).args(["did", "revoke", "did:sage:dev:alice"])).status.success());
    let listed: serde_json::Value = serde_json::from_slice(
        &run(sage_db(cwd.path()).args(["did", "list", "--owner", "0x742d35Cc", "--json"])).stdout,
    )
    .unwrap();
    assert_eq!(listed["dids"][0]["revoked"], true);

    let bad = run(sage_db(cwd.path()).args(["did", "put", "alice", "--public-key", "00", "--owner", "0x1"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("invalid did"), "{}", stderr(&bad));
    let bad = run(sage_db(cwd.path()).args(["did", "put", "did:sage:dev:x", "--public-key", "0g", "--owner", "0x1"]));
    assert!(stderr(&bad).contains("--public-key"), "{}", stderr(&bad));
    let bad = run(sage_db(cwd.path()).args([
        "did",
        "put",
        "did:sage:dev:x",
        "--public-key",
        "00",
        "--owner",
        "0x1",
        "--key-type",
        "RSA",
    ]));
    assert!(stderr(&bad).contains("--key-type") && stderr(&bad).contains("Ed25519"), "{}", stderr(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_without_a_key_says_how_to_make_one_then_rotation_works() {
    let db = sage_testkit::database().await.unwrap();
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up", "--database-url", &db.url()])).status.success());
    let refused = run(sage_db(cwd.path()).args(["nonce", "claim", "n1", "--database-url", &db.url()]));
    assert_eq!(refused.status.code(), Some(2));
    let text = stderr(&refused);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("error: ") && lines[0].contains("SAGE_SESSION_KEY_FILE"), "{text}");
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("hint: ") && l.contains("`sage-db keys generate --key-file")),
        "the hint says how to make a key: {text}"
    );

    let key_file = cwd.path().join("session.keys");
    let generated = run(sage_db(cwd.path())
        .args(["keys", "generate", "--key-file"])
        .arg(&key_file)
        .args(["--database-url", &db.url()]));
    assert!(generated.status.success(), "{}", stderr(&generated));
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let key_line = key_text.lines().last().unwrap();
    assert!(!stdout(&generated).contains(key_line), "the key itself is never printed");

    let with_key = |args: &[&str]| {
        let mut c = sage_db(cwd.path());
        c.args(args).args(["--database-url", &db.url()]).env("SAGE_SESSION_KEY_FILE", &key_file);
        run(&mut c)
    };
    assert!(with_key(&["nonce", "claim", "n1"]).status.success());
    assert!(run(sage_db(cwd.path()).args(["keys", "generate", "--key-file"]).arg(&key_file)).status.success());
    let rotated = with_key(&["keys", "rotate", "--json"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let report: serde_json::Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(report["failed"].as_array().unwrap().len(), 0);
}

/// Without a filter, `session list` and `did list` read every row, page after page (the
/// command reads 500 a round trip; here are more than two pages of each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_and_did_lists_without_a_filter_read_every_page() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["up", "-q"])).status.success());
    let target = sage_conn::Target::Sqlite(sage_conn::SqliteLocation::File(cwd.path().join("sage.db")));
    let env = sage_conn::Environment::from_pairs(Vec::new());
    let store = sage_store::Store::open(&target, sage_store::OpenOptions::defaults_for(&target, &env)).await.unwrap();
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let total = 1_103;
    for i in 0..total {
        let client = format!("did:sage:test:c{}", i % 7);
        store
            .sessions()
            .create(&NewSession::new(client, "did:sage:test:s", SessionKey::new(vec![7; 32]), expires))
            .await
            .unwrap();
        let record = sage_store::DidRecord::new(
            format!("did:sage:test:d{i}"),
            vec![1; 32],
            format!("0x{}", i % 3),
            sage_store::KeyType::Ed25519,
        );
        store.dids().upsert(&record).await.unwrap();
    }
    store.close().await;
    let json = |args: &[&str]| -> serde_json::Value {
        let out = run(sage_db(cwd.path()).args(args).arg("--json"));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ids = |v: &serde_json::Value, key: &str, field: &str| -> Vec<String> {
        v[key].as_array().unwrap().iter().map(|s| s[field].as_str().unwrap().to_string()).collect()
    };
    let sessions = ids(&json(&["session", "list"]), "sessions", "id");
    assert_eq!(sessions.len(), total);
    assert_eq!(sessions.iter().collect::<std::collections::HashSet<_>>().len(), total, "no session twice");
    assert_eq!(ids(&json(&["session", "list", "--limit", "10", "--offset", "1100"]), "sessions", "id").len(), 3);
    assert_eq!(
        ids(&json(&["session", "list", "--client", "did:sage:test:c0"]), "sessions", "id").len(),
        100,
        "a filter keeps the default limit"
    );
    let dids = ids(&json(&["did", "list"]), "dids", "did");
    assert_eq!(dids.len(), total);
    assert_eq!(dids.iter().collect::<std::collections::HashSet<_>>().len(), total, "no DID twice");
    assert_eq!(ids(&json(&["did", "list", "--owner", "0x0"]), "dids", "did").len(), 368);
    let text = run(sage_db(cwd.path()).args(["session", "list"]));
    assert_eq!(stdout(&text).lines().count(), total + 1, "a header and a line per session");
}

/// `nonce claim -` answers each line as it arrives (a producer writing one nonce at a time
/// gets its answer before writing the next), and each claim's `--ttl` counts from when its
/// line was read: a line read after the first `--ttl` has passed is still claimed.
#[test]
fn claims_from_stdin_are_answered_as_they_arrive_with_their_own_expiry() {
    use std::io::BufRead;
    let cwd = tempfile::tempdir().unwrap();
    assert!(run(sage_db(cwd.path()).args(["migrate", "up"])).status.success());
    let mut child = sage_db(cwd.path())
        .args(["nonce", "claim", "-", "--ttl", "1s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, answers) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            sender.send(line.unwrap()).unwrap();
        }
    });
    let next = || answers.recv_timeout(std::time::Duration::from_secs(30)).expect("an answer within 30 s");
    for (nonce, expected) in
        [("stream-1", "stream-1 fresh"), ("stream-2", "stream-2 fresh"), ("stream-1", "stream-1 fresh")]
    {
        writeln!(stdin, "{nonce}").unwrap();
        // Answered before the next line is written, not when the input ends.
        assert_eq!(next(), expected);
        // Past the first claim's expiry: the next line must still get an expiry of its own,
        // and the first nonce, expired, may be claimed again.
        std::thread::sleep(std::time::Duration::from_millis(1_200));
    }
    writeln!(stdin, "stream-2\nstream-3\nstream-3").unwrap();
    drop(stdin);
    reader.join().unwrap();
    let rest: Vec<String> = answers.try_iter().collect();
    assert_eq!(rest, ["stream-2 fresh", "stream-3 fresh", "stream-3 replayed"]);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
