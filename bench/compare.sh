#!/usr/bin/env bash
# Side by side, in one run on one machine: pgbench running the single statement a naive
# store would send, then `sage-db bench` doing the same work through sage-store, against a
# throwaway PostgreSQL with fsync and synchronous_commit on. Prints both and their ratio.
#
# Usage: bench/compare.sh [SECONDS] [CLAIM_CLIENTS] [READ_CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
CLAIM_CLIENTS="${2:-32}"
READ_CLIENTS="${3:-8}"

cargo build --release -q -p sage-cli -p sage-testkit
cargo build --release -q -p sage-store --example pg_claim_loop
BIN=target/release/sage-db
LOOP=target/release/examples/pg_claim_loop
eval "$(target/release/sage-testkit start --durable)"
trap 'target/release/sage-testkit stop "$SAGE_TEST_PG_DIR"' EXIT
PGBENCH="$SAGE_TEST_PG_BIN/pgbench"
export DATABASE_URL="$SAGE_TEST_PG_URL"
export SAGE_SESSION_KEY="$(head -c 32 /dev/urandom | base64)"
"$BIN" migrate up > /dev/null
WORK="$(mktemp -d)"

# p99 in µs from pgbench's per-transaction log (third column is the latency in µs).
p99() { cat "$WORK"/pgb.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]}'; }
tps() { grep -Eo 'tps = [0-9.]+' | head -1 | awk '{print $3}'; }

echo "== nonce claims, ${CLAIM_CLIENTS} clients, ${SECONDS_EACH}s each, synchronous_commit=on"
cat > "$WORK/claim.sql" <<'SQL'
\set n random(1, 9000000000000000)
INSERT INTO nonces (nonce, session_id, used_at, expires_at) VALUES ('pgbench-' || :client_id || '-' || :n, NULL, now(), now() + interval '5 minutes') ON CONFLICT (nonce) DO NOTHING;
SQL
rm -f "$WORK"/pgb.*
base_claims=$(cd "$WORK" && "$PGBENCH" -n -M prepared -c "$CLAIM_CLIENTS" -j 2 -T "$SECONDS_EACH" -l --log-prefix=pgb -f claim.sql "$SAGE_TEST_PG_URL" 2>/dev/null | tps)
base_claims_p99=$(p99)
# Nonces drawn at random from the same range as pgbench's, so both write to random places
# in the primary key's index, as real (random) nonces do.
"$BIN" bench --workload nonce-claim --clients "$CLAIM_CLIENTS" --duration "${SECONDS_EACH}s" --keys 9000000000000000 --json > "$WORK/claims.json"
ours_claims=$(python3 -c "import json;print(round(json.load(open('$WORK/claims.json'))['ops_per_second']))")
ours_claims_p99=$(python3 -c "import json;print(json.load(open('$WORK/claims.json'))['p99_us'])")
# The server's own ceiling for batched claims: pgbench sending sage-db's statement (rows
# generated on the server instead of unnested arrays), with half the clients' claims in each
# of two statements in flight, and no client overhead.
HALF=$((CLAIM_CLIENTS / 2))
cat > "$WORK/batch.sql" <<SQL
\set n random(1, 9000000000000000)
INSERT INTO nonces (nonce, session_id, used_at, expires_at) SELECT 'ceiling-' || :client_id || '-' || :n || '-' || g, NULL, now(), now() + interval '5 minutes' FROM generate_series(1, ${HALF}) AS g ON CONFLICT (nonce) DO UPDATE SET session_id = EXCLUDED.session_id, used_at = EXCLUDED.used_at, expires_at = EXCLUDED.expires_at WHERE nonces.expires_at <= EXCLUDED.used_at RETURNING nonce;
SQL
ceiling_tps=$(cd "$WORK" && "$PGBENCH" -n -M prepared -c 2 -j 2 -T "$SECONDS_EACH" -f batch.sql "$SAGE_TEST_PG_URL" 2>/dev/null | tps)
ceiling=$(python3 -c "print(round(${ceiling_tps} * ${HALF}))")
# The same two statements in flight, sent by a minimal Rust loop through the same driver
# (crates/sage-store/examples/pg_claim_loop.rs): what the statement and the driver cost,
# without the store's batching and its callers.
loop_claims=$("$LOOP" "$SAGE_TEST_PG_URL" 2 "$HALF" "$SECONDS_EACH")
echo "pgbench INSERT … ON CONFLICT DO NOTHING:  ${base_claims%.*} claims/s, p99 ${base_claims_p99} µs"
echo "sage-db bench nonce-claim:               ${ours_claims} claims/s, p99 ${ours_claims_p99} µs"
echo "pgbench, 2 × ${HALF}-claim batched statements: ${ceiling} claims/s (the server's ceiling for this shape)"
echo "minimal Rust loop, the same 2 × ${HALF} statements: ${loop_claims} claims/s (statement and driver, no batcher)"
python3 -c "print(f'ratio to single statements: {${ours_claims}/${base_claims}:.2f}x; share of the batched ceiling: {${ours_claims}/${ceiling}:.2f}; of the loop: {${ours_claims}/${loop_claims}:.2f}')"

echo "== session reads, ${READ_CLIENTS} clients"
"$BIN" bench --workload session-get --clients "$READ_CLIENTS" --duration "${SECONDS_EACH}s" --keys 1000 --json > "$WORK/reads.json"
"$BIN" bench --workload session-get --clients "$READ_CLIENTS" --duration "${SECONDS_EACH}s" --keys 1000 --threads 1 --json > "$WORK/reads1.json"
cat > "$WORK/read.sql" <<'SQL'
\set i random(0, 999)
SELECT id, client_did, server_did, session_key, created_at, expires_at, last_activity, metadata, message_count, max_messages, idle_timeout_seconds FROM sessions WHERE id = 'bench-session-' || :i;
SQL
rm -f "$WORK"/pgb.*
base_reads=$(cd "$WORK" && "$PGBENCH" -n -M prepared -c "$READ_CLIENTS" -j 2 -T "$SECONDS_EACH" -l --log-prefix=pgb -f read.sql "$SAGE_TEST_PG_URL" 2>/dev/null | tps)
base_reads_p99=$(p99)
field() { python3 -c "import json;print(round(json.load(open('$WORK/$1'))['$2']))"; }
echo "pgbench prepared SELECT by id:                 ${base_reads%.*} reads/s, p99 ${base_reads_p99} µs"
for run in reads reads1; do
    threads=$(field "$run.json" threads)
    ours_reads=$(field "$run.json" ops_per_second)
    echo "sage-db bench session-get, ${threads} runtime thread(s): ${ours_reads} reads/s, p99 $(field "$run.json" p99_us) µs, ratio $(python3 -c "print(f'{${ours_reads}/${base_reads}:.2f}x')")"
done
echo "(sage-db's reads include opening the sealed session key)"
rm -rf "$WORK"
