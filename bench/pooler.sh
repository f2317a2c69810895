#!/usr/bin/env bash
# Through PgBouncer beside directly, in one run on one machine: `sage-db bench` claiming
# nonces, reading sessions and running the mixed workload against a throwaway durable
# PostgreSQL, once over direct connections (named prepared statements) and once through a
# real PgBouncer in transaction mode (unnamed statements), alternating, ROUNDS times each.
# Prints every run, then the medians and the ratio pooled/direct.
#
# Usage: bench/pooler.sh [SECONDS] [ROUNDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-8}"
ROUNDS="${2:-3}"
CLIENTS="${3:-32}"

cargo build --release -q -p sage-cli -p sage-testkit
BIN=target/release/sage-db
eval "$(target/release/sage-testkit start --durable)"
WORK="$(mktemp -d)"
SAGE_TEST_BOUNCER_PID=""
SAGE_TEST_BOUNCER_DIR=""
cleanup() {
    if [[ -n "$SAGE_TEST_BOUNCER_PID" ]]; then kill "$SAGE_TEST_BOUNCER_PID" 2>/dev/null || true; fi
    if [[ -n "$SAGE_TEST_BOUNCER_DIR" ]]; then rm -rf "$SAGE_TEST_BOUNCER_DIR"; fi
    target/release/sage-testkit stop "$SAGE_TEST_PG_DIR"
    rm -rf "$WORK"
}
trap cleanup EXIT
eval "$(target/release/sage-testkit bouncer "$SAGE_TEST_PG_URL" transaction)"
export SAGE_SESSION_KEY="$(head -c 32 /dev/urandom | base64)"
DIRECT="$SAGE_TEST_PG_URL"
POOLED="${SAGE_TEST_PG_URL/:$SAGE_TEST_PG_PORT\//:$SAGE_TEST_BOUNCER_PORT/}"
# Migrations need a session of their own: directly, as an operator runs them.
"$BIN" --database-url "$DIRECT" migrate up > /dev/null

echo "== ${CLIENTS} clients, ${SECONDS_EACH}s per run, ${ROUNDS} rounds, synchronous_commit=on, PgBouncer pool_mode=transaction"
for round in $(seq "$ROUNDS"); do
    for workload in nonce-claim session-get mixed; do
        for via in direct pooled; do
            url="$DIRECT"; [[ "$via" == pooled ]] && url="$POOLED"
            keys=(); [[ "$workload" == nonce-claim ]] && keys=(--keys 9000000000000000)
            "$BIN" bench --database-url "$url" --workload "$workload" --clients "$CLIENTS" \
                --duration "${SECONDS_EACH}s" "${keys[@]}" --json > "$WORK/$workload.$via.$round.json"
            python3 -c "import json;r=json.load(open('$WORK/$workload.$via.$round.json'));print(f\"round $round  {'$workload':<12} {'$via':<7} {round(r['ops_per_second']):>8,}/s  p50 {r['p50_us']:>6} µs  p99 {r['p99_us']:>6} µs  errors {r['errors']}\")"
        done
    done
done

python3 - "$WORK" <<'PY'
import glob, json, statistics, sys
work = sys.argv[1]
print("== medians (pooled / direct)")
for workload in ["nonce-claim", "session-get", "mixed"]:
    med = {}
    for via in ["direct", "pooled"]:
        runs = [json.load(open(f)) for f in sorted(glob.glob(f"{work}/{workload}.{via}.*.json"))]
        med[via] = (statistics.median(r["ops_per_second"] for r in runs),
                    statistics.median(r["p50_us"] for r in runs),
                    sum(r["errors"] for r in runs))
    d, p = med["direct"], med["pooled"]
    print(f"{workload:<12} direct {d[0]:>9,.0f}/s p50 {d[1]:>6.0f} µs | pooled {p[0]:>9,.0f}/s p50 {p[1]:>6.0f} µs"
          f" | ratio {p[0] / d[0]:.2f} | errors {d[2]} / {p[2]}")
PY
