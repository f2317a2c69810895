#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// `sage-db` with a clean environment, so that the developer's DATABASE_URL or DB_*
/// variables cannot leak into a test.
pub fn sage_db(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sage-db"));
    command.current_dir(cwd).env_clear();
    for keep in ["PATH", "HOME", "USER", "TMPDIR"] {
        if let Ok(value) = std::env::var(keep) {
            command.env(keep, value);
        }
    }
    command
}

pub fn run(command: &mut Command) -> Output {
    command.output().expect("run sage-db")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

pub async fn pg_scalar(settings: &sage_conn::PgSettings, sql: &str) -> i64 {
    let client = sage_conn::connect(settings).await.expect("connect");
    client.query_one(sql, &[]).await.expect(sql).get::<_, i64>(0)
}

/// A plain HTTP/1.0 GET: the status code and the body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls until `check` holds, for at most `seconds`.
pub fn eventually(seconds: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
