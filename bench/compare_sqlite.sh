#!/usr/bin/env bash
# Side by side, in one run on one machine: nonce claims on an SQLite file in WAL mode with
# synchronous=NORMAL, first by a minimal single-threaded Rust loop
# (crates/sage-store/examples/sqlite_claim_loop.rs) that sends the claim statement once per
# transaction, as a naive store would, then eight claims per transaction (the most eight
# clients can share), then 32 (what SQLite gives when commits carry more); then by
# `sage-db bench` with the same number of clients. Every file starts empty and has the
# same table and indexes.
#
# Usage: bench/compare_sqlite.sh [SECONDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
CLIENTS="${2:-8}"

cargo build --release -q -p sage-cli
cargo build --release -q -p sage-store --example sqlite_claim_loop
LOOP="$PWD/target/release/examples/sqlite_claim_loop"
BIN="$PWD/target/release/sage-db"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The schema comes from sage-db itself, so the loop writes exactly the table the store does.
"$BIN" up --database-url "sqlite://$WORK/template.db" > /dev/null

loop() { # per-transaction claims
    cp "$WORK/template.db" "$WORK/loop$1.db"
    "$LOOP" "$WORK/loop$1.db" "$1" "$SECONDS_EACH"
}

echo "== nonce claims, SQLite WAL + synchronous=NORMAL, ${SECONDS_EACH}s each"
one=$(loop 1)
eight=$(loop 8)
thirty_two=$(loop 32)
cp "$WORK/template.db" "$WORK/sage.db"
ours=$("$BIN" bench --database-url "sqlite://$WORK/sage.db" --workload nonce-claim --clients "$CLIENTS" \
    --duration "${SECONDS_EACH}s" --json | python3 -c "import json,sys;print(round(json.load(sys.stdin)['ops_per_second']))")
echo "minimal loop, one claim per transaction:    ${one} claims/s"
echo "minimal loop, eight claims per transaction: ${eight} claims/s"
echo "minimal loop, 32 claims per transaction:    ${thirty_two} claims/s"
echo "sage-db bench nonce-claim, ${CLIENTS} clients:       ${ours} claims/s"
python3 -c "print(f'ratio to one per transaction: {${ours}/${one}:.2f}x, to eight per transaction: {${ours}/${eight}:.2f}x')"
