#!/usr/bin/env bash
# How long `sage-db schema validate` takes on a 200-table PostgreSQL database, against the
# cost of `sage-db migrate version` (start the process, connect, one query) in the same run.
# Usage: bench/schema_validate.sh [TABLES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
TABLES="${1:-200}"
RUNS="${2:-15}"
cargo build --release -q -p sage-cli -p sage-testkit
BIN=target/release/sage-db
eval "$(target/release/sage-testkit start)"
trap 'target/release/sage-testkit stop "$SAGE_TEST_PG_DIR"' EXIT
DIR="$(mktemp -d)"
{
    for i in $(seq 1 "$TABLES"); do
        prev=$((i - 1))
        fk=""
        [[ $i -gt 1 ]] && fk=", parent_id bigint REFERENCES t${prev} (id) ON DELETE CASCADE"
        echo "CREATE TABLE t${i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name varchar(80) NOT NULL, kind text NOT NULL CHECK (kind IN ('a', 'b', 'c')), amount numeric(12,2) DEFAULT 0, created_at timestamptz NOT NULL DEFAULT now(), tags text[]${fk});"
        echo "CREATE INDEX t${i}_name_idx ON t${i} (lower(name));"
        echo "CREATE INDEX t${i}_recent_idx ON t${i} (created_at DESC) WHERE kind <> 'c';"
    done
} > "$DIR/000001_tables.up.sql"
export DATABASE_URL="$SAGE_TEST_PG_URL"
"$BIN" migrate up --source "$DIR" > /dev/null
"$BIN" schema dump --source "$DIR" > /dev/null

median_ms() {
    local samples=()
    for _ in $(seq 1 "$RUNS"); do
        local start end
        start=$(date +%s%N)
        "$@" > /dev/null || true
        end=$(date +%s%N)
        samples+=($(((end - start) / 1000000)))
    done
    printf '%s\n' "${samples[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# The database must validate clean, or the timing would measure an error path.
"$BIN" schema validate --source "$DIR" | tail -1
validate=$(median_ms "$BIN" schema validate --source "$DIR")
baseline=$(median_ms "$BIN" migrate version --source "$DIR")
echo "tables: $TABLES, runs: $RUNS"
echo "sage-db schema validate: median ${validate} ms"
echo "sage-db migrate version: median ${baseline} ms (process start + connect + one query)"
echo "validation beyond the baseline: $((validate - baseline)) ms"
rm -rf "$DIR"
