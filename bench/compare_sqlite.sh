#!/usr/bin/env bash
# Side by side, in one run on one machine: nonce claims on an SQLite file in WAL mode with
# synchronous=NORMAL, first by a minimal single-threaded loop (Python's sqlite3) that sends
# the claim statement once per transaction, as a naive store would, and then eight claims
# per transaction (the most eight clients can share); then by `sage-db bench` with the same
# number of clients. Every file starts empty and has the same table and indexes.
#
# Usage: bench/compare_sqlite.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
CLIENTS="${2:-8}"

cargo build --release -q -p sage-cli
BIN="$PWD/target/release/sage-db"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The schema comes from sage-db itself, so the loop writes exactly the table the store does.
"$BIN" up --database-url "sqlite://$WORK/template.db" > /dev/null

loop() { # per-transaction claims
    cp "$WORK/template.db" "$WORK/loop$1.db"
    python3 - "$WORK/loop$1.db" "$SECONDS_EACH" "$1" <<'PY'
import sqlite3, sys, time
path, seconds, per_tx = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=NORMAL")
sql = ("INSERT INTO nonces (nonce, session_id, used_at, expires_at) VALUES (?, NULL, ?, ?) "
       "ON CONFLICT (nonce) DO UPDATE SET session_id = excluded.session_id, used_at = excluded.used_at, "
       "expires_at = excluded.expires_at WHERE nonces.expires_at <= excluded.used_at RETURNING 1")
n, start = 0, time.time()
while time.time() - start < seconds:
    now = int(time.time() * 1e6)
    db.execute("BEGIN IMMEDIATE")
    for _ in range(per_tx):
        n += 1
        db.execute(sql, (f"loop-{n % 8}-{n}", now, now + 300_000_000)).fetchall()
    db.execute("COMMIT")
print(round(n / (time.time() - start)))
PY
}

echo "== nonce claims, SQLite WAL + synchronous=NORMAL, ${SECONDS_EACH}s each"
one=$(loop 1)
eight=$(loop 8)
cp "$WORK/template.db" "$WORK/sage.db"
ours=$("$BIN" bench --database-url "sqlite://$WORK/sage.db" --workload nonce-claim --clients "$CLIENTS" \
    --duration "${SECONDS_EACH}s" --json | python3 -c "import json,sys;print(round(json.load(sys.stdin)['ops_per_second']))")
echo "minimal loop, one claim per transaction:    ${one} claims/s"
echo "minimal loop, eight claims per transaction: ${eight} claims/s"
echo "sage-db bench nonce-claim, ${CLIENTS} clients:       ${ours} claims/s"
python3 -c "print(f'ratio to one per transaction: {${ours}/${one}:.2f}x, to eight per transaction: {${ours}/${eight}:.2f}x')"
