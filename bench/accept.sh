#!/usr/bin/env bash
# Accepting messages side by side, in one run on one machine: `claim-touch` (claim the
# message's nonce, then touch its session: two calls) and `accept` (`Store::accept`, the
# same work in one atomic call), with messages spread over many sessions and all on one
# hot session, on a throwaway durable PostgreSQL, a SQLite file and memory.
#
# Usage: bench/accept.sh [SECONDS] [CLIENTS] [SESSIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
CLIENTS="${2:-32}"
SESSIONS="${3:-1000}"

cargo build --release -q -p sage-cli -p sage-testkit
BIN=target/release/sage-db
eval "$(target/release/sage-testkit start --durable)"
WORK="$(mktemp -d)"
trap 'target/release/sage-testkit stop "$SAGE_TEST_PG_DIR"; rm -rf "$WORK"' EXIT
export SAGE_SESSION_KEY="$(head -c 32 /dev/urandom | base64)"
DATABASE_URL="$SAGE_TEST_PG_URL" "$BIN" migrate up > /dev/null
"$BIN" --database-url "sqlite://$WORK/accept.db" up > /dev/null

run() { # backend-url workload sessions
    "$BIN" bench --database-url "$1" --workload "$2" --clients "$CLIENTS" --duration "${SECONDS_EACH}s" \
        --keys "$3" --json |
        python3 -c "import json,sys;r=json.load(sys.stdin);print(f\"{round(r['ops_per_second']):>9,}/s  p99 {r['p99_us']:>6} µs  errors {r['errors']}\")"
}

for url in "$SAGE_TEST_PG_URL" "sqlite://$WORK/accept.db" "memory://"; do
    name="${url%%:*}"
    for sessions in "$SESSIONS" 1; do
        for workload in claim-touch accept; do
            printf '%-10s %-12s %5s session(s): ' "$name" "$workload" "$sessions"
            run "$url" "$workload" "$sessions"
        done
    done
done
