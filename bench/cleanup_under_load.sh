#!/usr/bin/env bash
# Cleanup of a large backlog of expired nonces while clients keep claiming: compares the
# claim latency of a run alone with a run during `sage-db cleanup`, on one durable
# throwaway PostgreSQL. Usage: bench/cleanup_under_load.sh [EXPIRED_ROWS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
SECONDS_EACH="${2:-20}"
cargo build --release -q -p sage-cli -p sage-testkit
BIN=target/release/sage-db
eval "$(target/release/sage-testkit start --durable)"
trap 'target/release/sage-testkit stop "$SAGE_TEST_PG_DIR"' EXIT
export DATABASE_URL="$SAGE_TEST_PG_URL"
export SAGE_SESSION_KEY="$(head -c 32 /dev/urandom | base64)"
"$BIN" migrate up > /dev/null
PSQL="$SAGE_TEST_PG_BIN/psql"
WORK="$(mktemp -d)"
fill() {
    "$PSQL" -q "$SAGE_TEST_PG_URL" -c "INSERT INTO nonces (nonce, used_at, expires_at)
        SELECT 'expired-$1-' || g, now() - interval '2 hours', now() - interval '1 hour' FROM generate_series(1, $ROWS) g"
    "$PSQL" -q "$SAGE_TEST_PG_URL" -c "VACUUM ANALYZE nonces"
}
summary() { python3 -c "import json;r=json.load(open('$1'));print(f\"{r['ops_per_second']:.0f} claims/s, p50 {r['p50_us']} µs, p99 {r['p99_us']} µs, max {r['max_us']} µs, errors {r['errors']}\")"; }

fill a
"$BIN" bench --workload nonce-claim --clients 8 --duration "${SECONDS_EACH}s" --json > "$WORK/alone.json"
echo "claims alone (with ${ROWS} expired rows present): $(summary "$WORK/alone.json")"

"$BIN" bench --workload nonce-claim --clients 8 --duration "${SECONDS_EACH}s" --json > "$WORK/during.json" &
BENCH=$!
sleep 2
start=$(date +%s%N)
"$BIN" cleanup --json > "$WORK/cleanup.json"
end=$(date +%s%N)
wait "$BENCH"
echo "cleanup: $(python3 -c "import json;print(json.load(open('$WORK/cleanup.json'))['expired_nonces'])") expired nonces deleted in $(((end - start) / 1000000)) ms"
echo "claims during cleanup: $(summary "$WORK/during.json")"
rm -rf "$WORK"
